//! Reading F1DB's source archive (GitHub's `archive/refs/heads/main.tar.gz`: one top folder,
//! YAML under `src/data/`) straight from the gzip stream, and parsing each member into typed
//! records. Members are read sequentially (a tar stream cannot be split) and parsed in parallel.

use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;
use serde::de::DeserializeOwned;

use super::race::{
    ConstructorStanding, FastestLap, GridPosition, PitStop, QualifyingResult, Race, RaceResult, Standing,
};
use super::records::{Circuit, Constructor, Country, Driver, GrandPrix, Manufacturer, Record};
use super::Reject;
use crate::{Error, Result};

/// Where the YAML tree starts inside the repository.
const DATA_DIR: &str = "src/data/";
/// Largest member read (F1DB's largest, a season's entrants, is about 23 KB).
const MAX_MEMBER_BYTES: u64 = 64 << 20;

/// What a member holds, from its place in the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Driver,
    Constructor,
    Circuit,
    GrandPrix,
    Country,
    EngineManufacturer,
    TyreManufacturer,
    SeasonDriverStandings(u16),
    SeasonConstructorStandings(u16),
    Race { year: u16, slug: String },
    RacePart { year: u16, slug: String, part: Part },
}

/// The per-race files this reader types. Practice, warm-up, pre-qualifying, the separate
/// qualifying sessions and driver-of-the-day votes are left for later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Part {
    Results,
    Qualifying,
    SprintResults,
    Grid,
    SprintGrid,
    PitStops,
    FastestLaps,
    DriverStandings,
    ConstructorStandings,
}

impl Part {
    const ALL: [Part; 9] = [
        Part::Results,
        Part::Qualifying,
        Part::SprintResults,
        Part::Grid,
        Part::SprintGrid,
        Part::PitStops,
        Part::FastestLaps,
        Part::DriverStandings,
        Part::ConstructorStandings,
    ];

    /// The file name in a race folder.
    pub(super) fn file(self) -> &'static str {
        match self {
            Part::Results => "race-results.yml",
            Part::Qualifying => "qualifying-results.yml",
            Part::SprintResults => "sprint-race-results.yml",
            Part::Grid => "starting-grid-positions.yml",
            Part::SprintGrid => "sprint-starting-grid-positions.yml",
            Part::PitStops => "pit-stops.yml",
            Part::FastestLaps => "fastest-laps.yml",
            Part::DriverStandings => "driver-standings.yml",
            Part::ConstructorStandings => "constructor-standings.yml",
        }
    }
}

/// One archive member kept for parsing.
pub(super) struct Member {
    /// Path inside the archive (`f1db-main/src/data/drivers/lewis-hamilton.yml`).
    pub path: String,
    pub kind: Kind,
    pub bytes: Vec<u8>,
}

/// Where a member sits: `(data root, path below it)`, e.g. `("f1db-main/src/data/", "drivers/x.yml")`.
/// The data tree is `src/data/` at the top or one folder down (GitHub's `<repo>-<branch>/`).
pub(super) fn split_data_path(path: &str) -> Option<(&str, &str)> {
    let start = if path.starts_with(DATA_DIR) { 0 } else { path.find('/')? + 1 };
    path[start..].starts_with(DATA_DIR).then(|| path.split_at(start + DATA_DIR.len()))
}

/// The kind of a member from its path below `src/data/`; `Ok(None)` for files this reader
/// does not type, `Err` for a season folder that is not a year.
pub(super) fn classify(rel: &str) -> Result<Option<Kind>, String> {
    let Some(stem) = rel.strip_suffix(".yml") else { return Ok(None) };
    let parts: Vec<&str> = stem.split('/').collect();
    let entity = match parts.as_slice() {
        ["drivers", _] => Kind::Driver,
        ["constructors", _] => Kind::Constructor,
        ["circuits", _] => Kind::Circuit,
        ["grands-prix", _] => Kind::GrandPrix,
        ["countries", _] => Kind::Country,
        ["engine-manufacturers", _] => Kind::EngineManufacturer,
        ["tyre-manufacturers", _] => Kind::TyreManufacturer,
        ["seasons", year, rest @ ..] => {
            let year: u16 = year.parse().map_err(|_| format!("season folder `{year}` is not a year"))?;
            return Ok(match rest {
                ["driver-standings"] => Some(Kind::SeasonDriverStandings(year)),
                ["constructor-standings"] => Some(Kind::SeasonConstructorStandings(year)),
                ["races", slug, "race"] => Some(Kind::Race { year, slug: (*slug).to_owned() }),
                ["races", slug, file] => Part::ALL
                    .into_iter()
                    .find(|p| p.file().strip_suffix(".yml") == Some(file))
                    .map(|part| Kind::RacePart { year, slug: (*slug).to_owned(), part }),
                _ => None,
            });
        }
        _ => return Ok(None),
    };
    Ok(Some(entity))
}

