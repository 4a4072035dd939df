//! The live-timing reader against the real mirror (`data_dir()/livetiming`, FastF1's test
//! sessions), cross-checked where possible with Ergast (`ergast/results.csv`, `pit_stops.csv`)
//! for the 2018 Azerbaijan Grand Prix, plus synthetic streams for the failure paths.

use std::path::PathBuf;

use phase1_curation::livetiming::{discover_sessions, load_session, Session};

fn root() -> PathBuf {
    phase1_curation::data_dir().join("livetiming")
}

fn baku_2018() -> Session {
    load_session(&root().join("2018/2018-04-29_Azerbaijan_Grand_Prix/2018-04-29_Race")).expect("2018 Baku race loads")
}

#[test]
fn every_session_parses_without_rejects() {
    let sessions = discover_sessions(&root()).expect("mirror is readable");
    let names: Vec<String> = sessions.iter().map(|p| p.strip_prefix(root()).expect("under root").display().to_string()).collect();
    assert_eq!(
        names,
        [
            "2018/2018-04-29_Azerbaijan_Grand_Prix/2018-04-29_Race",
            "2023/2023-04-30_Azerbaijan_Grand_Prix/2023-04-29_Sprint",
            "2023/2023-04-30_Azerbaijan_Grand_Prix/2023-04-29_Sprint_Shootout",
            "2025/2025-05-04_Miami_Grand_Prix/2025-05-03_Sprint",
        ]
    );
    // (drivers, laps, stints, pit stops, race-control messages) as found in the files. Laps
    // equal the sum of each driver's final NumberOfLaps. The 2023 sprint has no
    // RaceControlMessages stream, and Logan Sargeant (#2) did not take part in it.
    let expected = [(20, 841, 56, 36, 109), (19, 308, 23, 5, 0), (20, 233, 43, 23, 58), (20, 331, 39, 21, 107)];
    for (dir, want) in sessions.iter().zip(expected) {
        let s = load_session(dir).expect("session loads");
        assert!(s.rejects.is_empty(), "{}: {:?}", dir.display(), s.rejects);
        let got = (s.drivers.len(), s.laps.len(), s.stints.len(), s.pit_stops.len(), s.race_control.len());
        assert_eq!(got, want, "{}", dir.display());
        assert!(s.info.path.ends_with('/') && dir.ends_with(s.info.path.trim_end_matches('/')), "{}", s.info.path);
    }
}

#[test]
fn lap_times_equal_their_sector_sums() {
    // An internal check on the reconstruction: sectors and lap times arrive in different
    // deltas, so a lap time put on the wrong lap would not match its sectors.
    for dir in discover_sessions(&root()).expect("mirror is readable") {
        let s = load_session(&dir).expect("session loads");
        let mut checked = 0;
        for lap in &s.laps {
            if let (Some(t), [Some(a), Some(b), Some(c)]) = (lap.lap_time_ms, lap.sector_ms) {
                assert!((a + b + c).abs_diff(t) <= 1, "{}: {lap:?}", dir.display());
                checked += 1;
            }
        }
        assert!(checked * 10 >= s.laps.len() * 6, "{}: only {checked} of {} laps fully timed", dir.display(), s.laps.len());
    }
}

