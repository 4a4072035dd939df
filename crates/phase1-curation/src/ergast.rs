//! A reader of the Ergast-schema CSVs (Kaggle "Formula 1 race data", via
//! github.com/TracingInsights/RaceData `data/`) and their reconciliation against F1DB.
//!
//! The CSVs are split by polars' CSV reader (feature `csv` only: no lazy engine), every column
//! read as text with `\N` as null, then the columns we use are cast to numbers in polars. Two
//! things polars would hide are checked by us so that a bad row names its file and line: a
//! quote-aware pre-scan counts the fields of every record (a record with more fields than
//! the header, or too few to reach a column we read, becomes a [`Reject`] and is left out
//! of what polars sees), and a number that does not parse (polars' non-strict cast gives
//! null) becomes a reject too. Short records that only lack trailing columns we do not read
//! are kept, as polars' `missing_is_null` does: the mirror's 2025 rows of `races.csv` stop
//! after `url`.
//!
//! [`reconcile`] compares the two sources where they overlap: the winner of every race
//! (matched by year and round), the drivers' champion of every season both hold completely,
//! and the points leader after the last round Ergast has of each season. Ergast drivers
//! are matched to F1DB ids by name, with the rules of [`NameRule`]. Every difference is
//! returned as a [`Disagreement`]; nothing is dropped silently.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Cursor;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use polars::prelude::*;
use serde::Serialize;

use crate::f1db::{Date, F1Db};
use crate::{Error, Reject, Result};

/// A race of `races.csv`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ErgastRace {
    /// `raceId`.
    pub race_id: i64,
    /// Season.
    pub year: u16,
    /// Round within the season.
    pub round: u32,
    /// `name`, e.g. `Australian Grand Prix`.
    pub name: String,
    /// `date`, `YYYY-MM-DD`.
    pub date: String,
}

/// A driver of `drivers.csv`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ErgastDriver {
    /// `driverId`.
    pub driver_id: i64,
    /// `driverRef`, e.g. `hamilton`.
    pub driver_ref: String,
    /// `forename`.
    pub forename: String,
    /// `surname`.
    pub surname: String,
    /// `dob`, when given and a valid date.
    pub dob: Option<Date>,
}

impl ErgastDriver {
    /// `forename surname`.
    pub fn name(&self) -> String {
        format!("{} {}", self.forename, self.surname)
    }
}

/// A line of `results.csv`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ErgastResult {
    /// `raceId`.
    pub race_id: i64,
    /// `driverId`.
    pub driver_id: i64,
    /// Finishing position; `None` (`\N`) when not classified.
    pub position: Option<u32>,
    /// `positionOrder`: the order of the line, classified or not.
    pub position_order: u32,
    /// Points scored.
    pub points: f64,
}

/// A line of `driver_standings.csv`: the standings after a race.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ErgastStanding {
    /// `raceId`.
    pub race_id: i64,
    /// `driverId`.
    pub driver_id: i64,
    /// Championship points after the race.
    pub points: f64,
    /// Championship position.
    pub position: Option<u32>,
    /// Wins so far.
    pub wins: u32,
}

/// The Ergast tables this crate uses, typed, with the rows that did not load.
#[derive(Clone, Debug, Default)]
pub struct Ergast {
    /// `races.csv`, sorted by `(year, round)`.
    pub races: Vec<ErgastRace>,
    /// `drivers.csv` by `driverId`.
    pub drivers: BTreeMap<i64, ErgastDriver>,
    /// `results.csv`.
    pub results: Vec<ErgastResult>,
    /// `driver_standings.csv`.
    pub driver_standings: Vec<ErgastStanding>,
    /// Rows left out: wrong field count, a number that does not parse, a required value missing.
    pub rejects: Vec<Reject>,
}

/// How a column is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Integer, never null.
    Int,
    /// Integer or `\N`.
    OptInt,
    /// Float, never null.
    Float,
    /// Text, never null.
    Text,
    /// Text or `\N`.
    OptText,
}

