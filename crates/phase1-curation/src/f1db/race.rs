//! Typed F1DB season and race files: `src/data/seasons/<year>/{driver,constructor}-standings.yml`
//! and, per race folder `races/<NN-slug>/`, `race.yml` with its result files. Fields are named
//! as in F1DB's YAML (camelCase) and its JSON schema.
//!
//! F1DB's YAML writes one `position` that is a number or a status (`DNF`), where its exports
//! carry `positionNumber` and `positionText`; so do these records. Fields the YAML leaves to
//! F1DB's exports (`positionNumber`, `positionDisplayOrder`, `timeMillis`, `gapLaps`,
//! `polePosition`, ...) are skipped when deserializing and filled in by the loader
//! (`Record::finish` and `mark_pole_and_fastest_lap` in the loader).

use serde::{Deserialize, Serialize};

use super::de::{self, Date};
use super::records::{CircuitType, Direction, Record};

/// How the grid of a race was set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum QualifyingFormat {
    /// Four laps (1996–2002 style single session with a lap limit).
    FourLaps,
    /// Two sessions, best time of either counts.
    TwoSession,
    /// One session.
    OneSession,
    /// One flying lap per driver (2003–2005).
    OneLap,
    /// Aggregate of two sessions (2005).
    Aggregate,
    /// Q1/Q2/Q3 knockout (2006 on).
    Knockout,
    /// Elimination format (early 2016).
    Elimination,
    /// Grid set by a sprint race.
    SprintRace,
}

/// How the grid of a sprint race was set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SprintQualifyingFormat {
    /// A separate sprint shootout / sprint qualifying session (2023 on).
    SprintShootout,
}

/// One championship season: `src/data/seasons/<year>/{driver,constructor}-standings.yml`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Season {
    /// Year.
    pub year: u16,
    /// Final (or, for a season in progress, current) drivers' standings.
    pub driver_standings: Vec<Standing>,
    /// Constructors' standings; empty before 1958, when that championship began.
    pub constructor_standings: Vec<ConstructorStanding>,
}

