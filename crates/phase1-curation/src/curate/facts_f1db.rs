//! Facts from F1DB for the years of the period: race winners, poles, fastest laps and venues;
//! champions and championship places; season win counts; driver, constructor and circuit
//! records. Each fact carries 3-5 question phrasings and one answer sentence that contains
//! its value; keys are stable (`race_winner:2021:22`, `driver_birthplace:lewis-hamilton`).

use std::collections::{BTreeMap, BTreeSet};

use super::text::ordinal;
use super::{Category, Difficulty, Fact, Source};
use crate::f1db::{F1Db, Race};

/// The inclusive year range facts are drawn from.
pub type Years = (u16, u16);

/// A driver's display name, or the id when the record is missing.
pub fn driver_name(db: &F1Db, id: &str) -> String {
    db.drivers.get(id).map_or_else(|| id.to_owned(), |d| d.name.clone())
}

/// A constructor's display name, or the id.
pub fn constructor_name(db: &F1Db, id: &str) -> String {
    db.constructors.get(id).map_or_else(|| id.to_owned(), |c| c.name.clone())
}

/// "2021 Abu Dhabi Grand Prix".
pub fn race_title(db: &F1Db, race: &Race) -> String {
    let gp = db.grands_prix.get(&race.grand_prix_id).map_or(race.grand_prix_id.as_str(), |g| g.full_name.as_str());
    format!("{} {gp}", race.year)
}

/// Points as written in standings: `95` or `95.5`.
pub fn points(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{p:.0}")
    } else {
        format!("{p}")
    }
}

/// Key of a season's win count for one driver.
pub fn season_wins_key(year: u16, driver: &str) -> String {
    format!("driver_season_wins:{year}:{driver}")
}

/// Key of a driver's championship place; the champion's is `driver_champion:<year>`.
pub fn standing_key(year: u16, position: u32, driver: &str) -> String {
    if position == 1 {
        format!("driver_champion:{year}")
    } else {
        format!("driver_standing:{year}:{driver}")
    }
}

/// Key of a constructor's championship place; the champion's is `constructor_champion:<year>`.
pub fn constructor_standing_key(year: u16, position: u32, constructor: &str) -> String {
    if position == 1 {
        format!("constructor_champion:{year}")
    } else {
        format!("constructor_standing:{year}:{constructor}")
    }
}

/// How many drivers (and constructors) of each season's standings get a place fact.
pub const TOP_DRIVERS: usize = 10;
/// Constructors per season with a place fact: the whole field of most seasons of the period
/// (10-12 teams), so that the benchmark's constructor orderings have four-team combinations
/// beyond the top five.
pub const TOP_CONSTRUCTORS: usize = 10;

/// The season's race wins per driver (every driver classified in a race of the year: 0 when
/// they won none).
pub fn season_wins(db: &F1Db, year: u16) -> BTreeMap<String, u32> {
    let mut wins = BTreeMap::new();
    for race in db.races_in(year) {
        for r in &race.results {
            wins.entry(r.driver_id.clone()).or_insert(0);
        }
        for w in db.race_winners(race) {
            *wins.entry(w.driver_id.clone()).or_insert(0) += 1;
        }
    }
    wins
}

struct Builder<'a> {
    db: &'a F1Db,
    archive: String,
    facts: Vec<Fact>,
}