/// One CSV read by [`read_csv`]: the frame (only good rows; numeric columns cast) and, per
/// row, its 1-based line in the file.
#[derive(Clone, Debug)]
pub struct Table {
    /// The file.
    pub path: PathBuf,
    /// The good rows.
    pub frame: DataFrame,
    /// `lines[i]` is the line of row `i` in `path`.
    pub lines: Vec<usize>,
}

impl Table {
    fn err(&self, column: &str, e: PolarsError) -> Error {
        Error::Parse { path: self.path.display().to_string(), line: None, reason: format!("column `{column}`: {e}") }
    }

    /// An integer column (read as [`Kind::Int`] or [`Kind::OptInt`]).
    pub fn ints(&self, column: &str) -> Result<Vec<Option<i64>>> {
        let col = self.frame.column(column).map_err(|e| self.err(column, e))?;
        Ok(col.i64().map_err(|e| self.err(column, e))?.iter().collect())
    }

    /// A float column (read as [`Kind::Float`]).
    pub fn floats(&self, column: &str) -> Result<Vec<Option<f64>>> {
        let col = self.frame.column(column).map_err(|e| self.err(column, e))?;
        Ok(col.f64().map_err(|e| self.err(column, e))?.iter().collect())
    }

    /// A text column.
    pub fn texts(&self, column: &str) -> Result<Vec<Option<String>>> {
        let col = self.frame.column(column).map_err(|e| self.err(column, e))?;
        Ok(col.str().map_err(|e| self.err(column, e))?.iter().map(|s| s.map(str::to_owned)).collect())
    }
}

/// One record found by [`scan_records`].
struct Record {
    line: usize,
    fields: usize,
    bytes: Range<usize>,
}

/// Split `bytes` into CSV records (RFC 4180 quoting: a quoted field may hold commas, `""`
/// and newlines), counting the fields of each and the line it starts on.
fn scan_records(bytes: &[u8]) -> Vec<Record> {
    let mut records = Vec::new();
    let (mut start, mut line, mut start_line, mut fields, mut quoted) = (0, 1, 1, 1, false);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => fields += 1,
            b'\n' => {
                line += 1;
                if !quoted {
                    let end = if i > start && bytes[i - 1] == b'\r' { i - 1 } else { i };
                    if end > start {
                        records.push(Record { line: start_line, fields, bytes: start..end });
                    }
                    (start, start_line, fields) = (i + 1, line, 1);
                }
            }
            _ => {}
        }
    }
    if start < bytes.len() && !bytes[start..].iter().all(|b| b.is_ascii_whitespace()) {
        records.push(Record { line: start_line, fields, bytes: start..bytes.len() });
    }
    records
}

