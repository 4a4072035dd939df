//! A typed reader of F1DB (github.com/f1db/f1db, CC BY 4.0; attribution: F1DB), the open
//! database of every Formula 1 World Championship race since 1950.
//!
//! [`F1Db::load`] reads GitHub's source archive of the repository (`f1db-main.tar.gz`) in
//! place: the gzip stream is walked once, the YAML members under `src/data/` are kept in
//! memory and parsed in parallel into typed records ([`Driver`], [`Race`], [`RaceResult`],
//! ...) whose fields follow F1DB's YAML and its JSON schema (`src/schema/current/splitted/`).
//! A record that does not fit its type becomes a [`Reject`] naming the archive member and
//! the field; the rest of the archive still loads. [`F1Db::check_references`] then checks that every id a race,
//! result or standing names exists.
//!
//! What is typed: drivers, constructors, circuits, grands prix, countries, engine and tyre
//! manufacturers, season standings, and per race the header, classification, qualifying,
//! sprint, grids, pit stops, fastest laps and standings after the race. Chassis, engines,
//! entrants, practice sessions and driver-of-the-day votes are skipped for now.

mod archive;
mod check;
mod de;
mod race;
mod records;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rayon::prelude::*;

use self::archive::{Parsed, PartData};
pub use self::de::{duration_millis, gap_laps, signed_millis, Date};
pub use self::race::{
    ConstructorStanding, FastestLap, GridPosition, PitStop, QualifyingFormat, QualifyingResult, Race, RaceResult,
    Season, SprintQualifyingFormat, Standing,
};
pub use self::records::{
    ChronologyEntry, Circuit, CircuitLayout, CircuitType, Constructor, Country, Direction, Driver, FamilyRelationship,
    Gender, GrandPrix, Manufacturer,
};
pub use crate::Reject;
use crate::{Error, Result};

/// The whole of F1DB, typed and indexed by id.
#[derive(Clone, Debug)]
pub struct F1Db {
    /// Drivers by id.
    pub drivers: BTreeMap<String, Driver>,
    /// Constructors by id.
    pub constructors: BTreeMap<String, Constructor>,
    /// Circuits by id.
    pub circuits: BTreeMap<String, Circuit>,
    /// Grand Prix titles by id.
    pub grands_prix: BTreeMap<String, GrandPrix>,
    /// Countries by id.
    pub countries: BTreeMap<String, Country>,
    /// Engine manufacturers by id.
    pub engine_manufacturers: BTreeMap<String, Manufacturer>,
    /// Tyre manufacturers by id.
    pub tyre_manufacturers: BTreeMap<String, Manufacturer>,
    /// Seasons by year: every year with standings or races.
    pub seasons: BTreeMap<u16, Season>,
    /// Every race, run or scheduled, sorted by `(year, round)`.
    pub races: Vec<Race>,
    /// Lowercase hex sha256 of the archive file, to pin derived data to its source.
    pub source_hash: String,
    /// Archive path of the data tree, e.g. `f1db-main/src/data/`.
    pub data_root: String,
    /// Records (or whole members) that did not load, with the reason.
    pub rejects: Vec<Reject>,
}

