//! Reader for the F1 live-timing static API: the `<Stream>.jsonStream` files that FastF1 reads
//! from `livetiming.formula1.com/static/<year>/<event>/<session>/`, turned into laps, stints,
//! pit stops and race-control messages.
//!
//! # Format
//!
//! Each line is `HH:MM:SS.mmm{json}`: the time since the session's streams started, then a JSON
//! *delta*. A file may open with a UTF-8 BOM. Deltas are partial updates of one running state
//! per stream, merged by [`merge`]: objects merge key by key, recursively; an object delta
//! applied to an array updates the elements its index-string keys name (`{"Sectors":{"2":{..}}}`
//! after a first `"Sectors":[..]`), extending the array when needed; an array delta merges
//! element by element; a `"_deleted": [keys]` entry removes those keys first; anything else
//! replaces the old value. A line that does not parse (bad timestamp, bad JSON, a payload that is
//! not an object, bytes that are not UTF-8) becomes a [`Reject`] naming the file and the 1-based
//! line; so does a value the reconstruction needs but cannot read (a lap time that is not
//! `M:SS.mmm`). Blank lines carry nothing and are skipped.
//!
//! # Streams read
//!
//! `SessionInfo` (meeting, session name and type, path), `DriverList` (TLA, names, team),
//! `TimingData` (laps and pit stops), `TimingAppData` (tyre stints), `RaceControlMessages`,
//! `TrackStatus`, `SessionStatus` (start of the session) and `LapCount` (scheduled laps). Any
//! of them may be missing (the 2023 Baku sprint has no race-control stream, the sprint shootout
//! no lap count); the parts they feed are then empty. Other streams are listed in
//! [`SessionInfo::streams`] but not read.
//!
//! # Laps
//!
//! Our own method, built from what the 2018-2025 files show. `TimingData` sends, per driver,
//! `NumberOfLaps` (laps completed) when the car crosses the line, usually in the same delta as
//! the third sector time and `LastLapTime`, but the lap time sometimes arrives up to a second
//! before or after the counter. So, per driver:
//! - sector 1 and sector 2 values (`Sectors` 0 and 1) belong to the lap in progress;
//! - when `NumberOfLaps` increases, the lap in progress is completed: it takes the position at
//!   that moment and the stream time as `session_time_ms`, and is held *pending*;
//! - a `LastLapTime` or sector-3 value arriving within [`LATE_WINDOW_MS`] after the counter goes
//!   to the pending lap (the latest value wins); one arriving within that window *before* the
//!   counter is kept for it; older values are stale and dropped;
//! - the pending lap is emitted when the next lap's first sector arrives, when the window
//!   closes, or at the end of the stream.
//!
//! Laps the counter skips (never seen in these files) are emitted without times; a counter that
//! goes back is ignored. A lap with no `LastLapTime` (lap 1 of a race in 2018; out- and in-laps
//! in qualifying) has `lap_time_ms: None`. `pit_in` and `pit_out` mark the lap in progress when
//! `InPit` turned true or `PitOut` turned true, counted from the first `SessionStatus` "Started"
//! (before it, cars drive to the grid or wait in the pit lane).
//!
//! # Pit stops
//!
//! No `PitLaneTimeCollection` stream is in the mirror, so stops come from `TimingData`: a visit
//! runs from `InPit` turning true to it turning false, and counts as a stop when the driver's
//! `NumberOfPitStops` rose during it (which excludes the pre-race pit lane and the garage at the
//! start of a session). `duration_ms` is therefore the pit-lane time, not the stationary time:
//! Hamilton's first stop at Baku 2018 gives 20.35 s where Ergast's `pit_stops.csv` has 20.377 s.
//! `lap` is the in-lap (laps completed at entry, plus one), as Ergast counts it. In qualifying
//! the counter also rises on returns to the garage, so there a "stop" is a garage visit, minutes
//! long, and the last of the session has no exit (`duration_ms: None`).
//!
//! # Stints
//!
//! From the final `TimingAppData` state: each entry of a driver's `Stints` list is a set of
//! tyres, with `StartLaps` (the tyres' age when fitted) and `TotalLaps` (their age now). The
//! stint covers `TotalLaps - StartLaps` laps; stints follow each other, so the first starts on
//! lap 1 and each next one on the lap after the previous one ends. The feed sometimes stops
//! updating `TotalLaps` before the flag (most drivers of the 2025 Miami sprint, two in Baku
//! 2018), so a last stint can end a lap short of the driver's laps; it is left as sent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::{Error, Result};

pub use crate::Reject;

/// How long after a lap's counter increment its late lap time or sector 3 is still accepted
/// (and how long before it an early one is kept). Observed gaps are under 2 s; the next lap's
/// first sector comes 20 s or more after the line.
pub const LATE_WINDOW_MS: u64 = 5_000;