/// Read a CSV with polars, checking the `columns` we use. A record with more fields than the
/// header, one too short to hold a column we read, a missing required value or a number that
/// does not parse becomes a reject naming the file and line; a file without a header, or
/// without a column we read, is an error.
pub fn read_csv(path: &Path, columns: &[(&str, Kind)]) -> Result<(Table, Vec<Reject>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let parse_err =
        |line: Option<usize>, reason: String| Error::Parse { path: path.display().to_string(), line, reason };
    let records = scan_records(&bytes);
    let Some(header) = records.first() else {
        return Err(parse_err(Some(1), "empty file: expected a header line".into()));
    };
    let names: Vec<String> = String::from_utf8_lossy(&bytes[header.bytes.clone()])
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_owned())
        .collect();
    let mut needed = 0;
    for (column, _) in columns {
        match names.iter().position(|n| n == column) {
            Some(i) => needed = needed.max(i + 1),
            None => {
                return Err(parse_err(Some(1), format!("no column `{column}` in the header ({})", names.join(","))))
            }
        }
    }

    // Keep the records polars can read; reject the rest with their line.
    let mut rejects = Vec::new();
    let mut kept = bytes[header.bytes.clone()].to_vec();
    kept.push(b'\n');
    let mut lines = Vec::new();
    for record in &records[1..] {
        if record.fields > names.len() {
            let reason = format!("{} fields, the header has {}", record.fields, names.len());
            rejects.push(Reject::line(path, record.line, reason));
        } else if record.fields < needed {
            let reason =
                format!("{} fields, too few to reach column `{}` ({needed})", record.fields, names[needed - 1]);
            rejects.push(Reject::line(path, record.line, reason));
        } else {
            kept.extend_from_slice(&bytes[record.bytes.clone()]);
            kept.push(b'\n');
            lines.push(record.line);
        }
    }

    // Every column as text: numbers are cast below, where a failure can name its row.
    let schema: Schema = names.iter().map(|n| Field::new(n.as_str().into(), DataType::String)).collect();
    let polars_err = |e: PolarsError| parse_err(None, format!("polars: {e}"));
    let mut frame = CsvReadOptions::default()
        .with_has_header(true)
        .with_schema(Some(Arc::new(schema)))
        .map_parse_options(|o| o.with_null_values(Some(NullValues::AllColumnsSingle("\\N".into()))))
        .into_reader_with_file_handle(Cursor::new(kept))
        .finish()
        .map_err(polars_err)?;
    if frame.height() != lines.len() {
        return Err(parse_err(None, format!("polars read {} rows, the scan found {}", frame.height(), lines.len())));
    }

    let mut good = vec![true; lines.len()];
    for &(column, kind) in columns {
        let text = frame.column(column).map_err(polars_err)?.clone();
        let values = text.str().map_err(polars_err)?;
        let target = match kind {
            Kind::Int | Kind::OptInt => Some(DataType::Int64),
            Kind::Float => Some(DataType::Float64),
            Kind::Text | Kind::OptText => None,
        };
        let cast = match &target {
            Some(dtype) => Some(text.cast(dtype).map_err(polars_err)?),
            None => None,
        };
        let required = matches!(kind, Kind::Int | Kind::Float | Kind::Text);
        for (row, value) in values.iter().enumerate() {
            let reason = match value {
                None if required => Some(format!("column `{column}` is empty (`\\N`)")),
                None => None,
                Some(v) => match &cast {
                    Some(c) if c.get(row).map_err(polars_err)?.is_null() => {
                        Some(format!("column `{column}`: `{v}` is not a number"))
                    }
                    _ => None,
                },
            };
            if let Some(reason) = reason {
                if good[row] {
                    rejects.push(Reject::line(path, lines[row], reason));
                }
                good[row] = false;
            }
        }
        if let Some(cast) = cast {
            frame.replace(column, cast).map_err(polars_err)?;
        }
    }
    let mask = BooleanChunked::from_slice("good".into(), &good);
    let frame = frame.filter(&mask).map_err(polars_err)?;
    let lines = lines.into_iter().zip(&good).filter(|(_, g)| **g).map(|(l, _)| l).collect();
    rejects.sort_by_key(|r| r.line_number());
    Ok((Table { path: path.to_owned(), frame, lines }, rejects))
}

/// An integer that must fit `T`; a value out of range is a reject naming the line.
fn narrow<T: TryFrom<i64>>(table: &Table, row: usize, column: &str, v: i64, rejects: &mut Vec<Reject>) -> Option<T> {
    let out = T::try_from(v).ok();
    if out.is_none() {
        rejects.push(Reject::line(&table.path, table.lines[row], format!("column `{column}`: {v} is out of range")));
    }
    out
}