impl Builder<'_> {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        key: String,
        group: Option<String>,
        category: Category,
        difficulty: Difficulty,
        member: &str,
        questions: Vec<String>,
        answer: String,
        value: String,
    ) {
        self.facts.push(Fact {
            group: group.unwrap_or_else(|| key.clone()),
            provenance: format!("{}!{member} [{key}]", self.archive),
            key,
            source: Source::F1db,
            category,
            difficulty,
            questions,
            answer,
            value,
        });
    }

    fn races(&mut self, years: Years) {
        let db = self.db;
        for race in db.races.iter().filter(|r| (years.0..=years.1).contains(&r.year)) {
            let Some(winner) = db.race_winner(race) else { continue };
            let (y, n) = (race.year, race.round);
            let t = race_title(db, race);
            let w = driver_name(db, &winner.driver_id);
            let team = constructor_name(db, &winner.constructor_id);
            self.push(
                format!("race_winner:{y}:{n}"),
                None,
                Category::Results,
                Difficulty::Easy,
                &format!("{}/race-results.yml", race.source),
                vec![
                    format!("Who won the {t}?"),
                    format!("Which driver won the {t}?"),
                    format!("Who was the winner of the {t}?"),
                    format!("Name the driver who took victory at the {t}."),
                ],
                format!("{w} won the {t}, driving for {team}."),
                w,
            );
            if let Some(pole) = race.qualifying.iter().find(|q| q.position == Some(1)) {
                let p = driver_name(db, &pole.driver_id);
                self.push(
                    format!("race_pole:{y}:{n}"),
                    None,
                    Category::Results,
                    Difficulty::Medium,
                    &format!("{}/qualifying-results.yml", race.source),
                    vec![
                        format!("Who took pole position for the {t}?"),
                        format!("Which driver qualified on pole for the {t}?"),
                        format!("Who was the pole-sitter at the {t}?"),
                        format!("Who started the {t} from pole position?"),
                    ],
                    format!("{p} took pole position for the {t}."),
                    p,
                );
            }
            if let Some(fl) = race.fastest_laps.iter().find(|f| f.position == Some(1)) {
                let d = driver_name(db, &fl.driver_id);
                let time = fl.time.as_deref().map(|t| format!(", a {t}")).unwrap_or_default();
                self.push(
                    format!("race_fastest_lap:{y}:{n}"),
                    None,
                    Category::Results,
                    Difficulty::Hard,
                    &format!("{}/fastest-laps.yml", race.source),
                    vec![
                        format!("Who set the fastest lap of the {t}?"),
                        format!("Which driver recorded the fastest race lap at the {t}?"),
                        format!("Who had the quickest lap during the {t}?"),
                    ],
                    format!("{d} set the fastest lap of the {t}{time}."),
                    d,
                );
            }
            if let Some(c) = db.circuits.get(&race.circuit_id) {
                self.push(
                    format!("race_circuit:{y}:{n}"),
                    None,
                    Category::Circuits,
                    Difficulty::Easy,
                    &format!("{}/race.yml", race.source),
                    vec![
                        format!("At which circuit was the {t} held?"),
                        format!("Where was the {t} raced?"),
                        format!("Which track hosted the {t}?"),
                    ],
                    format!("The {t} was held at the {}.", c.full_name),
                    c.full_name.clone(),
                );
            }
        }
    }

    fn seasons(&mut self, years: Years) {
        let db = self.db;
        for year in years.0..=years.1 {
            let Some(season) = db.seasons.get(&year) else { continue };
            let member = format!("{}seasons/{year}/driver-standings.yml", db.data_root);
            let group = Some(format!("standings:{year}"));
            let decided = db.driver_champion(year).is_some();
            for s in season.driver_standings.iter().take(TOP_DRIVERS) {
                let Some(pos) = s.position else { continue };
                let d = driver_name(db, &s.driver_id);
                if pos == 1 && decided {
                    self.push(
                        standing_key(year, 1, &s.driver_id),
                        group.clone(),
                        Category::Standings,
                        Difficulty::Easy,
                        &member,
                        vec![
                            format!("Who won the {year} Formula One drivers' championship?"),
                            format!("Who was the {year} Formula One World Drivers' Champion?"),
                            format!("Which driver became Formula One world champion in {year}?"),
                            format!("Who took the drivers' title in the {year} Formula One season?"),
                        ],
                        format!("{d} won the {year} Formula One drivers' championship with {} points.", points(s.points)),
                        d,
                    );
                } else if pos > 1 {
                    let place = ordinal(pos);
                    self.push(
                        standing_key(year, pos, &s.driver_id),
                        group.clone(),
                        Category::Standings,
                        Difficulty::Medium,
                        &member,
                        vec![
                            format!("Where did {d} finish in the {year} Formula One drivers' championship?"),
                            format!("What was {d}'s final position in the {year} drivers' standings?"),
                            format!("In which place did {d} end the {year} Formula One season?"),
                        ],
                        format!("{d} finished {place} in the {year} Formula One drivers' championship."),
                        place,
                    );
                }
            }
            let member = format!("{}seasons/{year}/constructor-standings.yml", db.data_root);
            let group = Some(format!("constructor-standings:{year}"));
            let decided = db.constructor_champion(year).is_some();
            for s in season.constructor_standings.iter().take(TOP_CONSTRUCTORS) {
                let Some(pos) = s.position else { continue };
                let c = constructor_name(db, &s.constructor_id);
                if pos == 1 && decided {
                    self.push(
                        constructor_standing_key(year, 1, &s.constructor_id),
                        group.clone(),
                        Category::Standings,
                        Difficulty::Easy,
                        &member,
                        vec![
                            format!("Which team won the {year} Formula One constructors' championship?"),
                            format!("Who were the {year} Formula One World Constructors' Champions?"),
                            format!("Which constructor took the {year} constructors' title?"),
                        ],
                        format!("{c} won the {year} Formula One constructors' championship."),
                        c,
                    );
                } else if pos > 1 {
                    let place = ordinal(pos);
                    self.push(
                        constructor_standing_key(year, pos, &s.constructor_id),
                        group.clone(),
                        Category::Standings,
                        Difficulty::Medium,
                        &member,
                        vec![
                            format!("Where did {c} finish in the {year} constructors' championship?"),
                            format!("What was {c}'s final position in the {year} constructors' standings?"),
                            format!("In which place did {c} end the {year} constructors' championship?"),
                        ],
                        format!("{c} finished {place} in the {year} Formula One constructors' championship."),
                        place,
                    );
                }
            }
            // Season win counts of the top drivers: the facts behind count and comparison
            // questions of the benchmark, grouped by season.
            let wins = season_wins(db, year);
            let member = format!("{}seasons/{year}/races/", db.data_root);
            for s in season.driver_standings.iter().take(TOP_DRIVERS) {
                let n = wins.get(&s.driver_id).copied().unwrap_or(0);
                let d = driver_name(db, &s.driver_id);
                let answer = match n {
                    0 => format!("{d} won 0 Grands Prix in {year}: no race victories that season."),
                    1 => format!("{d} won 1 Grand Prix in {year}."),
                    _ => format!("{d} won {n} Grands Prix in {year}."),
                };
                self.push(
                    season_wins_key(year, &s.driver_id),
                    Some(format!("season-wins:{year}")),
                    Category::Results,
                    Difficulty::Medium,
                    &member,
                    vec![
                        format!("How many Grands Prix did {d} win in {year}?"),
                        format!("How many races did {d} win during the {year} Formula One season?"),
                        format!("What was {d}'s number of Grand Prix victories in {year}?"),
                    ],
                    answer,
                    n.to_string(),
                );
            }
        }
    }

    fn entities(&mut self, years: Years) {
        let db = self.db;
        let mut drivers = BTreeSet::new();
        let mut circuits = BTreeSet::new();
        let mut engines: BTreeMap<(u16, String), BTreeSet<String>> = BTreeMap::new();
        for race in db.races.iter().filter(|r| (years.0..=years.1).contains(&r.year)) {
            circuits.insert(race.circuit_id.clone());
            for r in &race.results {
                drivers.insert(r.driver_id.clone());
                engines.entry((race.year, r.constructor_id.clone())).or_default().insert(r.engine_manufacturer_id.clone());
            }
        }
        for id in &drivers {
            let Some(d) = db.drivers.get(id) else { continue };
            let member = format!("{}drivers/{id}.yml", db.data_root);
            let n = &d.name;
            let group = Some(format!("driver:{id}"));
            self.push(
                format!("driver_birthplace:{id}"),
                group.clone(),
                Category::Drivers,
                Difficulty::Medium,
                &member,
                vec![
                    format!("Where was {n} born?"),
                    format!("What is the birthplace of Formula One driver {n}?"),
                    format!("In which town or city was {n} born?"),
                ],
                format!("{n} was born in {}.", d.place_of_birth),
                d.place_of_birth.clone(),
            );
            let born = d.date_of_birth.to_string();
            self.push(
                format!("driver_birthdate:{id}"),
                group.clone(),
                Category::Drivers,
                Difficulty::Hard,
                &member,
                vec![
                    format!("When was {n} born?"),
                    format!("What is {n}'s date of birth?"),
                    format!("On what date was the racing driver {n} born?"),
                ],
                format!("{n} was born on {born}."),
                born,
            );
            if let Some(c) = db.countries.get(&d.nationality_country_id) {
                let nat = c.demonym.clone().unwrap_or_else(|| c.name.clone());
                self.push(
                    format!("driver_nationality:{id}"),
                    group.clone(),
                    Category::Drivers,
                    Difficulty::Easy,
                    &member,
                    vec![
                        format!("What nationality is {n}?"),
                        format!("Which country does Formula One driver {n} represent?"),
                        format!("What is the nationality of {n}?"),
                    ],
                    format!("{n} is {nat} ({})", c.name) + ".",
                    nat,
                );
            }
        }
        for ((year, cid), set) in &engines {
            let (Some(c), true) = (db.constructors.get(cid), set.len() == 1) else { continue };
            let Some(engine) = set.iter().next().and_then(|e| db.engine_manufacturers.get(e)) else { continue };
            let n = &c.name;
            self.push(
                format!("constructor_engine:{year}:{cid}"),
                None,
                Category::Constructors,
                Difficulty::Medium,
                &format!("{}seasons/{year}/races/ (engineManufacturerId of {cid})", db.data_root),
                vec![
                    format!("Which engine manufacturer powered {n} in {year}?"),
                    format!("Whose engines did {n} race with in the {year} season?"),
                    format!("Who supplied {n}'s engines in {year}?"),
                ],
                format!("{n} raced with {} engines in {year}.", engine.name),
                engine.name.clone(),
            );
        }
        let constructors: BTreeSet<&String> = engines.keys().map(|(_, c)| c).collect();
        for cid in constructors {
            let Some(c) = db.constructors.get(cid) else { continue };
            let Some(country) = db.countries.get(&c.country_id) else { continue };
            let n = &c.name;
            self.push(
                format!("constructor_country:{cid}"),
                None,
                Category::Constructors,
                Difficulty::Medium,
                &format!("{}constructors/{cid}.yml", db.data_root),
                vec![
                    format!("Which country is the Formula One constructor {n} from?"),
                    format!("What nationality is the {n} team?"),
                    format!("Under which country's flag does the constructor {n} race?"),
                ],
                format!("{n} is a constructor from {}.", country.name),
                country.name.clone(),
            );
        }
        for id in &circuits {
            let Some(c) = db.circuits.get(id) else { continue };
            let member = format!("{}circuits/{id}.yml", db.data_root);
            let n = &c.full_name;
            let country = db.countries.get(&c.country_id).map_or(c.country_id.as_str(), |k| k.name.as_str());
            let group = Some(format!("circuit:{id}"));
            self.push(
                format!("circuit_location:{id}"),
                group.clone(),
                Category::Circuits,
                Difficulty::Medium,
                &member,
                vec![
                    format!("Where is the {n} located?"),
                    format!("In which place is the {n}?"),
                    format!("Which town or area is home to the {n}?"),
                ],
                format!("The {n} is in {}, {country}.", c.place_name),
                c.place_name.clone(),
            );
            let len = format!("{} km", c.length);
            self.push(
                format!("circuit_length:{id}"),
                group.clone(),
                Category::Circuits,
                Difficulty::Hard,
                &member,
                vec![
                    format!("How long is a lap of the {n} in its current layout?"),
                    format!("What is the lap length of the {n}?"),
                    format!("How many kilometres is one lap of the {n}?"),
                ],
                format!("A lap of the {n} is {len} long in its current layout."),
                len,
            );
            let turns = c.turns.to_string();
            self.push(
                format!("circuit_turns:{id}"),
                group,
                Category::Circuits,
                Difficulty::Hard,
                &member,
                vec![
                    format!("How many turns does the {n} have?"),
                    format!("How many corners are there on the {n}?"),
                    format!("What is the number of turns of the {n} in its current layout?"),
                ],
                format!("The {n} has {turns} turns in its current layout."),
                turns,
            );
        }
    }
}

/// Every F1DB fact of the years in `years`, in a fixed order. `archive` names the archive file
/// in provenance strings.
pub fn facts(db: &F1Db, archive: &str, years: Years) -> Vec<Fact> {
    let mut b = Builder { db, archive: archive.to_owned(), facts: Vec::new() };
    b.races(years);
    b.seasons(years);
    b.entities(years);
    b.facts
}