/// Every typed member of the archive, read into memory, plus the data root prefix. A member
/// whose path cannot be classified becomes a reject; an archive that is not gzip+tar, is cut
/// short, or holds no `src/data/` tree is an error naming the archive.
pub(super) fn read_members(archive: &Path, bytes: &[u8], rejects: &mut Vec<Reject>) -> Result<(String, Vec<Member>)> {
    let bad = |reason: String| Error::Parse { path: archive.display().to_string(), line: None, reason };
    let hint = "hint: expected F1DB's GitHub source archive (github.com/f1db/f1db/archive/refs/heads/main.tar.gz)";
    if bytes.get(..2) != Some(&[0x1f, 0x8b]) {
        return Err(bad(format!("not a gzip file; {hint}")));
    }
    let mut tar = tar::Archive::new(GzDecoder::new(bytes));
    let entries = tar.entries().map_err(|e| bad(format!("not a tar.gz archive: {e}; {hint}")))?;
    let mut root: Option<String> = None;
    let mut members = Vec::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("corrupt archive: {e}")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = match entry.path() {
            Ok(p) => p.to_string_lossy().into_owned(),
            Err(e) => return Err(bad(format!("corrupt member name: {e}"))),
        };
        let Some((data_root, rel)) = split_data_path(&path) else { continue };
        let kind = match classify(rel) {
            Ok(Some(kind)) => kind,
            Ok(None) => continue,
            Err(reason) => {
                rejects.push(Reject { source: path, record: None, reason });
                continue;
            }
        };
        if root.is_none() {
            root = Some(data_root.to_owned());
        }
        // A header's declared size is not trusted with an allocation: F1DB's members are a
        // few kilobytes, so one declaring more than MAX_MEMBER_BYTES is corrupt.
        if entry.size() > MAX_MEMBER_BYTES {
            return Err(bad(format!("corrupt archive: member {path} declares {} bytes (F1DB's members are under {MAX_MEMBER_BYTES})", entry.size())));
        }
        let mut buf = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
        entry.read_to_end(&mut buf).map_err(|e| bad(format!("corrupt archive at member {path}: {e}")))?;
        members.push(Member { path, kind, bytes: buf });
    }
    let root = root.ok_or_else(|| bad(format!("no F1DB data tree (`{DATA_DIR}`) in the archive; {hint}")))?;
    Ok((root, members))
}

/// A parsed member.
pub(super) enum Parsed {
    Driver(Driver),
    Constructor(Constructor),
    Circuit(Circuit),
    GrandPrix(GrandPrix),
    Country(Country),
    EngineManufacturer(Manufacturer),
    TyreManufacturer(Manufacturer),
    SeasonDriverStandings(u16, Vec<Standing>),
    SeasonConstructorStandings(u16, Vec<ConstructorStanding>),
    Race { year: u16, slug: String, race: Box<Race> },
    RacePart { year: u16, slug: String, data: PartData },
}

/// The records of one per-race file.
pub(super) enum PartData {
    Results(Vec<RaceResult>),
    Qualifying(Vec<QualifyingResult>),
    SprintResults(Vec<RaceResult>),
    Grid(Vec<GridPosition>),
    SprintGrid(Vec<GridPosition>),
    PitStops(Vec<PitStop>),
    FastestLaps(Vec<FastestLap>),
    DriverStandings(Vec<Standing>),
    ConstructorStandings(Vec<ConstructorStanding>),
}