impl Ergast {
    /// Read `races.csv`, `drivers.csv`, `results.csv` and `driver_standings.csv` from `dir`
    /// (the mirror's `ergast/`).
    pub fn load(dir: &Path) -> Result<Ergast> {
        let mut out = Ergast::default();
        let rejects = &mut out.rejects;

        let (t, r) = read_csv(
            &dir.join("races.csv"),
            &[
                ("raceId", Kind::Int),
                ("year", Kind::Int),
                ("round", Kind::Int),
                ("name", Kind::Text),
                ("date", Kind::OptText),
            ],
        )?;
        rejects.extend(r);
        let (ids, years, rounds, names, dates) =
            (t.ints("raceId")?, t.ints("year")?, t.ints("round")?, t.texts("name")?, t.texts("date")?);
        for row in 0..t.lines.len() {
            let (Some(year), Some(round)) = (
                narrow(&t, row, "year", years[row].unwrap_or_default(), rejects),
                narrow(&t, row, "round", rounds[row].unwrap_or_default(), rejects),
            ) else {
                continue;
            };
            out.races.push(ErgastRace {
                race_id: ids[row].unwrap_or_default(),
                year,
                round,
                name: names[row].clone().unwrap_or_default(),
                date: dates[row].clone().unwrap_or_default(),
            });
        }
        out.races.sort_by_key(|r| (r.year, r.round));

        let (t, r) = read_csv(
            &dir.join("drivers.csv"),
            &[
                ("driverId", Kind::Int),
                ("driverRef", Kind::Text),
                ("forename", Kind::Text),
                ("surname", Kind::Text),
                ("dob", Kind::OptText),
            ],
        )?;
        rejects.extend(r);
        let (ids, refs, fore, sur, dob) =
            (t.ints("driverId")?, t.texts("driverRef")?, t.texts("forename")?, t.texts("surname")?, t.texts("dob")?);
        for row in 0..t.lines.len() {
            let driver_id = ids[row].unwrap_or_default();
            out.drivers.insert(
                driver_id,
                ErgastDriver {
                    driver_id,
                    driver_ref: refs[row].clone().unwrap_or_default(),
                    forename: fore[row].clone().unwrap_or_default(),
                    surname: sur[row].clone().unwrap_or_default(),
                    dob: dob[row].as_deref().and_then(|d| d.parse().ok()),
                },
            );
        }

        let (t, r) = read_csv(
            &dir.join("results.csv"),
            &[
                ("raceId", Kind::Int),
                ("driverId", Kind::Int),
                ("position", Kind::OptInt),
                ("positionOrder", Kind::Int),
                ("points", Kind::Float),
            ],
        )?;
        rejects.extend(r);
        let (races, drivers, pos, order, points) = (
            t.ints("raceId")?,
            t.ints("driverId")?,
            t.ints("position")?,
            t.ints("positionOrder")?,
            t.floats("points")?,
        );
        for row in 0..t.lines.len() {
            let position = match pos[row] {
                Some(p) => match narrow(&t, row, "position", p, rejects) {
                    Some(p) => Some(p),
                    None => continue,
                },
                None => None,
            };
            let Some(position_order) = narrow(&t, row, "positionOrder", order[row].unwrap_or_default(), rejects) else {
                continue;
            };
            out.results.push(ErgastResult {
                race_id: races[row].unwrap_or_default(),
                driver_id: drivers[row].unwrap_or_default(),
                position,
                position_order,
                points: points[row].unwrap_or_default(),
            });
        }

        let (t, r) = read_csv(
            &dir.join("driver_standings.csv"),
            &[
                ("raceId", Kind::Int),
                ("driverId", Kind::Int),
                ("points", Kind::Float),
                ("position", Kind::OptInt),
                ("wins", Kind::Int),
            ],
        )?;
        rejects.extend(r);
        let (races, drivers, points, pos, wins) =
            (t.ints("raceId")?, t.ints("driverId")?, t.floats("points")?, t.ints("position")?, t.ints("wins")?);
        for row in 0..t.lines.len() {
            let position = pos[row].and_then(|p| narrow(&t, row, "position", p, rejects));
            let Some(wins) = narrow(&t, row, "wins", wins[row].unwrap_or_default(), rejects) else { continue };
            out.driver_standings.push(ErgastStanding {
                race_id: races[row].unwrap_or_default(),
                driver_id: drivers[row].unwrap_or_default(),
                points: points[row].unwrap_or_default(),
                position,
                wins,
            });
        }
        tracing::info!(
            races = out.races.len(),
            drivers = out.drivers.len(),
            results = out.results.len(),
            rejects = out.rejects.len(),
            "loaded Ergast CSVs from {}",
            dir.display()
        );
        Ok(out)
    }