impl F1Db {
    /// Load the whole archive. Bad records become [`F1Db::rejects`]; a file that cannot be
    /// read or is not F1DB's `.tar.gz` is an error naming it.
    pub fn load(archive: &Path) -> Result<F1Db> {
        let bytes = std::fs::read(archive).map_err(|e| Error::io(archive, e))?;
        let source_hash = f1_study::hash::sha256_hex(&bytes);
        let mut rejects = Vec::new();
        let (data_root, members) = archive::read_members(archive, &bytes, &mut rejects)?;
        let parsed: Vec<(Option<Parsed>, Vec<Reject>)> = members.par_iter().map(archive::Member::parse).collect();

        let mut db = F1Db {
            drivers: BTreeMap::new(),
            constructors: BTreeMap::new(),
            circuits: BTreeMap::new(),
            grands_prix: BTreeMap::new(),
            countries: BTreeMap::new(),
            engine_manufacturers: BTreeMap::new(),
            tyre_manufacturers: BTreeMap::new(),
            seasons: BTreeMap::new(),
            races: Vec::new(),
            source_hash,
            data_root,
            rejects: Vec::new(),
        };
        // Race folders: header first, then the parts, whatever the archive order.
        let mut races: HashMap<(u16, String), Race> = HashMap::new();
        let mut parts: Vec<(u16, String, String, PartData)> = Vec::new();
        for (member, (parsed, member_rejects)) in members.iter().zip(parsed) {
            rejects.extend(member_rejects);
            let path = &member.path;
            let Some(parsed) = parsed else { continue };
            match parsed {
                Parsed::Driver(r) => insert_entity(&mut db.drivers, path, r.id.clone(), r, &mut rejects),
                Parsed::Constructor(r) => insert_entity(&mut db.constructors, path, r.id.clone(), r, &mut rejects),
                Parsed::Circuit(r) => insert_entity(&mut db.circuits, path, r.id.clone(), r, &mut rejects),
                Parsed::GrandPrix(r) => insert_entity(&mut db.grands_prix, path, r.id.clone(), r, &mut rejects),
                Parsed::Country(r) => insert_entity(&mut db.countries, path, r.id.clone(), r, &mut rejects),
                Parsed::EngineManufacturer(r) => {
                    insert_entity(&mut db.engine_manufacturers, path, r.id.clone(), r, &mut rejects)
                }
                Parsed::TyreManufacturer(r) => {
                    insert_entity(&mut db.tyre_manufacturers, path, r.id.clone(), r, &mut rejects)
                }
                Parsed::SeasonDriverStandings(year, rows) => db.season_mut(year).driver_standings = rows,
                Parsed::SeasonConstructorStandings(year, rows) => db.season_mut(year).constructor_standings = rows,
                Parsed::Race { year, slug, race } => {
                    let mut race = *race;
                    race.year = year;
                    race.source = path.strip_suffix("/race.yml").unwrap_or(path).to_owned();
                    db.season_mut(year);
                    races.insert((year, slug), race);
                }
                Parsed::RacePart { year, slug, data } => parts.push((year, slug, path.clone(), data)),
            }
        }
        for (year, slug, path, data) in parts {
            let Some(race) = races.get_mut(&(year, slug)) else {
                rejects.push(Reject { source: path, record: None, reason: "race folder has no loadable race.yml".into() });
                continue;
            };
            match data {
                PartData::Results(rows) => race.results = rows,
                PartData::Qualifying(rows) => race.qualifying = rows,
                PartData::SprintResults(rows) => race.sprint_results = rows,
                PartData::Grid(rows) => race.grid = rows,
                PartData::SprintGrid(rows) => race.sprint_grid = rows,
                PartData::PitStops(rows) => race.pit_stops = rows,
                PartData::FastestLaps(rows) => race.fastest_laps = rows,
                PartData::DriverStandings(rows) => race.driver_standings = rows,
                PartData::ConstructorStandings(rows) => race.constructor_standings = rows,
            }
        }
        db.races = races.into_values().collect();
        db.races.sort_by(|a, b| (a.year, a.round, &a.source).cmp(&(b.year, b.round, &b.source)));
        db.races.iter_mut().for_each(mark_pole_and_fastest_lap);
        for pair in db.races.windows(2) {
            if (pair[0].year, pair[0].round) == (pair[1].year, pair[1].round) {
                rejects.push(Reject {
                    source: format!("{}/race.yml", pair[1].source),
                    record: Some(format!("{} round {}", pair[1].year, pair[1].round)),
                    reason: format!("round {} of {} is also {}", pair[1].round, pair[1].year, pair[0].source),
                });
            }
        }
        rejects.sort_by(|a, b| (&a.source, &a.record).cmp(&(&b.source, &b.record)));
        db.rejects = rejects;
        tracing::info!(
            races = db.races.len(),
            drivers = db.drivers.len(),
            rejects = db.rejects.len(),
            "loaded F1DB from {}",
            archive.display()
        );
        Ok(db)
    }

    /// Every id named by a race, result, standing or entity that is not in its table: a
    /// reject per dangling reference, naming the member, the race (or record) and the id.
    pub fn check_references(&self) -> Vec<Reject> {
        check::check_references(self)
    }