impl Member {
    /// Parse the member: the records that deserialize, and a reject for each that does not.
    pub(super) fn parse(&self) -> (Option<Parsed>, Vec<Reject>) {
        let mut rejects = Vec::new();
        let parsed = match &self.kind {
            Kind::Driver => self.one(&mut rejects).map(Parsed::Driver),
            Kind::Constructor => self.one(&mut rejects).map(Parsed::Constructor),
            Kind::Circuit => self.one(&mut rejects).map(Parsed::Circuit),
            Kind::GrandPrix => self.one(&mut rejects).map(Parsed::GrandPrix),
            Kind::Country => self.one(&mut rejects).map(Parsed::Country),
            Kind::EngineManufacturer => self.one(&mut rejects).map(Parsed::EngineManufacturer),
            Kind::TyreManufacturer => self.one(&mut rejects).map(Parsed::TyreManufacturer),
            Kind::SeasonDriverStandings(year) => Some(Parsed::SeasonDriverStandings(*year, self.list(&mut rejects))),
            Kind::SeasonConstructorStandings(year) => {
                Some(Parsed::SeasonConstructorStandings(*year, self.list(&mut rejects)))
            }
            Kind::Race { year, slug } => self.one(&mut rejects).map(|race: Race| Parsed::Race {
                year: *year,
                slug: slug.clone(),
                race: Box::new(race),
            }),
            Kind::RacePart { year, slug, part } => {
                let data = match part {
                    Part::Results => PartData::Results(self.list(&mut rejects)),
                    Part::Qualifying => PartData::Qualifying(self.list(&mut rejects)),
                    Part::SprintResults => PartData::SprintResults(self.list(&mut rejects)),
                    Part::Grid => PartData::Grid(self.list(&mut rejects)),
                    Part::SprintGrid => PartData::SprintGrid(self.list(&mut rejects)),
                    Part::PitStops => PartData::PitStops(self.list(&mut rejects)),
                    Part::FastestLaps => PartData::FastestLaps(self.list(&mut rejects)),
                    Part::DriverStandings => PartData::DriverStandings(self.list(&mut rejects)),
                    Part::ConstructorStandings => PartData::ConstructorStandings(self.list(&mut rejects)),
                };
                Some(Parsed::RacePart { year: *year, slug: slug.clone(), data })
            }
        };
        (parsed, rejects)
    }

    /// The file name without `.yml`: the record's id for one-record files.
    fn stem(&self) -> &str {
        let name = self.path.rsplit('/').next().unwrap_or(&self.path);
        name.strip_suffix(".yml").unwrap_or(name)
    }

    /// A file holding one record (a driver, a race header, ...).
    fn one<T: DeserializeOwned + Record>(&self, rejects: &mut Vec<Reject>) -> Option<T> {
        match serde_yaml::from_slice::<T>(&self.bytes) {
            Ok(mut record) => {
                record.finish(0);
                Some(record)
            }
            Err(e) => {
                rejects.push(Reject {
                    source: self.path.clone(),
                    record: Some(self.stem().to_owned()),
                    reason: describe(&e, true),
                });
                None
            }
        }
    }

    /// A file holding a list of records. The whole list is parsed typed first (the fast path);
    /// if that fails, the list is parsed untyped and each record typed on its own, so one bad
    /// record costs only itself.
    fn list<T: DeserializeOwned + Record>(&self, rejects: &mut Vec<Reject>) -> Vec<T> {
        let whole_err = match serde_yaml::from_slice::<Vec<T>>(&self.bytes) {
            Ok(mut records) => {
                records.iter_mut().enumerate().for_each(|(i, r)| r.finish(i));
                return records;
            }
            Err(e) => e,
        };
        let values = match serde_yaml::from_slice::<Vec<serde_yaml::Value>>(&self.bytes) {
            Ok(values) => values,
            Err(_) => {
                rejects.push(Reject { source: self.path.clone(), record: None, reason: describe(&whole_err, true) });
                return Vec::new();
            }
        };
        let mut records = Vec::with_capacity(values.len());
        for (i, value) in values.iter().enumerate() {
            match T::deserialize(value) {
                Ok(mut record) => {
                    record.finish(i);
                    records.push(record);
                }
                Err(e) => rejects.push(Reject {
                    source: self.path.clone(),
                    record: Some(record_label(i, value)),
                    reason: describe_record::<T>(value, &e),
                }),
            }
        }
        records
    }
}

/// `#3 (max-verstappen)`: the 1-based place of a record in its file and the id it is about.
fn record_label(index: usize, value: &serde_yaml::Value) -> String {
    let id = ["driverId", "constructorId"].iter().find_map(|k| value.get(k).and_then(serde_yaml::Value::as_str));
    match id {
        Some(id) => format!("#{} ({id})", index + 1),
        None => format!("#{}", index + 1),
    }
}

/// Why one record of a list failed, naming the field. Deserializing from a `Value` loses the
/// field path, so the record is written back to YAML text and parsed again from there, where
/// serde_yaml tracks it; its line numbers refer to that text, so they are dropped.
fn describe_record<T: DeserializeOwned>(value: &serde_yaml::Value, err: &serde_yaml::Error) -> String {
    let reparsed = serde_yaml::to_string(value).ok().and_then(|text| serde_yaml::from_str::<T>(&text).err());
    match reparsed {
        Some(e) => describe(&e, false),
        None => describe(err, false),
    }
}