    /// The race with `race_id`.
    pub fn race(&self, race_id: i64) -> Option<&ErgastRace> {
        self.races.iter().find(|r| r.race_id == race_id)
    }
}

/// How an Ergast driver was matched to an F1DB driver, tried in this order; within a rule,
/// several candidates are narrowed by date of birth, and a rule that still leaves more
/// than one candidate (or none) falls through to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum NameRule {
    /// `forename surname`, normalised (accents stripped, case folded, punctuation to
    /// spaces), equals F1DB's `name`, `firstName lastName` or `fullName`, normalised.
    Exact,
    /// Surnames equal (normalised) and one first name is a word prefix of the other:
    /// Ergast's "Juan Fangio" is F1DB's "Juan Manuel Fangio".
    SurnameFirstNamePrefix,
    /// Same date of birth and at least one name word in common: "Alessandro Zanardi" is
    /// "Alex Zanardi", "Jyrki Järvilehto" is "JJ Lehto" (full name Jyrki Juhani Järvilehto).
    BirthDateAndNameWord,
}

/// An Ergast driver matched to F1DB by a rule other than [`NameRule::Exact`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NameMatch {
    /// `forename surname` as Ergast spells it.
    pub ergast_name: String,
    /// The F1DB driver id.
    pub f1db_id: String,
    /// The rule that matched.
    pub rule: NameRule,
}

/// What a [`Disagreement`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum DisagreementKind {
    /// A race (year, round) with results in one source only, within Ergast's span.
    MissingRace,
    /// Different winners.
    Winner,
    /// Different drivers' champions.
    Champion,
    /// Different points leaders (or points) after the same round.
    PointsLeader,
    /// An Ergast driver in a compared fact that no rule matches to F1DB.
    UnmatchedDriver,
}

/// One difference between F1DB and Ergast.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Disagreement {
    /// What is compared.
    pub kind: DisagreementKind,
    /// Which race or season: `1951 round 4`, `1988`.
    pub key: String,
    /// F1DB's value.
    pub f1db: String,
    /// Ergast's value (its F1DB id when matched, else its name).
    pub ergast: String,
    /// Why, when known.
    pub note: String,
}

/// The result of [`reconcile`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct Reconciliation {
    /// Races (same year and round) with a classification in both sources.
    pub races_compared: usize,
    /// Of those, races whose winners agree.
    pub winners_agree: usize,
    /// Seasons held completely by both, with a decided drivers' championship.
    pub seasons_compared: usize,
    /// Of those, seasons whose champions agree.
    pub champions_agree: usize,
    /// Seasons whose standings after Ergast's last round of the season are compared.
    pub leaders_compared: usize,
    /// Of those, seasons whose points leader and points agree.
    pub leaders_agree: usize,
    /// Ergast drivers matched by [`NameRule::Exact`].
    pub names_exact: usize,
    /// Ergast drivers matched by another rule, with the rule.
    pub name_matches_by_rule: Vec<NameMatch>,
    /// Ergast drivers no rule matches (`forename surname (driverRef)`), whether or not they
    /// appear in a compared fact.
    pub unmatched_drivers: Vec<String>,
    /// Every difference found.
    pub disagreements: Vec<Disagreement>,
}