/// A race weekend: `race.yml` plus the result files beside it in
/// `src/data/seasons/<year>/races/<NN-slug>/`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Race {
    /// F1DB's race id (1 for 1950 Britain, counting up in date order).
    pub id: u32,
    /// Year, from the folder name (the YAML does not repeat it).
    #[serde(skip_deserializing)]
    pub year: u16,
    /// Round within the season.
    pub round: u32,
    /// Race-day date.
    pub date: Date,
    /// Local start time (`13:00`), when recorded.
    #[serde(default)]
    pub time: Option<String>,
    /// The Grand Prix title (a `grands-prix/` id).
    pub grand_prix_id: String,
    /// Official (sponsor) name.
    pub official_name: String,
    /// How the grid was set.
    pub qualifying_format: QualifyingFormat,
    /// How the sprint grid was set, for sprint weekends since 2023.
    #[serde(default)]
    pub sprint_qualifying_format: Option<SprintQualifyingFormat>,
    /// Circuit (a `circuits/` id).
    pub circuit_id: String,
    /// Layout used (an id in the circuit's `layouts`).
    pub circuit_layout_id: String,
    /// Circuit type as raced.
    pub circuit_type: CircuitType,
    /// Direction as raced.
    pub direction: Direction,
    /// Lap length in km.
    pub course_length: f64,
    /// Turns of the layout.
    pub turns: u32,
    /// Laps run.
    pub laps: u32,
    /// Distance run in km.
    pub distance: f64,
    /// Laps scheduled, when the race was cut short.
    #[serde(default)]
    pub scheduled_laps: Option<u32>,
    /// Distance scheduled, when the race was cut short.
    #[serde(default)]
    pub scheduled_distance: Option<f64>,
    /// Whether the drivers' title was decided at this race.
    #[serde(default)]
    pub drivers_championship_decider: bool,
    /// Whether the constructors' title was decided at this race.
    #[serde(default)]
    pub constructors_championship_decider: bool,
    /// Pre-qualifying date.
    #[serde(default)]
    pub pre_qualifying_date: Option<Date>,
    /// Pre-qualifying local time.
    #[serde(default)]
    pub pre_qualifying_time: Option<String>,
    /// First practice date.
    #[serde(default, rename = "freePractice1Date")]
    pub free_practice_1_date: Option<Date>,
    /// First practice local time.
    #[serde(default, rename = "freePractice1Time")]
    pub free_practice_1_time: Option<String>,
    /// Second practice date.
    #[serde(default, rename = "freePractice2Date")]
    pub free_practice_2_date: Option<Date>,
    /// Second practice local time.
    #[serde(default, rename = "freePractice2Time")]
    pub free_practice_2_time: Option<String>,
    /// Third practice date.
    #[serde(default, rename = "freePractice3Date")]
    pub free_practice_3_date: Option<Date>,
    /// Third practice local time.
    #[serde(default, rename = "freePractice3Time")]
    pub free_practice_3_time: Option<String>,
    /// Fourth practice date.
    #[serde(default, rename = "freePractice4Date")]
    pub free_practice_4_date: Option<Date>,
    /// Fourth practice local time.
    #[serde(default, rename = "freePractice4Time")]
    pub free_practice_4_time: Option<String>,
    /// First qualifying session date (two-session formats).
    #[serde(default, rename = "qualifying1Date")]
    pub qualifying_1_date: Option<Date>,
    /// First qualifying session local time.
    #[serde(default, rename = "qualifying1Time")]
    pub qualifying_1_time: Option<String>,
    /// Second qualifying session date.
    #[serde(default, rename = "qualifying2Date")]
    pub qualifying_2_date: Option<Date>,
    /// Second qualifying session local time.
    #[serde(default, rename = "qualifying2Time")]
    pub qualifying_2_time: Option<String>,
    /// Qualifying date.
    #[serde(default)]
    pub qualifying_date: Option<Date>,
    /// Qualifying local time.
    #[serde(default)]
    pub qualifying_time: Option<String>,
    /// Sprint qualifying / shootout date.
    #[serde(default)]
    pub sprint_qualifying_date: Option<Date>,
    /// Sprint qualifying / shootout local time.
    #[serde(default)]
    pub sprint_qualifying_time: Option<String>,
    /// Sprint race date.
    #[serde(default)]
    pub sprint_race_date: Option<Date>,
    /// Sprint race local time.
    #[serde(default)]
    pub sprint_race_time: Option<String>,
    /// Sprint race laps run.
    #[serde(default)]
    pub sprint_race_laps: Option<u32>,
    /// Sprint race distance run in km.
    #[serde(default)]
    pub sprint_race_distance: Option<f64>,
    /// Sprint laps scheduled, when cut short.
    #[serde(default)]
    pub sprint_race_scheduled_laps: Option<u32>,
    /// Sprint distance scheduled, when cut short.
    #[serde(default)]
    pub sprint_race_scheduled_distance: Option<f64>,
    /// Warm-up date.
    #[serde(default)]
    pub warming_up_date: Option<Date>,
    /// Warm-up local time.
    #[serde(default)]
    pub warming_up_time: Option<String>,

    /// The archive folder this race was read from (`f1db-main/src/data/seasons/2021/races/22-abu-dhabi`).
    #[serde(skip_deserializing)]
    pub source: String,
    /// Classification (`race-results.yml`); empty for races not yet run.
    #[serde(skip_deserializing)]
    pub results: Vec<RaceResult>,
    /// Qualifying (`qualifying-results.yml`).
    #[serde(skip_deserializing)]
    pub qualifying: Vec<QualifyingResult>,
    /// Sprint classification (`sprint-race-results.yml`).
    #[serde(skip_deserializing)]
    pub sprint_results: Vec<RaceResult>,
    /// Starting grid (`starting-grid-positions.yml`).
    #[serde(skip_deserializing)]
    pub grid: Vec<GridPosition>,
    /// Sprint starting grid (`sprint-starting-grid-positions.yml`).
    #[serde(skip_deserializing)]
    pub sprint_grid: Vec<GridPosition>,
    /// Pit stops (`pit-stops.yml`), recorded since 1994 (with gaps).
    #[serde(skip_deserializing)]
    pub pit_stops: Vec<PitStop>,
    /// Each driver's fastest lap (`fastest-laps.yml`).
    #[serde(skip_deserializing)]
    pub fastest_laps: Vec<FastestLap>,
    /// Drivers' standings after this race (`driver-standings.yml`).
    #[serde(skip_deserializing)]
    pub driver_standings: Vec<Standing>,
    /// Constructors' standings after this race (`constructor-standings.yml`).
    #[serde(skip_deserializing)]
    pub constructor_standings: Vec<ConstructorStanding>,
}