/// One parsed line of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Delta {
    /// Milliseconds since the session's streams started.
    pub time_ms: u64,
    /// 1-based line in the file.
    pub line: usize,
    /// The JSON delta (always an object).
    pub value: Value,
}

/// A stream file: its deltas in file order and the lines that did not parse.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    /// The file, as given to [`parse_stream`].
    pub path: PathBuf,
    /// Parsed lines.
    pub deltas: Vec<Delta>,
    /// Lines that did not parse.
    pub rejects: Vec<Reject>,
}

impl Stream {
    /// The state after every delta has been merged into an empty object.
    pub fn final_state(&self) -> Value {
        let mut state = Value::Object(Map::new());
        for d in &self.deltas {
            merge(&mut state, &d.value);
        }
        state
    }
}

/// What the session is: from `SessionInfo` (and `LapCount`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// e.g. "Azerbaijan Grand Prix".
    pub meeting_name: String,
    /// e.g. "FORMULA 1 AZERBAIJAN GRAND PRIX 2023" (not in 2018 files).
    pub meeting_official_name: Option<String>,
    /// e.g. "Baku".
    pub location: String,
    /// e.g. "Azerbaijan".
    pub country: String,
    /// e.g. "Race", "Sprint", "Sprint Shootout".
    pub session_name: String,
    /// e.g. "Race", "Qualifying".
    pub session_type: String,
    /// Local start, e.g. "2018-04-29T16:10:00".
    pub start_date: String,
    /// Offset of local time from UTC, e.g. "04:00:00".
    pub gmt_offset: String,
    /// The API path, e.g. "2018/2018-04-29_Azerbaijan_Grand_Prix/2018-04-29_Race/".
    pub path: String,
    /// Scheduled laps (`LapCount.TotalLaps`), for races.
    pub total_laps: Option<u32>,
    /// Stream names found in the folder, sorted (e.g. "TimingData").
    pub streams: Vec<String>,
}

/// A driver entered in the session, from `DriverList`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DriverInfo {
    /// Three-letter abbreviation, e.g. "HAM".
    pub tla: String,
    /// As the feed spells it, e.g. "Lewis HAMILTON".
    pub full_name: String,
    /// e.g. "Lewis".
    pub first_name: String,
    /// e.g. "Hamilton".
    pub last_name: String,
    /// e.g. "Mercedes".
    pub team_name: String,
}

/// One completed lap of one driver (see the module documentation for the method).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lap {
    /// Racing number.
    pub driver: String,
    /// 1-based lap number.
    pub lap_number: u32,
    /// `LastLapTime` for this lap.
    pub lap_time_ms: Option<u64>,
    /// Sector times.
    pub sector_ms: [Option<u64>; 3],
    /// Position when the lap was completed.
    pub position: Option<u32>,
    /// The driver entered the pit lane during this lap.
    pub pit_in: bool,
    /// The driver left the pit lane during this lap.
    pub pit_out: bool,
    /// Stream time at which the lap was completed.
    pub session_time_ms: u64,
}

/// One set of tyres used by one driver, from `TimingAppData`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stint {
    /// Racing number.
    pub driver: String,
    /// 1-based.
    pub stint_number: u32,
    /// e.g. "SOFT"; `None` when absent or "UNKNOWN".
    pub compound: Option<String>,
    /// New (unused) tyres.
    pub new_tyre: Option<bool>,
    /// Tyre age in laps when fitted (`StartLaps`).
    pub tyre_age_start: u32,
    /// Tyre age in laps at the end of the stint (`TotalLaps`).
    pub tyre_age_end: u32,
    /// Laps driven in this stint.
    pub laps: u32,
    /// First lap of the stint.
    pub start_lap: u32,
    /// Last lap of the stint; `None` when it has no laps yet.
    pub end_lap: Option<u32>,
}

/// One pit stop: a pit-lane visit during which `NumberOfPitStops` rose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PitStop {
    /// Racing number.
    pub driver: String,
    /// The in-lap.
    pub lap: Option<u32>,
    /// Stream time of pit entry.
    pub session_time_ms: u64,
    /// Pit-lane time (entry to exit); `None` if the car had not left when the stream ended.
    pub duration_ms: Option<u64>,
}

/// A message from race control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RaceControlMessage {
    /// Stream time at which it arrived.
    pub session_time_ms: u64,
    /// UTC time stamp as sent, e.g. "2018-04-29T12:14:31".
    pub utc: String,
    /// e.g. "Flag", "SafetyCar", "Drs", "Other", "CarEvent".
    pub category: String,
    /// The text, e.g. "SAFETY CAR DEPLOYED".
    pub message: String,
    /// For flags, e.g. "YELLOW", "GREEN", "BLUE".
    pub flag: Option<String>,
    /// For safety cars and DRS, e.g. "DEPLOYED", "DISABLED".
    pub status: Option<String>,
    /// Race lap at the time.
    pub lap: Option<u32>,
    /// Racing number of the driver concerned.
    pub driver: Option<String>,
}