/// Lowercase, strip the accents of Latin letters, and turn everything but letters and
/// digits into single spaces: "Kimi Räikkönen" → "kimi raikkonen", "Jean-Éric" → "jean eric".
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        let folded = match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
            'æ' => "ae",
            'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => "c",
            'ď' | 'đ' | 'ð' => "d",
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
            'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
            'ĥ' | 'ħ' => "h",
            'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
            'ĵ' => "j",
            'ķ' => "k",
            'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
            'ñ' | 'ń' | 'ņ' | 'ň' => "n",
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => "o",
            'œ' => "oe",
            'ŕ' | 'ŗ' | 'ř' => "r",
            'ś' | 'ŝ' | 'ş' | 'š' | 'ș' => "s",
            'ß' => "ss",
            'ţ' | 'ť' | 'ŧ' | 'ț' => "t",
            'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
            'ŵ' => "w",
            'ý' | 'ÿ' | 'ŷ' => "y",
            'ź' | 'ż' | 'ž' => "z",
            'þ' => "th",
            c if c.is_alphanumeric() => {
                out.push(c);
                continue;
            }
            _ => " ",
        };
        out.push_str(folded);
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// F1DB's name fields of one driver, normalised once.
struct Candidate<'a> {
    id: &'a str,
    names: [String; 3],
    first: Vec<String>,
    last: String,
    dob: Date,
    words: BTreeSet<String>,
}

fn words(s: &str) -> Vec<String> {
    s.split(' ').filter(|w| !w.is_empty()).map(str::to_owned).collect()
}

/// One list of words is a prefix of the other.
fn word_prefix(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    n > 0 && a[..n] == b[..n]
}

/// Match every Ergast driver to an F1DB id by the [`NameRule`]s.
pub fn match_drivers(f1db: &F1Db, ergast: &Ergast) -> (BTreeMap<i64, (String, NameRule)>, Vec<String>) {
    let candidates: Vec<Candidate> = f1db
        .drivers
        .values()
        .map(|d| {
            let names = [
                normalize_name(&d.name),
                normalize_name(&format!("{} {}", d.first_name, d.last_name)),
                normalize_name(&d.full_name),
            ];
            let all_words: BTreeSet<String> = names.iter().flat_map(|n| words(n)).collect();
            Candidate {
                id: &d.id,
                first: words(&normalize_name(&d.first_name)),
                last: normalize_name(&d.last_name),
                dob: d.date_of_birth,
                names,
                words: all_words,
            }
        })
        .collect();
    let mut matched = BTreeMap::new();
    let mut unmatched = Vec::new();
    for driver in ergast.drivers.values() {
        let name = normalize_name(&driver.name());
        let first = words(&normalize_name(&driver.forename));
        let last = normalize_name(&driver.surname);
        let own_words: Vec<String> = words(&name);
        let same_dob = |c: &Candidate| driver.dob == Some(c.dob);
        let test = |rule: NameRule, c: &Candidate| match rule {
            NameRule::Exact => c.names.contains(&name),
            NameRule::SurnameFirstNamePrefix => c.last == last && word_prefix(&first, &c.first),
            NameRule::BirthDateAndNameWord => same_dob(c) && own_words.iter().any(|w| c.words.contains(w)),
        };
        let rules = [NameRule::Exact, NameRule::SurnameFirstNamePrefix, NameRule::BirthDateAndNameWord];
        let found = rules.into_iter().find_map(|rule| {
            let mut hits: Vec<&Candidate> = candidates.iter().filter(|c| test(rule, c)).collect();
            if hits.len() > 1 {
                hits.retain(|c| same_dob(c));
            }
            (hits.len() == 1).then(|| (hits[0].id.to_owned(), rule))
        });
        match found {
            Some(m) => {
                matched.insert(driver.driver_id, m);
            }
            None => unmatched.push(format!("{} ({})", driver.name(), driver.driver_ref)),
        }
    }
    (matched, unmatched)
}