    /// The race of `year` with `round`.
    pub fn race(&self, year: u16, round: u32) -> Option<&Race> {
        let start = self.races.partition_point(|r| (r.year, r.round) < (year, round));
        self.races.get(start).filter(|r| (r.year, r.round) == (year, round))
    }

    /// The races of `year`, by round.
    pub fn races_in(&self, year: u16) -> &[Race] {
        let start = self.races.partition_point(|r| r.year < year);
        let end = self.races.partition_point(|r| r.year <= year);
        &self.races[start..end]
    }

    /// The winner's classification line: the first line with position 1. `None` for races
    /// not yet run. Three 1950s races were won by a shared car (1951 France, 1956 Argentina,
    /// 1957 Britain); F1DB lists the driver who started it first and the one who took it over
    /// second, marked `shared_car`. This returns the first; [`F1Db::race_winners`] returns both.
    pub fn race_winner<'a>(&self, race: &'a Race) -> Option<&'a RaceResult> {
        race.results.iter().find(|r| r.position == Some(1))
    }

    /// Every classification line with position 1: one driver, or two for a shared winning car.
    pub fn race_winners<'a>(&self, race: &'a Race) -> Vec<&'a RaceResult> {
        race.results.iter().filter(|r| r.position == Some(1)).collect()
    }

    /// The drivers' champion of `year`, once the title is decided (a race of the year is
    /// marked `driversChampionshipDecider`); `None` for a season still open.
    pub fn driver_champion(&self, year: u16) -> Option<&str> {
        if !self.races_in(year).iter().any(|r| r.drivers_championship_decider) {
            return None;
        }
        let season = self.seasons.get(&year)?;
        season.driver_standings.iter().find(|s| s.position == Some(1)).map(|s| s.driver_id.as_str())
    }

    /// The constructors' champion of `year` (from 1958), once decided.
    pub fn constructor_champion(&self, year: u16) -> Option<&str> {
        if !self.races_in(year).iter().any(|r| r.constructors_championship_decider) {
            return None;
        }
        let season = self.seasons.get(&year)?;
        season.constructor_standings.iter().find(|s| s.position == Some(1)).map(|s| s.constructor_id.as_str())
    }

    fn season_mut(&mut self, year: u16) -> &mut Season {
        self.seasons.entry(year).or_insert_with(|| Season { year, ..Season::default() })
    }
}

/// Insert an entity under its id; the id must match the file name, as F1DB's tooling keeps it.
fn insert_entity<T>(map: &mut BTreeMap<String, T>, path: &str, id: String, record: T, rejects: &mut Vec<Reject>) {
    let stem = path.rsplit('/').next().and_then(|n| n.strip_suffix(".yml")).unwrap_or(path);
    if stem != id {
        rejects.push(Reject {
            source: path.to_owned(),
            record: Some(id.clone()),
            reason: format!("id `{id}` does not match the file name `{stem}.yml`"),
        });
        return;
    }
    map.insert(id, record);
}

/// Fill each result's `pole_position` (qualifying position 1) and `fastest_lap` (fastest-laps
/// position 1), when the race has those files. Lines are matched on driver and car number: in
/// the 1950s a driver could appear twice in one classification, in his own car and in one he
/// took over.
fn mark_pole_and_fastest_lap(race: &mut Race) {
    let pole =
        race.qualifying.iter().find(|q| q.position == Some(1)).map(|q| (q.driver_id.clone(), q.driver_number.clone()));
    let fastest = race
        .fastest_laps
        .iter()
        .find(|f| f.position == Some(1))
        .map(|f| (f.driver_id.clone(), f.driver_number.clone()));
    let has_qualifying = !race.qualifying.is_empty();
    let has_fastest = !race.fastest_laps.is_empty();
    let is = |who: &Option<(String, String)>, r: &RaceResult| {
        who.as_ref().is_some_and(|(driver, number)| *driver == r.driver_id && *number == r.driver_number)
    };
    for result in &mut race.results {
        result.pole_position = has_qualifying.then(|| is(&pole, result));
        result.fastest_lap = has_fastest.then(|| is(&fastest, result));
    }
}