#[test]
fn baku_2018_race() {
    let s = baku_2018();
    assert_eq!(s.info.meeting_name, "Azerbaijan Grand Prix");
    assert_eq!((s.info.session_name.as_str(), s.info.session_type.as_str()), ("Race", "Race"));
    assert_eq!(s.info.total_laps, Some(51));
    assert_eq!(s.drivers.len(), 20);
    let ham = &s.drivers["44"];
    assert_eq!((ham.tla.as_str(), ham.first_name.as_str(), ham.last_name.as_str()), ("HAM", "Lewis", "Hamilton"));
    assert_eq!(ham.team_name, "Mercedes");

    // The winner completes all 51 laps, one record per lap, and leads at the end.
    let laps: Vec<_> = s.laps.iter().filter(|l| l.driver == "44").collect();
    assert_eq!(laps.iter().map(|l| l.lap_number).collect::<Vec<_>>(), (1..=51).collect::<Vec<_>>());
    assert_eq!(laps[50].position, Some(1));
    assert!(s.laps.iter().all(|l| l.lap_number <= 51));
    // Ergast: Hamilton's fastest lap was lap 35 in 1:45.412; the race's fastest, Bottas on lap
    // 37 in 1:45.149. Lap 1 from the grid carries no lap time in 2018 files.
    assert_eq!(laps[34].lap_time_ms, Some(105_412));
    assert_eq!(laps[0].lap_time_ms, None);
    let fastest = s.laps.iter().filter(|l| l.lap_time_ms.is_some()).min_by_key(|l| l.lap_time_ms).expect("timed laps");
    assert_eq!((fastest.driver.as_str(), fastest.lap_number, fastest.lap_time_ms), ("77", 37, Some(105_149)));
    // Green-flag laps here run 1:45 to 1:55; the slowest are behind the safety car.
    let timed: Vec<u64> = laps.iter().filter_map(|l| l.lap_time_ms).collect();
    assert!(timed.iter().all(|&t| (100_000..=240_000).contains(&t)), "{timed:?}");

    assert!(s.race_control.iter().any(|m| m.category == "SafetyCar" && m.message == "SAFETY CAR DEPLOYED"));
    assert!(s.track_status.iter().any(|t| t.status == "4"));

    let allowed = ["SOFT", "MEDIUM", "HARD", "INTERMEDIATE", "WET", "ULTRASOFT", "SUPERSOFT", "HYPERSOFT"];
    assert!(s.stints.iter().all(|st| st.compound.as_deref().is_some_and(|c| allowed.contains(&c))), "{:?}", s.stints);
    let ham_stints: Vec<(&str, u32, Option<u32>)> = s
        .stints
        .iter()
        .filter(|st| st.driver == "44")
        .map(|st| (st.compound.as_deref().unwrap_or("?"), st.start_lap, st.end_lap))
        .collect();
    assert_eq!(ham_stints, [("SUPERSOFT", 1, Some(22)), ("SOFT", 23, Some(40)), ("ULTRASOFT", 41, Some(51))]);

    // Ergast pit_stops.csv: Hamilton stopped on laps 22 (20.377 s) and 40 (21.329 s).
    let stops: Vec<_> = s.pit_stops.iter().filter(|p| p.driver == "44").collect();
    assert_eq!(stops.iter().map(|p| p.lap).collect::<Vec<_>>(), [Some(22), Some(40)]);
    for (stop, ergast_ms) in stops.iter().zip([20_377u64, 21_329]) {
        let d = stop.duration_ms.expect("the car left the pits");
        assert!(d.abs_diff(ergast_ms) < 500, "{stop:?}");
    }
    assert!(laps[21].pit_in && laps[22].pit_out && laps[39].pit_in && laps[40].pit_out);
}

#[test]
fn corrupt_lines_become_rejects_with_file_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write");
    write("SessionInfo.jsonStream", "\u{feff}00:00:00.000{\"Meeting\":{\"Name\":\"Test\"},\"Name\":\"Race\",\"Type\":\"Race\"}\r\n");
    write(
        "TimingData.jsonStream",
        concat!(
            "\u{feff}00:00:01.000{\"Lines\":{\"1\":{\"RacingNumber\":\"1\",\"Position\":\"1\"}}}\n",
            "00:01:00.000{\"Lines\":{\"1\":{\"NumberOfLaps\":1,\"LastLapTime\":{\"Value\":\"1:40.000\"}}}}\n",
            "00:02:40.000{\"Lines\":{\"1\":{\"NumberOfLaps\":2,\"LastLapTime\":{\"Va\n",
            "00:04:2O.000{\"Lines\":{}}\n",
            "00:04:20.000{\"Lines\":{\"1\":{\"NumberOfLaps\":3,\"LastLapTime\":{\"Value\":\"1:4x.000\"}}}}\n",
        ),
    );
    let s = load_session(dir.path()).expect("a session with bad lines still loads");
    assert_eq!(s.info.meeting_name, "Test");
    let rejects: Vec<(String, Option<usize>)> =
        s.rejects.iter().map(|r| (r.source.rsplit('/').next().unwrap_or("").to_string(), r.line_number())).collect();
    let file = "TimingData.jsonStream".to_string();
    assert_eq!(rejects, [(file.clone(), Some(3)), (file.clone(), Some(4)), (file, Some(5))]);
    assert!(s.rejects[0].reason.contains("JSON"), "{}", s.rejects[0]);
    assert!(s.rejects[1].reason.contains("time stamp"), "{}", s.rejects[1]);
    assert!(s.rejects[2].to_string().contains("line 5"), "{}", s.rejects[2]);
    // Lap 2's line is lost; lap 3 is still counted, without its unreadable time.
    let laps: Vec<(u32, Option<u64>)> = s.laps.iter().map(|l| (l.lap_number, l.lap_time_ms)).collect();
    assert_eq!(laps, [(1, Some(100_000)), (2, None), (3, None)]);
}

#[test]
fn a_folder_without_streams_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let err = load_session(dir.path()).expect_err("no streams");
    assert!(err.to_string().contains("not a live-timing session folder"), "{err}");
    assert!(load_session(&dir.path().join("missing")).is_err());
}