/// Compare Ergast with F1DB: winners per race, champions per season, points leaders per
/// season. See the module documentation for what is compared and how drivers are matched.
pub fn reconcile(f1db: &F1Db, ergast: &Ergast) -> Reconciliation {
    let (matched, unmatched_drivers) = match_drivers(f1db, ergast);
    let mut out = Reconciliation { unmatched_drivers, ..Reconciliation::default() };
    for (id, (f1db_id, rule)) in &matched {
        match rule {
            NameRule::Exact => out.names_exact += 1,
            _ => out.name_matches_by_rule.push(NameMatch {
                ergast_name: ergast.drivers[id].name(),
                f1db_id: f1db_id.clone(),
                rule: *rule,
            }),
        }
    }
    // An Ergast driver as F1DB names it, or by his Ergast name when no rule matched.
    let show = |driver_id: i64| -> std::result::Result<String, String> {
        match matched.get(&driver_id) {
            Some((id, _)) => Ok(id.clone()),
            None => {
                Err(ergast.drivers.get(&driver_id).map(ErgastDriver::name).unwrap_or(format!("driverId {driver_id}")))
            }
        }
    };
    let unmatched_in = |key: &str, ids: &[std::result::Result<String, String>], out: &mut Reconciliation| {
        for name in ids.iter().filter_map(|r| r.as_ref().err()) {
            out.disagreements.push(Disagreement {
                kind: DisagreementKind::UnmatchedDriver,
                key: key.to_owned(),
                f1db: String::new(),
                ergast: name.clone(),
                note: "no name rule matches this Ergast driver to F1DB".into(),
            });
        }
    };
    let join = |ids: &[std::result::Result<String, String>]| {
        ids.iter().map(|r| r.clone().unwrap_or_else(|e| e)).collect::<Vec<_>>().join(" + ")
    };

    // Winners, race by race.
    let mut results_by_race: HashMap<i64, Vec<&ErgastResult>> = HashMap::new();
    for r in &ergast.results {
        results_by_race.entry(r.race_id).or_default().push(r);
    }
    let mut ergast_rounds: BTreeSet<(u16, u32)> = BTreeSet::new();
    for race in &ergast.races {
        let Some(lines) = results_by_race.get(&race.race_id) else { continue };
        let key = format!("{} round {}", race.year, race.round);
        ergast_rounds.insert((race.year, race.round));
        let Some(f1db_race) = f1db.race(race.year, race.round).filter(|r| !r.results.is_empty()) else {
            out.disagreements.push(Disagreement {
                kind: DisagreementKind::MissingRace,
                key,
                f1db: "no classification".into(),
                ergast: race.name.clone(),
                note: "race with results in Ergast only".into(),
            });
            continue;
        };
        out.races_compared += 1;
        let theirs: Vec<_> = lines.iter().filter(|r| r.position == Some(1)).map(|r| show(r.driver_id)).collect();
        let ours: Vec<String> = f1db.race_winners(f1db_race).iter().map(|r| r.driver_id.clone()).collect();
        unmatched_in(&key, &theirs, &mut out);
        let theirs_set: BTreeSet<&str> = theirs.iter().filter_map(|r| r.as_deref().ok()).collect();
        let ours_set: BTreeSet<&str> = ours.iter().map(String::as_str).collect();
        if theirs_set == ours_set && theirs.len() == theirs_set.len() {
            out.winners_agree += 1;
        } else {
            let note = if ours.len() > 1 || theirs.len() > 1 { "shared winning car" } else { "" };
            out.disagreements.push(Disagreement {
                kind: DisagreementKind::Winner,
                key,
                f1db: ours.join(" + "),
                ergast: join(&theirs),
                note: note.into(),
            });
        }
    }
    // F1DB races within Ergast's span that Ergast lacks.
    if let Some(&last) = ergast_rounds.last() {
        for race in f1db.races.iter().filter(|r| !r.results.is_empty() && (r.year, r.round) <= last) {
            if !ergast_rounds.contains(&(race.year, race.round)) {
                out.disagreements.push(Disagreement {
                    kind: DisagreementKind::MissingRace,
                    key: format!("{} round {}", race.year, race.round),
                    f1db: race.official_name.clone(),
                    ergast: "no classification".into(),
                    note: "race with results in F1DB only".into(),
                });
            }
        }
    }

    // Standings after the last round Ergast has of each season.
    let race_of: HashMap<i64, &ErgastRace> = ergast.races.iter().map(|r| (r.race_id, r)).collect();
    let mut last_round: BTreeMap<u16, &ErgastRace> = BTreeMap::new();
    for s in &ergast.driver_standings {
        if let Some(race) = race_of.get(&s.race_id) {
            let slot = last_round.entry(race.year).or_insert(race);
            if race.round > slot.round {
                *slot = race;
            }
        }
    }
    let mut standings_by_race: HashMap<i64, Vec<&ErgastStanding>> = HashMap::new();
    for s in &ergast.driver_standings {
        standings_by_race.entry(s.race_id).or_default().push(s);
    }
    for (&year, race) in &last_round {
        let key = format!("{year} after round {}", race.round);
        let theirs_rows: Vec<&ErgastStanding> = standings_by_race
            .get(&race.race_id)
            .map(|rows| rows.iter().copied().filter(|s| s.position == Some(1)).collect())
            .unwrap_or_default();
        let theirs: Vec<_> = theirs_rows.iter().map(|s| show(s.driver_id)).collect();
        unmatched_in(&key, &theirs, &mut out);
        let Some(f1db_race) = f1db.race(year, race.round) else { continue };
        let ours_rows: Vec<_> = f1db_race.driver_standings.iter().filter(|s| s.position == Some(1)).collect();
        if ours_rows.is_empty() {
            continue;
        }
        out.leaders_compared += 1;
        let ours: BTreeSet<&str> = ours_rows.iter().map(|s| s.driver_id.as_str()).collect();
        let theirs_set: BTreeSet<&str> = theirs.iter().filter_map(|r| r.as_deref().ok()).collect();
        let points_agree = ours_rows.iter().all(|o| theirs_rows.iter().all(|t| (o.points - t.points).abs() < 1e-6));
        let ours_text = |rows: &[&crate::f1db::Standing]| {
            rows.iter().map(|s| format!("{} {}", s.driver_id, s.points)).collect::<Vec<_>>().join(" + ")
        };
        if ours == theirs_set && theirs.len() == theirs_set.len() && points_agree {
            out.leaders_agree += 1;
        } else {
            let theirs_text = theirs_rows
                .iter()
                .zip(&theirs)
                .map(|(s, id)| format!("{} {}", id.clone().unwrap_or_else(|e| e), s.points))
                .collect::<Vec<_>>()
                .join(" + ");
            let note = if ours == theirs_set { "same leader, different points" } else { "different leader" };
            out.disagreements.push(Disagreement {
                kind: DisagreementKind::PointsLeader,
                key: key.clone(),
                f1db: ours_text(&ours_rows),
                ergast: theirs_text,
                note: note.into(),
            });
        }

        // Champions: the season complete in both and decided in F1DB.
        let f1db_rounds = f1db.races_in(year).iter().filter(|r| !r.results.is_empty()).count();
        let ergast_rounds_in_year = ergast_rounds.range((year, 0)..=(year, u32::MAX)).count();
        let complete = f1db_rounds == ergast_rounds_in_year
            && f1db.races_in(year).iter().filter(|r| !r.results.is_empty()).all(|r| r.round <= race.round);
        let Some(champion) = f1db.driver_champion(year).filter(|_| complete) else { continue };
        out.seasons_compared += 1;
        if theirs_set.len() == 1 && theirs_set.contains(champion) {
            out.champions_agree += 1;
        } else {
            out.disagreements.push(Disagreement {
                kind: DisagreementKind::Champion,
                key: year.to_string(),
                f1db: champion.to_owned(),
                ergast: join(&theirs),
                note: "Ergast's champion is the leader of its standings after the season's last round".into(),
            });
        }
    }
    out.disagreements.sort_by(|a, b| (a.kind, &a.key).cmp(&(b.kind, &b.key)));
    out
}

/// The CSVs [`Ergast::load`] reads.
pub const TABLES: [&str; 4] = ["races.csv", "drivers.csv", "results.csv", "driver_standings.csv"];

/// Where the mirror keeps the Ergast CSVs.
pub fn ergast_dir() -> PathBuf {
    crate::data_dir().join("ergast")
}