/// A change of the track status (`TrackStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrackStatus {
    /// Stream time of the change.
    pub session_time_ms: u64,
    /// Code: "1" clear, "2" yellow, "4" safety car, "5" red, "6"/"7" virtual safety car.
    pub status: String,
    /// e.g. "SCDeployed".
    pub message: String,
}

/// Everything read from one session folder.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Session {
    /// What the session is.
    pub info: SessionInfo,
    /// Drivers by racing number.
    pub drivers: BTreeMap<String, DriverInfo>,
    /// Completed laps, in order of completion.
    pub laps: Vec<Lap>,
    /// Tyre stints, by driver then stint.
    pub stints: Vec<Stint>,
    /// Pit stops, in order of pit entry.
    pub pit_stops: Vec<PitStop>,
    /// Race-control messages, in order.
    pub race_control: Vec<RaceControlMessage>,
    /// Track-status changes, in order.
    pub track_status: Vec<TrackStatus>,
    /// Lines and values that could not be read.
    pub rejects: Vec<Reject>,
}

// ---------------------------------------------------------------------------------------------
// Lines and merging

/// Parse a stream time stamp `H:MM:SS.mmm` (any number of hour digits) into milliseconds.
pub fn parse_timestamp(s: &str) -> Option<u64> {
    let mut parts = s.split(':');
    let (h, m, rest) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || h.is_empty() || m.len() != 2 {
        return None;
    }
    let (sec, milli) = rest.split_once('.')?;
    if sec.len() != 2 || milli.len() != 3 {
        return None;
    }
    let h = digits(h)?;
    let m = digits(m)?;
    let sec = digits(sec)?;
    let milli = digits(milli)?;
    if m >= 60 || sec >= 60 {
        return None;
    }
    Some(((h * 60 + m) * 60 + sec) * 1000 + milli)
}

/// Parse a lap or sector time: `SS.fff`, `M:SS.fff` or `H:MM:SS.fff` (1 to 3 decimals).
pub fn parse_lap_time(s: &str) -> Option<u64> {
    let s = s.trim();
    let (whole, frac) = s.split_once('.')?;
    if frac.is_empty() || frac.len() > 3 {
        return None;
    }
    let frac_ms = digits(frac)? * 10u64.pow(3 - frac.len() as u32);
    let mut secs = 0u64;
    let fields: Vec<&str> = whole.split(':').collect();
    if fields.len() > 3 {
        return None;
    }
    for (i, f) in fields.iter().enumerate() {
        let v = digits(f)?;
        if i > 0 && (f.len() != 2 || v >= 60) {
            return None;
        }
        secs = secs * 60 + v;
    }
    Some(secs * 1000 + frac_ms)
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Split a stream file into deltas and rejects. `file` is only used to name rejects.
pub fn parse_stream(bytes: &[u8], file: &Path) -> Stream {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut stream = Stream { path: file.to_path_buf(), ..Stream::default() };
    let reject = |line: usize, reason: String| Reject::line(file, line, reason);
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(line) = std::str::from_utf8(raw) else {
            stream.rejects.push(reject(line_no, "not valid UTF-8".into()));
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        let Some(brace) = line.find(['{', '[', '"']) else {
            stream.rejects.push(reject(line_no, format!("no JSON after the time stamp: {:?}", clip(line))));
            continue;
        };
        let (stamp, json) = line.split_at(brace);
        let Some(time_ms) = parse_timestamp(stamp) else {
            stream.rejects.push(reject(line_no, format!("bad time stamp {:?} (expected HH:MM:SS.mmm)", clip(stamp))));
            continue;
        };
        match serde_json::from_str::<Value>(json) {
            Ok(value @ Value::Object(_)) => stream.deltas.push(Delta { time_ms, line: line_no, value }),
            Ok(_) => stream.rejects.push(reject(line_no, "the delta is not a JSON object".into())),
            Err(e) => stream.rejects.push(reject(line_no, format!("bad JSON: {e}"))),
        }
    }
    stream
}

/// Read and parse one `.jsonStream` file.
pub fn read_stream(path: &Path) -> Result<Stream> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(parse_stream(&bytes, path))
}