/// serde_yaml's message, `path: message at line L column C`, as `field path: message ...`.
fn describe(err: &serde_yaml::Error, keep_location: bool) -> String {
    let mut msg = err.to_string();
    if !keep_location && err.location().is_some() {
        if let Some(at) = msg.rfind(" at line ") {
            msg.truncate(at);
        }
    }
    // serde's own messages ("invalid type: ...", "missing field `x`") have spaces before the
    // first colon; serde_yaml's path prefix ("dateOfBirth", "[3].laps") never does.
    match msg.split_once(": ") {
        Some((path, rest)) if !path.is_empty() && !path.contains(char::is_whitespace) => {
            format!("field {path}: {rest}")
        }
        _ => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_paths() {
        assert_eq!(split_data_path("f1db-main/src/data/drivers/x.yml"), Some(("f1db-main/src/data/", "drivers/x.yml")));
        assert_eq!(split_data_path("src/data/drivers/x.yml"), Some(("src/data/", "drivers/x.yml")));
        assert_eq!(split_data_path("f1db-main/src/schema/x.json"), None);
        assert_eq!(split_data_path("a/b/src/data/x.yml"), None);
        assert_eq!(classify("drivers/x.yml"), Ok(Some(Kind::Driver)));
        assert_eq!(classify("chassis/x.yml"), Ok(None));
        assert_eq!(classify("seasons/2021/driver-standings.yml"), Ok(Some(Kind::SeasonDriverStandings(2021))));
        assert_eq!(
            classify("seasons/2021/races/22-abu-dhabi/race.yml"),
            Ok(Some(Kind::Race { year: 2021, slug: "22-abu-dhabi".into() }))
        );
        assert_eq!(
            classify("seasons/2021/races/22-abu-dhabi/pit-stops.yml"),
            Ok(Some(Kind::RacePart { year: 2021, slug: "22-abu-dhabi".into(), part: Part::PitStops }))
        );
        assert_eq!(classify("seasons/2021/races/22-abu-dhabi/free-practice-1-results.yml"), Ok(None));
        assert_eq!(classify("seasons/2021/entrants.yml"), Ok(None));
        assert!(classify("seasons/20x1/driver-standings.yml").is_err());
    }

    fn member(path: &str, yaml: &str) -> Member {
        let (_, rel) = split_data_path(path).expect("data path");
        let kind = classify(rel).expect("classifies").expect("typed kind");
        Member { path: path.into(), kind, bytes: yaml.as_bytes().to_vec() }
    }

    #[test]
    fn one_bad_record_costs_only_itself() {
        let yaml = "- position: 1\n  driverId: a\n  points: 10\n- position: 2\n  driverId: b\n  points: lots\n- position: EX\n  driverId: c\n  points: 0\n";
        let m = member("f1db-main/src/data/seasons/1997/driver-standings.yml", yaml);
        let (parsed, rejects) = m.parse();
        let Some(Parsed::SeasonDriverStandings(1997, rows)) = parsed else { panic!("standings expected") };
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[1].position, rows[1].position_text.as_str(), rows[1].position_display_order), (None, "EX", 3));
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].record.as_deref(), Some("#2 (b)"));
        assert!(rejects[0].reason.starts_with("field points: invalid type: string \"lots\""), "{}", rejects[0].reason);
    }

    #[test]
    fn yaml_syntax_error_rejects_the_member_with_its_line() {
        let m = member("f1db-main/src/data/seasons/1997/driver-standings.yml", "- position: 1\n  driverId: [a\n");
        let (parsed, rejects) = m.parse();
        assert!(matches!(parsed, Some(Parsed::SeasonDriverStandings(_, ref rows)) if rows.is_empty()));
        assert_eq!(rejects.len(), 1);
        assert!(rejects[0].record.is_none());
        assert!(rejects[0].reason.contains("line"), "{}", rejects[0].reason);
    }

    #[test]
    fn describes_missing_fields_without_a_path() {
        let m = member("f1db-main/src/data/grands-prix/x.yml", "id: x\nname: X\n");
        let (parsed, rejects) = m.parse();
        assert!(parsed.is_none());
        assert!(rejects[0].reason.starts_with("missing field `fullName`"), "{}", rejects[0].reason);
    }
}