/// One line of a race or sprint classification.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RaceResult {
    /// 1-based order of the line in the file (classified first, then DNF, DNS, ...).
    #[serde(skip_deserializing)]
    pub position_display_order: u32,
    /// Finishing position, `None` when the position is a status (DNF, DSQ, NC, ...).
    #[serde(skip_deserializing, rename = "positionNumber")]
    pub position: Option<u32>,
    /// The position as F1DB writes it: a number or `DNF`, `DNS`, `DSQ`, `NC`, `DNQ`, `DNPQ`, `EX`, ...
    #[serde(rename(deserialize = "position"), deserialize_with = "de::text")]
    pub position_text: String,
    /// Car number.
    #[serde(deserialize_with = "de::text")]
    pub driver_number: String,
    /// Driver.
    pub driver_id: String,
    /// Constructor.
    pub constructor_id: String,
    /// Engine manufacturer.
    pub engine_manufacturer_id: String,
    /// Tyre manufacturer.
    pub tyre_manufacturer_id: String,
    /// Whether the car was shared between drivers (1950s).
    #[serde(default)]
    pub shared_car: bool,
    /// Laps completed.
    #[serde(default)]
    pub laps: Option<u32>,
    /// Race time (`1:30:17.345`), for finishers on the lead lap.
    #[serde(default)]
    pub time: Option<String>,
    /// `time` in milliseconds.
    #[serde(skip_deserializing)]
    pub time_millis: Option<u64>,
    /// Time penalty applied (`5.000`).
    #[serde(default)]
    pub time_penalty: Option<String>,
    /// `time_penalty` in milliseconds.
    #[serde(skip_deserializing)]
    pub time_penalty_millis: Option<u64>,
    /// Gap to the winner (`+2.256` or `+1 lap`).
    #[serde(default)]
    pub gap: Option<String>,
    /// `gap` in milliseconds, when a time gap.
    #[serde(skip_deserializing)]
    pub gap_millis: Option<i64>,
    /// `gap` in laps, when a lap gap.
    #[serde(skip_deserializing)]
    pub gap_laps: Option<u32>,
    /// Gap to the car ahead.
    #[serde(default)]
    pub interval: Option<String>,
    /// `interval` in milliseconds.
    #[serde(skip_deserializing)]
    pub interval_millis: Option<i64>,
    /// Why the driver retired (`Engine`, `Collision`, ...).
    #[serde(default)]
    pub reason_retired: Option<String>,
    /// Points scored.
    #[serde(default)]
    pub points: Option<f64>,
    /// Grid position, `None` for a pit-lane start or when unknown.
    #[serde(skip_deserializing, rename = "gridPositionNumber")]
    pub grid_position: Option<u32>,
    /// Grid position as written: a number or `PL` (pit lane).
    #[serde(default, rename(deserialize = "gridPosition"), deserialize_with = "de::opt_text")]
    pub grid_position_text: Option<String>,
    /// Whether this driver was fastest in qualifying (qualifying position 1, which is how the
    /// FIA counts poles even when a grid penalty moved the car back); `None` without qualifying.
    #[serde(skip_deserializing)]
    pub pole_position: Option<bool>,
    /// Whether this driver set the race's fastest lap; `None` without fastest-lap data.
    #[serde(skip_deserializing)]
    pub fastest_lap: Option<bool>,
    /// Pole, win, fastest lap and led every lap.
    #[serde(default)]
    pub grand_slam: bool,
}

/// One line of a qualifying classification.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QualifyingResult {
    /// 1-based order of the line in the file.
    #[serde(skip_deserializing)]
    pub position_display_order: u32,
    /// Qualifying position, `None` for a status (DNQ, DNPQ, EX, ...).
    #[serde(skip_deserializing, rename = "positionNumber")]
    pub position: Option<u32>,
    /// The position as written.
    #[serde(rename(deserialize = "position"), deserialize_with = "de::text")]
    pub position_text: String,
    /// Car number.
    #[serde(deserialize_with = "de::text")]
    pub driver_number: String,
    /// Driver.
    pub driver_id: String,
    /// Constructor.
    pub constructor_id: String,
    /// Engine manufacturer.
    pub engine_manufacturer_id: String,
    /// Tyre manufacturer.
    pub tyre_manufacturer_id: String,
    /// Best time (non-knockout formats).
    #[serde(default)]
    pub time: Option<String>,
    /// `time` in milliseconds.
    #[serde(skip_deserializing)]
    pub time_millis: Option<u64>,
    /// Q1 time (knockout formats).
    #[serde(default)]
    pub q1: Option<String>,
    /// `q1` in milliseconds.
    #[serde(skip_deserializing)]
    pub q1_millis: Option<u64>,
    /// Q2 time.
    #[serde(default)]
    pub q2: Option<String>,
    /// `q2` in milliseconds.
    #[serde(skip_deserializing)]
    pub q2_millis: Option<u64>,
    /// Q3 time.
    #[serde(default)]
    pub q3: Option<String>,
    /// `q3` in milliseconds.
    #[serde(skip_deserializing)]
    pub q3_millis: Option<u64>,
    /// Gap to pole.
    #[serde(default)]
    pub gap: Option<String>,
    /// `gap` in milliseconds.
    #[serde(skip_deserializing)]
    pub gap_millis: Option<i64>,
    /// Gap to the car ahead.
    #[serde(default)]
    pub interval: Option<String>,
    /// `interval` in milliseconds.
    #[serde(skip_deserializing)]
    pub interval_millis: Option<i64>,
    /// Laps run in the session.
    #[serde(default)]
    pub laps: Option<u32>,
}

