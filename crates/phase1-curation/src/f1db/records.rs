//! Typed F1DB entities, one struct per file of `src/data/{drivers,constructors,circuits,
//! grands-prix,countries,engine-manufacturers,tyre-manufacturers}/`, fields named as in F1DB's
//! YAML (camelCase) and its JSON schema (`src/schema/current/splitted/*.schema.json`).
//!
//! Unknown keys are ignored so that a newer F1DB still loads; a known key with a value of the
//! wrong type makes the record a reject.

use serde::{Deserialize, Serialize};

use super::de::{self, Date};

/// Gender as F1DB records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Gender {
    /// Male.
    Male,
    /// Female.
    Female,
}

/// Kind of circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CircuitType {
    /// Permanent race circuit.
    Race,
    /// Closed public roads outside a town.
    Road,
    /// Closed streets in a town.
    Street,
}

/// Racing direction of a circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Direction {
    /// Clockwise.
    Clockwise,
    /// Anti-clockwise.
    AntiClockwise,
}

/// A driver (`src/data/drivers/<id>.yml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Driver {
    /// Id, also the file name (`lewis-hamilton`).
    pub id: String,
    /// Display name (`Lewis Hamilton`).
    pub name: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Full legal name.
    pub full_name: String,
    /// Three-letter abbreviation (`HAM`).
    pub abbreviation: String,
    /// Permanent car number (2014 on), as text.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub permanent_number: Option<String>,
    /// Gender.
    pub gender: Gender,
    /// Date of birth.
    pub date_of_birth: Date,
    /// Date of death, if deceased.
    #[serde(default)]
    pub date_of_death: Option<Date>,
    /// Place of birth.
    pub place_of_birth: String,
    /// Country of birth (a `countries/` id).
    pub country_of_birth_country_id: String,
    /// Nationality (a `countries/` id).
    pub nationality_country_id: String,
    /// Second nationality, if any.
    #[serde(default)]
    pub second_nationality_country_id: Option<String>,
    /// Relatives who also raced in F1.
    #[serde(default, deserialize_with = "de::null_as_empty")]
    pub family_relationships: Vec<FamilyRelationship>,
}

/// A family tie between two drivers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FamilyRelationship {
    /// The relative.
    pub driver_id: String,
    /// What the relative is to this driver (`CHILD`, `PARENT`, `SIBLING`, ...).
    #[serde(rename = "type")]
    pub relationship: String,
}

/// A constructor (`src/data/constructors/<id>.yml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Constructor {
    /// Id (`mercedes`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Full name.
    pub full_name: String,
    /// Country (a `countries/` id).
    pub country_id: String,
    /// The team's lineage under earlier names (Tyrrell → BAR → Honda → Brawn → Mercedes).
    #[serde(default, deserialize_with = "de::null_as_empty")]
    pub chronology: Vec<ChronologyEntry>,
}

/// One name in a constructor's lineage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChronologyEntry {
    /// The constructor under that name.
    pub constructor_id: String,
    /// First year.
    pub year_from: u16,
    /// Last year; `None` if current.
    #[serde(default)]
    pub year_to: Option<u16>,
}

/// A circuit (`src/data/circuits/<id>.yml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Circuit {
    /// Id (`silverstone`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Full name.
    pub full_name: String,
    /// Earlier names.
    #[serde(default, deserialize_with = "de::null_as_empty")]
    pub previous_names: Vec<String>,
    /// Race, road or street circuit.
    #[serde(rename = "type")]
    pub circuit_type: CircuitType,
    /// Racing direction.
    pub direction: Direction,
    /// Town or area.
    pub place_name: String,
    /// Country (a `countries/` id).
    pub country_id: String,
    /// Latitude in degrees.
    pub latitude: f64,
    /// Longitude in degrees.
    pub longitude: f64,
    /// Length of the current layout in km.
    pub length: f64,
    /// Turns of the current layout.
    pub turns: u32,
    /// Every layout used; races name theirs in `circuitLayoutId`.
    #[serde(default, deserialize_with = "de::null_as_empty")]
    pub layouts: Vec<CircuitLayout>,
}

/// One layout of a circuit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CircuitLayout {
    /// Id (`silverstone-8`).
    pub id: String,
    /// Length in km.
    pub length: f64,
    /// Number of turns.
    pub turns: u32,
}

/// A Grand Prix title (`src/data/grands-prix/<id>.yml`), e.g. the British Grand Prix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrandPrix {
    /// Id (`great-britain`).
    pub id: String,
    /// Display name (`Great Britain`).
    pub name: String,
    /// Full name (`British Grand Prix`).
    pub full_name: String,
    /// Short name (`British GP`).
    pub short_name: String,
    /// Three-letter abbreviation.
    pub abbreviation: String,
    /// Country; `None` for titles not tied to one (European, Pacific).
    #[serde(default)]
    pub country_id: Option<String>,
}

/// A country (`src/data/countries/<id>.yml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Country {
    /// Id (`united-kingdom`).
    pub id: String,
    /// ISO 3166-1 alpha-2 code.
    pub alpha2_code: String,
    /// ISO 3166-1 alpha-3 code.
    pub alpha3_code: String,
    /// IOC code, if any.
    #[serde(default)]
    pub ioc_code: Option<String>,
    /// Name.
    pub name: String,
    /// Demonym (`British`), if any.
    #[serde(default)]
    pub demonym: Option<String>,
    /// Continent id.
    pub continent_id: String,
}

/// An engine or tyre manufacturer (`src/data/{engine,tyre}-manufacturers/<id>.yml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manufacturer {
    /// Id (`honda`, `pirelli`).
    pub id: String,
    /// Name.
    pub name: String,
    /// Country (a `countries/` id).
    pub country_id: String,
}

/// What the loader does with a record after serde: fill the fields F1DB's exports derive.
pub(crate) trait Record {
    /// Fill fields the YAML does not hold; `index` is the 0-based place in its file.
    fn finish(&mut self, _index: usize) {}
}

impl Record for Driver {}
impl Record for Constructor {}
impl Record for Circuit {}
impl Record for GrandPrix {}
impl Record for Country {}
impl Record for Manufacturer {}