fn clip(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Longest array a delta may grow by index.
const MAX_ARRAY_LEN: usize = 100_000;

/// Merge a delta into a running state, following the live-timing rules in the module docs.
pub fn merge(state: &mut Value, delta: &Value) {
    match delta {
        Value::Object(d) => {
            if !state.is_object() && !state.is_array() {
                *state = Value::Object(Map::new());
            }
            let deleted: Vec<&str> =
                d.get("_deleted").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            match state {
                Value::Object(s) => {
                    for key in deleted {
                        s.remove(key);
                    }
                    for (k, v) in d.iter().filter(|(k, _)| k.as_str() != "_deleted") {
                        merge(s.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
                Value::Array(s) => {
                    let mut gone: Vec<usize> = deleted.iter().filter_map(|k| k.parse().ok()).collect();
                    gone.sort_unstable_by(|a, b| b.cmp(a));
                    for i in gone {
                        if i < s.len() {
                            s.remove(i);
                        }
                    }
                    // Keys that are not indices have no place in an array; the feed never sends
                    // them, so they are left out rather than turning the array into an object.
                    for (k, v) in d.iter() {
                        if let Ok(i) = k.parse::<usize>() {
                            // An index sizes the array: one past any real feed's (laps, race
                            // control messages: hundreds) is dropped, not allocated.
                            if i >= MAX_ARRAY_LEN {
                                tracing::warn!(index = i, max = MAX_ARRAY_LEN, "live-timing delta: array index out of range, ignored");
                                continue;
                            }
                            if s.len() <= i {
                                s.resize(i + 1, Value::Null);
                            }
                            merge(&mut s[i], v);
                        }
                    }
                }
                _ => {}
            }
        }
        Value::Array(d) => {
            if let Value::Array(s) = state {
                if s.len() < d.len() {
                    s.resize(d.len(), Value::Null);
                }
                for (slot, v) in s.iter_mut().zip(d) {
                    merge(slot, v);
                }
            } else {
                *state = delta.clone();
            }
        }
        _ => *state = delta.clone(),
    }
}

/// The entries of an object or array, as (key, value). Object keys that are indices come first
/// in numeric order ("2" before "10"), then the others in key order.
pub fn entries(v: &Value) -> Vec<(String, &Value)> {
    match v {
        Value::Array(a) => a.iter().enumerate().map(|(i, x)| (i.to_string(), x)).collect(),
        Value::Object(o) => {
            let mut out: Vec<(String, &Value)> = o.iter().map(|(k, x)| (k.clone(), x)).collect();
            out.sort_by_key(|(k, _)| (k.parse::<u64>().map_or((1, 0), |n| (0, n)), k.clone()));
            out
        }
        _ => Vec::new(),
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(v: Option<&Value>) -> Option<u32> {
    match v? {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn flag(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions

/// Every folder under `root` (itself included) that holds at least one `.jsonStream` file,
/// sorted.
pub fn discover_sessions(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut has_stream = false;
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let path = entry.map_err(|e| Error::io(&dir, e))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "jsonStream") {
                has_stream = true;
            }
        }
        if has_stream {
            found.push(dir);
        }
    }
    found.sort();
    Ok(found)
}

/// Read one session folder (`livetiming/<year>/<event>/<session>/`).
pub fn load_session(dir: &Path) -> Result<Session> {
    let mut streams = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.extension().is_some_and(|e| e == "jsonStream") {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                streams.push(stem.to_string());
            }
        }
    }
    if streams.is_empty() {
        return Err(Error::Parse {
            path: dir.display().to_string(),
            line: None,
            reason: "no .jsonStream files: not a live-timing session folder (expected livetiming/<year>/<event>/<session>/)".into(),
        });
    }
    streams.sort();

    let mut session = Session::default();
    let mut read = |name: &str| -> Result<Stream> {
        let path = dir.join(format!("{name}.jsonStream"));
        if !path.exists() {
            return Ok(Stream::default());
        }
        let stream = read_stream(&path)?;
        session.rejects.extend(stream.rejects.iter().cloned());
        Ok(stream)
    };
    let info = read("SessionInfo")?;
    let lap_count = read("LapCount")?;
    let status = read("SessionStatus")?;
    let driver_list = read("DriverList")?;
    let timing = read("TimingData")?;
    let app = read("TimingAppData")?;
    let rcm = read("RaceControlMessages")?;
    let track = read("TrackStatus")?;

    session.info = session_info(&info.final_state(), &lap_count.final_state(), streams);
    session.drivers = drivers(&driver_list.final_state());
    let started = status.deltas.iter().find(|d| d.value.get("Status").and_then(Value::as_str) == Some("Started")).map_or(0, |d| d.time_ms);
    let (laps, pit_stops, rejects) = laps_and_stops(&timing, started);
    session.laps = laps;
    session.pit_stops = pit_stops;
    session.rejects.extend(rejects);
    session.stints = stints(&app.final_state());
    session.race_control = race_control(&rcm);
    session.track_status = track_status(&track);
    Ok(session)
}

fn session_info(info: &Value, lap_count: &Value, streams: Vec<String>) -> SessionInfo {
    let meeting = info.get("Meeting");
    let field = |v: Option<&Value>, k: &str| text(v.and_then(|v| v.get(k))).unwrap_or_default();
    SessionInfo {
        meeting_name: field(meeting, "Name"),
        meeting_official_name: text(meeting.and_then(|m| m.get("OfficialName"))),
        location: field(meeting, "Location"),
        country: field(meeting.and_then(|m| m.get("Country")), "Name"),
        session_name: field(Some(info), "Name"),
        session_type: field(Some(info), "Type"),
        start_date: field(Some(info), "StartDate"),
        gmt_offset: field(Some(info), "GmtOffset"),
        path: field(Some(info), "Path"),
        total_laps: number(lap_count.get("TotalLaps")),
        streams,
    }
}

fn drivers(list: &Value) -> BTreeMap<String, DriverInfo> {
    entries(list)
        .into_iter()
        .filter(|(_, d)| d.is_object())
        .map(|(key, d)| {
            let f = |k: &str| text(d.get(k)).unwrap_or_default();
            let number = text(d.get("RacingNumber")).unwrap_or(key);
            let info = DriverInfo {
                tla: f("Tla"),
                full_name: f("FullName"),
                first_name: f("FirstName"),
                last_name: f("LastName"),
                team_name: f("TeamName"),
            };
            (number, info)
        })
        .collect()
}

fn stints(app: &Value) -> Vec<Stint> {
    let mut out = Vec::new();
    let Some(lines) = app.get("Lines") else { return out };
    for (key, line) in entries(lines) {
        let driver = text(line.get("RacingNumber")).unwrap_or(key);
        let Some(list) = line.get("Stints") else { continue };
        let mut next_lap = 1u32;
        for (i, (_, st)) in entries(list).into_iter().filter(|(_, s)| s.is_object()).enumerate() {
            let age_start = number(st.get("StartLaps")).unwrap_or(0);
            let age_end = number(st.get("TotalLaps")).unwrap_or(age_start);
            let laps = age_end.saturating_sub(age_start);
            out.push(Stint {
                driver: driver.clone(),
                stint_number: i as u32 + 1,
                compound: text(st.get("Compound")).filter(|c| c != "UNKNOWN"),
                new_tyre: flag(st.get("New")),
                tyre_age_start: age_start,
                tyre_age_end: age_end,
                laps,
                start_lap: next_lap,
                end_lap: (laps > 0).then(|| next_lap + laps - 1),
            });
            next_lap += laps;
        }
    }
    out.sort_by(|a, b| (driver_order(&a.driver), a.stint_number).cmp(&(driver_order(&b.driver), b.stint_number)));
    out
}

/// Sort key for racing numbers: numerically, then anything else.
fn driver_order(d: &str) -> (u64, &str) {
    (d.parse().unwrap_or(u64::MAX), d)
}

fn race_control(stream: &Stream) -> Vec<RaceControlMessage> {
    // Messages arrive once each, keyed by index; a later delta to the same index amends it.
    // A list (the first delta) holds the messages so far, in index order.
    let mut by_index: BTreeMap<u64, (u64, Value)> = BTreeMap::new();
    for d in &stream.deltas {
        let Some(messages) = d.value.get("Messages") else { continue };
        for (key, m) in entries(messages) {
            let index = key.parse().unwrap_or(u64::MAX);
            let slot = by_index.entry(index).or_insert((d.time_ms, Value::Null));
            merge(&mut slot.1, m);
        }
    }
    by_index
        .into_values()
        .map(|(t, m)| RaceControlMessage {
            session_time_ms: t,
            utc: text(m.get("Utc")).unwrap_or_default(),
            category: text(m.get("Category")).unwrap_or_default(),
            message: text(m.get("Message")).unwrap_or_default(),
            flag: text(m.get("Flag")),
            status: text(m.get("Status")),
            lap: number(m.get("Lap")),
            driver: text(m.get("RacingNumber")),
        })
        .collect()
}

fn track_status(stream: &Stream) -> Vec<TrackStatus> {
    let mut state = Value::Object(Map::new());
    stream
        .deltas
        .iter()
        .map(|d| {
            merge(&mut state, &d.value);
            TrackStatus {
                session_time_ms: d.time_ms,
                status: text(state.get("Status")).unwrap_or_default(),
                message: text(state.get("Message")).unwrap_or_default(),
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Lap reconstruction from TimingData

/// A value that arrived at a known time.
#[derive(Debug, Clone, Copy)]
struct Timed {
    ms: u64,
    at: u64,
}

/// The lap a driver is on.
#[derive(Debug, Default)]
struct Open {
    sectors: [Option<u64>; 2],
    early_sector3: Option<Timed>,
    early_lap_time: Option<Timed>,
    pit_in: bool,
    pit_out: bool,
}

#[derive(Debug)]
struct PitEntry {
    at: u64,
    lap: u32,
    stops_before: u32,
}

/// Per-driver reconstruction state.
#[derive(Debug, Default)]
struct Tracker {
    completed: u32,
    open: Open,
    pending: Option<Lap>,
    in_pit: bool,
    pit_entry: Option<PitEntry>,
    stops: u32,
}

/// What one driver's part of one delta says, read before it is applied.
struct Update {
    laps: Option<u32>,
    sectors: [Option<u64>; 3],
    lap_time: Option<u64>,
    in_pit: Option<bool>,
    pit_out: Option<bool>,
}

struct LapBuilder<'a> {
    file: &'a Path,
    started: u64,
    laps: Vec<Lap>,
    stops: Vec<PitStop>,
    rejects: Vec<Reject>,
}

impl LapBuilder<'_> {
    fn reject(&mut self, line: usize, reason: String) {
        self.rejects.push(Reject::line(self.file, line, reason));
    }

    /// Read the fields of one driver's delta, rejecting values that should parse and do not.
    fn read(&mut self, d: &Value, driver: &str, line: usize) -> Update {
        let time = |v: Option<&Value>, what: &str, this: &mut Self| -> Option<u64> {
            let s = v?.as_str()?;
            if s.trim().is_empty() {
                return None;
            }
            let ms = parse_lap_time(s);
            if ms.is_none() {
                this.reject(line, format!("driver {driver}: {what} {s:?} is not a time"));
            }
            ms
        };
        let mut sectors = [None; 3];
        if let Some(secs) = d.get("Sectors") {
            for (key, s) in entries(secs) {
                match key.parse::<usize>() {
                    Ok(i) if i < 3 => sectors[i] = time(s.get("Value"), "sector time", self),
                    _ => self.reject(line, format!("driver {driver}: unexpected sector {key:?}")),
                }
            }
        }
        let lap_time = time(d.get("LastLapTime").and_then(|l| l.get("Value")), "LastLapTime", self);
        let laps = match d.get("NumberOfLaps") {
            None => None,
            Some(v) => {
                let n = number(Some(v));
                if n.is_none() {
                    self.reject(line, format!("driver {driver}: NumberOfLaps {v} is not a count"));
                }
                n
            }
        };
        Update { laps, sectors, lap_time, in_pit: flag(d.get("InPit")), pit_out: flag(d.get("PitOut")) }
    }

    fn emit(&mut self, t: &mut Tracker) {
        if let Some(lap) = t.pending.take() {
            self.laps.push(lap);
        }
    }

    fn apply(&mut self, t: &mut Tracker, driver: &str, at: u64, u: Update, state: &Value) {
        if t.pending.as_ref().is_some_and(|p| at > p.session_time_ms + LATE_WINDOW_MS) {
            self.emit(t);
        }
        if let Some(n) = u.laps.filter(|&n| n > t.completed) {
            self.emit(t);
            for skipped in t.completed + 1..n {
                self.laps.push(Lap {
                    driver: driver.to_string(),
                    lap_number: skipped,
                    lap_time_ms: None,
                    sector_ms: [None; 3],
                    position: None,
                    pit_in: false,
                    pit_out: false,
                    session_time_ms: at,
                });
            }
            let open = std::mem::take(&mut t.open);
            let fresh = |v: Option<Timed>| v.filter(|v| at <= v.at + LATE_WINDOW_MS).map(|v| v.ms);
            t.pending = Some(Lap {
                driver: driver.to_string(),
                lap_number: n,
                lap_time_ms: fresh(open.early_lap_time),
                sector_ms: [open.sectors[0], open.sectors[1], fresh(open.early_sector3)],
                position: number(state.get("Position")),
                pit_in: open.pit_in,
                pit_out: open.pit_out,
                session_time_ms: at,
            });
            t.completed = n;
        }
        for (i, ms) in u.sectors.iter().enumerate().take(2) {
            if let Some(ms) = *ms {
                // The next lap has begun: the pending one can take nothing more.
                self.emit(t);
                t.open.sectors[i] = Some(ms);
            }
        }
        if let Some(ms) = u.sectors[2] {
            match &mut t.pending {
                Some(p) => p.sector_ms[2] = Some(ms),
                None => t.open.early_sector3 = Some(Timed { ms, at }),
            }
        }
        if let Some(ms) = u.lap_time {
            match &mut t.pending {
                Some(p) => p.lap_time_ms = Some(ms),
                None => t.open.early_lap_time = Some(Timed { ms, at }),
            }
        }

        let stops_now = number(state.get("NumberOfPitStops")).unwrap_or(t.stops);
        match u.in_pit {
            Some(true) if !t.in_pit => {
                t.in_pit = true;
                t.pit_entry = Some(PitEntry { at, lap: t.completed + 1, stops_before: t.stops });
                if at >= self.started {
                    t.open.pit_in = true;
                }
            }
            Some(false) if t.in_pit => {
                t.in_pit = false;
                if let Some(e) = t.pit_entry.take() {
                    if stops_now > e.stops_before {
                        self.stops.push(PitStop {
                            driver: driver.to_string(),
                            lap: Some(e.lap),
                            session_time_ms: e.at,
                            duration_ms: Some(at - e.at),
                        });
                    }
                }
            }
            _ => {}
        }
        if u.pit_out == Some(true) && at >= self.started {
            t.open.pit_out = true;
        }
        t.stops = stops_now;
    }
}

/// Rebuild laps and pit stops from `TimingData` (method in the module docs). `started` is the
/// stream time of the session start; pit flags before it are ignored.
fn laps_and_stops(timing: &Stream, started: u64) -> (Vec<Lap>, Vec<PitStop>, Vec<Reject>) {
    let mut b = LapBuilder { file: &timing.path, started, laps: Vec::new(), stops: Vec::new(), rejects: Vec::new() };
    let mut trackers: BTreeMap<String, Tracker> = BTreeMap::new();
    let mut state = Value::Object(Map::new());
    for delta in &timing.deltas {
        merge(&mut state, &delta.value);
        let Some(lines) = delta.value.get("Lines") else { continue };
        for (key, d) in entries(lines) {
            if !d.is_object() {
                continue;
            }
            // "Lines" is keyed by racing number; were it a list, its elements name the driver.
            let line_state = state.get("Lines").and_then(|l| match l {
                Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
                _ => l.get(&key),
            });
            let line_state = line_state.unwrap_or(&Value::Null);
            let driver = text(line_state.get("RacingNumber")).unwrap_or(key);
            let update = b.read(d, &driver, delta.line);
            let tracker = trackers.entry(driver.clone()).or_default();
            b.apply(tracker, &driver, delta.time_ms, update, line_state);
        }
    }
    for (driver, mut t) in trackers {
        b.emit(&mut t);
        if let Some(e) = t.pit_entry.take() {
            if t.stops > e.stops_before {
                b.stops.push(PitStop { driver, lap: Some(e.lap), session_time_ms: e.at, duration_ms: None });
            }
        }
    }
    let LapBuilder { mut laps, mut stops, rejects, .. } = b;
    laps.sort_by(|x, y| {
        (x.session_time_ms, driver_order(&x.driver), x.lap_number).cmp(&(y.session_time_ms, driver_order(&y.driver), y.lap_number))
    });
    stops.sort_by(|x, y| (x.session_time_ms, driver_order(&x.driver)).cmp(&(y.session_time_ms, driver_order(&y.driver))));
    (laps, stops, rejects)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_and_lap_times() {
        assert_eq!(parse_timestamp("01:51:26.763"), Some(((60 + 51) * 60 + 26) * 1000 + 763));
        assert_eq!(parse_timestamp("00:00:00.000"), Some(0));
        assert_eq!(parse_timestamp("0:00:00.000"), Some(0));
        assert_eq!(parse_timestamp("00:61:00.000"), None);
        assert_eq!(parse_timestamp("00:00:00"), None);
        assert_eq!(parse_timestamp("aa:00:00.000"), None);
        assert_eq!(parse_lap_time("1:45.123"), Some(105_123));
        assert_eq!(parse_lap_time("44.353"), Some(44_353));
        assert_eq!(parse_lap_time("1:02:03.4"), Some(3_723_400));
        assert_eq!(parse_lap_time("1:5.000"), None);
        assert_eq!(parse_lap_time(""), None);
        assert_eq!(parse_lap_time("LAP 1"), None);
    }

    #[test]
    fn merge_follows_the_feed_rules() {
        let mut s = json!({});
        merge(&mut s, &json!({"Lines": {"44": {"Sectors": [{"Value": ""}, {"Value": ""}], "BestLapTime": {"Value": "1:47.1", "Lap": 3}}}}));
        merge(&mut s, &json!({"Lines": {"44": {"Sectors": {"1": {"Value": "26.1"}, "2": {"Value": "30.0"}}}}}));
        // An index no feed sends (it drove a resize to 2^64 before) is left out.
        let mut big = json!({"Sectors": [{"Value": "1"}]});
        merge(&mut big, &json!({"Sectors": {"18446744073709551615": {"Value": "x"}, "99999999": {"Value": "y"}, "1": {"Value": "2"}}}));
        assert_eq!(big, json!({"Sectors": [{"Value": "1"}, {"Value": "2"}]}));
        merge(&mut s, &json!({"Lines": {"44": {"BestLapTime": {"Value": "", "_deleted": ["Lap"]}}}}));
        assert_eq!(
            s,
            json!({"Lines": {"44": {"Sectors": [{"Value": ""}, {"Value": "26.1"}, {"Value": "30.0"}], "BestLapTime": {"Value": ""}}}})
        );
        let mut m = json!({});
        merge(&mut m, &json!({"Messages": {"1": {"Message": "A"}}}));
        merge(&mut m, &json!({"Messages": {"1": {"Flag": "GREEN"}}}));
        assert_eq!(m, json!({"Messages": {"1": {"Message": "A", "Flag": "GREEN"}}}));
    }

    #[test]
    fn entries_orders_indices_numerically() {
        let v = json!({"10": 1, "2": 2, "x": 3});
        let keys: Vec<String> = entries(&v).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["2", "10", "x"]);
    }

    #[test]
    fn bad_lines_become_rejects() {
        let text = "\u{feff}00:00:01.000{\"A\":1}\n\n00:00:0x.000{\"A\":2}\n00:00:03.000{\"A\":\n00:00:04.000[1]\nnothing\n00:00:05.000{\"A\":5}\r\n";
        let s = parse_stream(text.as_bytes(), Path::new("X.jsonStream"));
        assert_eq!(s.deltas.len(), 2);
        assert_eq!(s.deltas[1].line, 7);
        let lines: Vec<Option<usize>> = s.rejects.iter().map(|r| r.line_number()).collect();
        assert_eq!(lines, [Some(3), Some(4), Some(5), Some(6)]);
        assert_eq!(s.final_state(), json!({"A": 5}));
    }

    fn timing(lines: &[&str]) -> Stream {
        parse_stream(lines.join("\n").as_bytes(), Path::new("TimingData.jsonStream"))
    }

    #[test]
    fn late_and_early_lap_times_land_on_the_right_lap() {
        let s = timing(&[
            r#"00:00:01.000{"Lines":{"1":{"RacingNumber":"1","Position":"1","Sectors":[{"Value":""},{"Value":""},{"Value":""}]}}}"#,
            r#"00:01:00.000{"Lines":{"1":{"NumberOfLaps":1,"Sectors":{"2":{"Value":"30.000"}}}}}"#,
            r#"00:01:30.000{"Lines":{"1":{"Sectors":{"0":{"Value":"30.100"},"1":{"Value":""},"2":{"Value":""}}}}}"#,
            r#"00:02:00.000{"Lines":{"1":{"Sectors":{"1":{"Value":"30.200"}}}}}"#,
            r#"00:02:30.000{"Lines":{"1":{"NumberOfLaps":2,"Sectors":{"2":{"Value":"30.300"}}}}}"#,
            r#"00:02:30.040{"Lines":{"1":{"LastLapTime":{"Value":"1:30.600"}}}}"#,
            r#"00:03:00.000{"Lines":{"1":{"Sectors":{"0":{"Value":"30.000"}}}}}"#,
            r#"00:03:20.000{"Lines":{"1":{"LastLapTime":{"Value":"1:30.600"}}}}"#,
            r#"00:03:30.000{"Lines":{"1":{"Sectors":{"1":{"Value":"30.000"}}}}}"#,
            r#"00:03:59.500{"Lines":{"1":{"LastLapTime":{"Value":"1:30.000"}}}}"#,
            r#"00:04:00.000{"Lines":{"1":{"NumberOfLaps":3,"Sectors":{"2":{"Value":"30.000"}}}}}"#,
        ]);
        let (laps, stops, rejects) = laps_and_stops(&s, 0);
        assert!(rejects.is_empty() && stops.is_empty());
        let got: Vec<(u32, Option<u64>, [Option<u64>; 3])> = laps.iter().map(|l| (l.lap_number, l.lap_time_ms, l.sector_ms)).collect();
        assert_eq!(
            got,
            [
                (1, None, [None, None, Some(30_000)]),
                (2, Some(90_600), [Some(30_100), Some(30_200), Some(30_300)]),
                // The stale repeat at 00:03:20 is dropped, the early time at 00:03:59.5 kept.
                (3, Some(90_000), [Some(30_000), Some(30_000), Some(30_000)]),
            ]
        );
    }

    #[test]
    fn pit_stops_need_the_stop_counter() {
        let s = timing(&[
            r#"00:00:01.000{"Lines":{"7":{"RacingNumber":"7","InPit":true,"PitOut":false}}}"#,
            r#"00:00:30.000{"Lines":{"7":{"InPit":false,"PitOut":true}}}"#,
            r#"00:05:00.000{"Lines":{"7":{"NumberOfLaps":1,"LastLapTime":{"Value":"1:40.000"}}}}"#,
            r#"00:06:30.000{"Lines":{"7":{"InPit":true}}}"#,
            r#"00:06:31.000{"Lines":{"7":{"NumberOfPitStops":1}}}"#,
            r#"00:06:35.000{"Lines":{"7":{"NumberOfLaps":2,"LastLapTime":{"Value":"1:35.000"}}}}"#,
            r#"00:06:51.500{"Lines":{"7":{"InPit":false,"PitOut":true}}}"#,
            r#"00:08:20.000{"Lines":{"7":{"NumberOfLaps":3,"LastLapTime":{"Value":"1:45.000"}}}}"#,
            r#"00:08:21.000{"Lines":{"7":{"InPit":true,"NumberOfPitStops":2}}}"#,
        ]);
        let (laps, stops, _) = laps_and_stops(&s, 60_000);
        assert_eq!(
            stops,
            [
                PitStop { driver: "7".into(), lap: Some(2), session_time_ms: 390_000, duration_ms: Some(21_500) },
                PitStop { driver: "7".into(), lap: Some(4), session_time_ms: 501_000, duration_ms: None },
            ]
        );
        let flags: Vec<(bool, bool)> = laps.iter().map(|l| (l.pit_in, l.pit_out)).collect();
        // The pit-lane exit before the start does not mark lap 1.
        assert_eq!(flags, [(false, false), (true, false), (false, true)]);
    }
}