/// One slot of a starting grid.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GridPosition {
    /// 1-based order of the line in the file.
    #[serde(skip_deserializing)]
    pub position_display_order: u32,
    /// Grid slot, `None` for `PL` (pit lane).
    #[serde(skip_deserializing, rename = "positionNumber")]
    pub position: Option<u32>,
    /// The slot as written.
    #[serde(rename(deserialize = "position"), deserialize_with = "de::text")]
    pub position_text: String,
    /// Car number.
    #[serde(deserialize_with = "de::text")]
    pub driver_number: String,
    /// Driver.
    pub driver_id: String,
    /// Constructor.
    pub constructor_id: String,
    /// Engine manufacturer.
    pub engine_manufacturer_id: String,
    /// Tyre manufacturer.
    pub tyre_manufacturer_id: String,
    /// Grid penalty as written: places (`5`) or a code (`SFB`, start from the back).
    #[serde(default, deserialize_with = "de::opt_text")]
    pub grid_penalty: Option<String>,
    /// `grid_penalty` in places, when a number.
    #[serde(skip_deserializing)]
    pub grid_penalty_positions: Option<u32>,
    /// Qualifying time that set the slot.
    #[serde(default)]
    pub time: Option<String>,
    /// `time` in milliseconds.
    #[serde(skip_deserializing)]
    pub time_millis: Option<u64>,
}

/// One pit stop.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PitStop {
    /// 1-based order of the line in the file.
    #[serde(skip_deserializing)]
    pub position_display_order: u32,
    /// Order of the stop in the race's stop list.
    #[serde(skip_deserializing, rename = "positionNumber")]
    pub position: Option<u32>,
    /// The order as written.
    #[serde(rename(deserialize = "position"), deserialize_with = "de::text")]
    pub position_text: String,
    /// Car number.
    #[serde(deserialize_with = "de::text")]
    pub driver_number: String,
    /// Driver.
    pub driver_id: String,
    /// Constructor.
    pub constructor_id: String,
    /// Engine manufacturer.
    pub engine_manufacturer_id: String,
    /// Tyre manufacturer.
    pub tyre_manufacturer_id: String,
    /// The driver's n-th stop.
    pub stop: u32,
    /// Lap of the stop.
    pub lap: u32,
    /// Pit-lane time (`22.124`).
    #[serde(default)]
    pub time: Option<String>,
    /// `time` in milliseconds.
    #[serde(skip_deserializing)]
    pub time_millis: Option<u64>,
}

/// A driver's fastest lap of a race; position 1 is the race's fastest lap.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FastestLap {
    /// 1-based order of the line in the file.
    #[serde(skip_deserializing)]
    pub position_display_order: u32,
    /// Rank of the lap.
    #[serde(skip_deserializing, rename = "positionNumber")]
    pub position: Option<u32>,
    /// The rank as written.
    #[serde(rename(deserialize = "position"), deserialize_with = "de::text")]
    pub position_text: String,
    /// Car number.
    #[serde(deserialize_with = "de::text")]
    pub driver_number: String,
    /// Driver.
    pub driver_id: String,
    /// Constructor.
    pub constructor_id: String,
    /// Engine manufacturer.
    pub engine_manufacturer_id: String,
    /// Tyre manufacturer.
    pub tyre_manufacturer_id: String,
    /// Lap number, when known.
    #[serde(default)]
    pub lap: Option<u32>,
    /// Lap time (`1:26.103`).
    #[serde(default)]
    pub time: Option<String>,
    /// `time` in milliseconds.
    #[serde(skip_deserializing)]
    pub time_millis: Option<u64>,
    /// Gap to the fastest.
    #[serde(default)]
    pub gap: Option<String>,
    /// `gap` in milliseconds.
    #[serde(skip_deserializing)]
    pub gap_millis: Option<i64>,
    /// Gap to the lap ranked above.
    #[serde(default)]
    pub interval: Option<String>,
    /// `interval` in milliseconds.
    #[serde(skip_deserializing)]
    pub interval_millis: Option<i64>,
}

/// A line of drivers' standings (after a race, or for a season).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Standing {
    /// 1-based order of the line in the file.
    #[serde(skip_deserializing)]
    pub position_display_order: u32,
    /// Championship position, `None` for a status (`EX`: Schumacher 1997).
    #[serde(skip_deserializing, rename = "positionNumber")]
    pub position: Option<u32>,
    /// The position as written.
    #[serde(rename(deserialize = "position"), deserialize_with = "de::text")]
    pub position_text: String,
    /// Driver.
    pub driver_id: String,
    /// Championship points.
    pub points: f64,
}

/// A line of constructors' standings (after a race, or for a season).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConstructorStanding {
    /// 1-based order of the line in the file.
    #[serde(skip_deserializing)]
    pub position_display_order: u32,
    /// Championship position, `None` for a status (`EX`, `DSQ`: McLaren 2007).
    #[serde(skip_deserializing, rename = "positionNumber")]
    pub position: Option<u32>,
    /// The position as written.
    #[serde(rename(deserialize = "position"), deserialize_with = "de::text")]
    pub position_text: String,
    /// Constructor.
    pub constructor_id: String,
    /// Engine manufacturer (standings count constructor and engine together, e.g. Red Bull Honda).
    pub engine_manufacturer_id: String,
    /// Championship points.
    pub points: f64,
}

impl Record for Race {}

fn millis(s: &Option<String>) -> Option<u64> {
    s.as_deref().and_then(de::duration_millis)
}

fn signed(s: &Option<String>) -> Option<i64> {
    s.as_deref().and_then(de::signed_millis)
}

fn order(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

impl Record for RaceResult {
    fn finish(&mut self, index: usize) {
        self.position_display_order = order(index);
        self.position = de::position_number(&self.position_text);
        self.time_millis = millis(&self.time);
        self.time_penalty_millis = millis(&self.time_penalty);
        self.gap_millis = signed(&self.gap);
        self.gap_laps = self.gap.as_deref().and_then(de::gap_laps);
        self.interval_millis = signed(&self.interval);
        self.grid_position = self.grid_position_text.as_deref().and_then(de::position_number);
    }
}

impl Record for QualifyingResult {
    fn finish(&mut self, index: usize) {
        self.position_display_order = order(index);
        self.position = de::position_number(&self.position_text);
        self.time_millis = millis(&self.time);
        self.q1_millis = millis(&self.q1);
        self.q2_millis = millis(&self.q2);
        self.q3_millis = millis(&self.q3);
        self.gap_millis = signed(&self.gap);
        self.interval_millis = signed(&self.interval);
    }
}

impl Record for GridPosition {
    fn finish(&mut self, index: usize) {
        self.position_display_order = order(index);
        self.position = de::position_number(&self.position_text);
        self.grid_penalty_positions = self.grid_penalty.as_deref().and_then(de::position_number);
        self.time_millis = millis(&self.time);
    }
}

impl Record for PitStop {
    fn finish(&mut self, index: usize) {
        self.position_display_order = order(index);
        self.position = de::position_number(&self.position_text);
        self.time_millis = millis(&self.time);
    }
}

impl Record for FastestLap {
    fn finish(&mut self, index: usize) {
        self.position_display_order = order(index);
        self.position = de::position_number(&self.position_text);
        self.time_millis = millis(&self.time);
        self.gap_millis = signed(&self.gap);
        self.interval_millis = signed(&self.interval);
    }
}

impl Record for Standing {
    fn finish(&mut self, index: usize) {
        self.position_display_order = order(index);
        self.position = de::position_number(&self.position_text);
    }
}

impl Record for ConstructorStanding {
    fn finish(&mut self, index: usize) {
        self.position_display_order = order(index);
        self.position = de::position_number(&self.position_text);
    }
}
