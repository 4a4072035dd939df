//! F1DB reader against the real mirror (`data_dir()/f1db-main.tar.gz`, commit 6a5845b8) and
//! against small synthetic archives built here: counts, known facts, references, rejects
//! and errors.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use phase1_curation::f1db::F1Db;
use phase1_curation::{data_dir, Error};

fn mirror_archive() -> PathBuf {
    let path = data_dir().join("f1db-main.tar.gz");
    assert!(
        path.is_file(),
        "F1DB mirror not found at {}; set F1_DATA to the folder holding f1db-main.tar.gz \
         (upstream: https://github.com/f1db/f1db/archive/refs/heads/main.tar.gz)",
        path.display()
    );
    path
}

/// The real database, loaded once for all tests of this file.
fn real() -> &'static F1Db {
    static DB: OnceLock<F1Db> = OnceLock::new();
    DB.get_or_init(|| {
        let path = mirror_archive();
        let start = Instant::now();
        let db = F1Db::load(&path).unwrap_or_else(|e| panic!("loading the F1DB mirror failed: {e}"));
        eprintln!("loaded {} in {:.2?}", path.display(), start.elapsed());
        db
    })
}

#[test]
fn f1db_real_counts_match_the_mirror_readme() {
    let db = real();
    assert!(db.rejects.is_empty(), "unexpected rejects: {:#?}", &db.rejects[..db.rejects.len().min(10)]);
    assert_eq!(db.source_hash.len(), 64);
    assert_eq!(db.data_root, "f1db-main/src/data/");

    assert_eq!(db.seasons.keys().next(), Some(&1950));
    assert_eq!(db.seasons.keys().last(), Some(&2026));
    assert_eq!(db.seasons.len(), 77);
    assert_eq!(db.races.len(), 1172);
    let run: Vec<_> = db.races.iter().filter(|r| !r.results.is_empty()).collect();
    assert_eq!(run.len(), 1160);
    let last = run.last().expect("races with results");
    assert_eq!((last.year, last.round), (2026, 11));
    // The 12 races without results are the rest of the 2026 calendar.
    assert!(db.races.iter().filter(|r| r.results.is_empty()).all(|r| r.year == 2026 && r.round >= 12));
    assert!(
        db.races.windows(2).all(|w| (w[0].year, w[0].round) < (w[1].year, w[1].round)),
        "races sorted by (year, round)"
    );

    assert_eq!(db.drivers.len(), 917);
    assert_eq!(db.constructors.len(), 187);
    assert_eq!(db.circuits.len(), 78);
    assert_eq!(db.grands_prix.len(), 54);
    assert_eq!(db.races.iter().map(|r| r.results.len()).sum::<usize>(), 27_533);
    assert_eq!(db.races.iter().map(|r| r.qualifying.len()).sum::<usize>(), 26_954);
    assert_eq!(db.races.iter().map(|r| r.pit_stops.len()).sum::<usize>(), 22_430);
}

#[test]
fn f1db_real_known_facts() {
    let db = real();
    let winner = |year: u16, gp: &str| {
        let race =
            db.races_in(year).iter().find(|r| r.grand_prix_id == gp).unwrap_or_else(|| panic!("no {year} {gp} race"));
        db.race_winner(race).map(|r| r.driver_id.as_str())
    };
    assert_eq!(winner(2021, "abu-dhabi"), Some("max-verstappen"));
    // F1DB ids Giuseppe "Nino" Farina as `nino-farina`.
    assert_eq!(winner(1950, "great-britain"), Some("nino-farina"));
    assert_eq!(db.drivers["nino-farina"].first_name, "Nino");
    assert!(db.drivers["nino-farina"].full_name.contains("Giuseppe"));

    // A shared winning car: Fagioli started car #8, Fangio took it over and won.
    let france_1951 = db.races_in(1951).iter().find(|r| r.grand_prix_id == "france").expect("1951 France");
    let shared: Vec<_> = db.race_winners(france_1951).iter().map(|r| (r.driver_id.as_str(), r.shared_car)).collect();
    assert_eq!(shared, [("luigi-fagioli", false), ("juan-manuel-fangio", true)]);

    assert_eq!(db.driver_champion(2008), Some("lewis-hamilton"));
    assert_eq!(db.driver_champion(1976), Some("james-hunt"));
    assert_eq!(db.driver_champion(2021), Some("max-verstappen"));
    assert_eq!(db.constructor_champion(2014), Some("mercedes"));
    // No constructors' title before 1958; 2026 is still open in this snapshot.
    assert_eq!(db.constructor_champion(1957), None);
    assert_eq!(db.driver_champion(2026), None);
    assert_eq!(db.constructor_champion(2026), None);

    let abu_dhabi = db.race(2021, 22).expect("2021 round 22");
    assert_eq!(abu_dhabi.grand_prix_id, "abu-dhabi");
    assert_eq!(abu_dhabi.circuit_id, "yas-marina");
    let max = db.race_winner(abu_dhabi).expect("winner");
    assert_eq!(max.time_millis, Some(5_417_345)); // 1:30:17.345
    assert_eq!(max.pole_position, Some(true));
    assert_eq!(max.fastest_lap, Some(true));
    assert_eq!(max.points, Some(26.0));
    let lewis = &abu_dhabi.results[1];
    assert_eq!((lewis.driver_id.as_str(), lewis.gap_millis), ("lewis-hamilton", Some(2_256)));

    let hamilton = &db.drivers["lewis-hamilton"];
    assert_eq!(hamilton.date_of_birth.to_string(), "1985-01-07");
    assert_eq!(hamilton.permanent_number.as_deref(), Some("44"));
    assert_eq!(db.countries[&hamilton.nationality_country_id].demonym.as_deref(), Some("British"));
}

#[test]
fn f1db_real_derived_fields_cover_every_written_value() {
    let db = real();
    let mut unparsed = Vec::new();
    let mut note = |race: &phase1_curation::f1db::Race, what: &str, text: &Option<String>, ok: bool| {
        if text.is_some() && !ok {
            unparsed.push(format!("{} {}: {what} {text:?}", race.year, race.grand_prix_id));
        }
    };
    for race in &db.races {
        for r in race.results.iter().chain(&race.sprint_results) {
            note(race, "time", &r.time, r.time_millis.is_some());
            note(race, "gap", &r.gap, r.gap_millis.is_some() || r.gap_laps.is_some());
            note(race, "interval", &r.interval, r.interval_millis.is_some());
            note(race, "timePenalty", &r.time_penalty, r.time_penalty_millis.is_some());
        }
        for q in &race.qualifying {
            note(race, "q1", &q.q1, q.q1_millis.is_some());
            note(race, "q2", &q.q2, q.q2_millis.is_some());
            note(race, "q3", &q.q3, q.q3_millis.is_some());
            note(race, "time", &q.time, q.time_millis.is_some());
        }
        for p in &race.pit_stops {
            note(race, "pit time", &p.time, p.time_millis.is_some());
        }
        for f in &race.fastest_laps {
            note(race, "lap time", &f.time, f.time_millis.is_some());
        }
        // Every race that was run has a winner, one pole line and (with lap data) one fastest-lap line.
        if !race.results.is_empty() {
            let name = format!("{} {}", race.year, race.grand_prix_id);
            assert!(db.race_winner(race).is_some(), "{name} has no winner");
            assert_eq!(race.results.iter().filter(|r| r.pole_position == Some(true)).count(), 1, "{name} poles");
            let fastest = race.results.iter().filter(|r| r.fastest_lap == Some(true)).count();
            assert_eq!(fastest, usize::from(!race.fastest_laps.is_empty()), "{name} fastest laps");
        }
    }
    assert!(
        unparsed.is_empty(),
        "{} unparsed durations, first: {:#?}",
        unparsed.len(),
        &unparsed[..unparsed.len().min(10)]
    );
    // 1,159 of the 1,160 races run have fastest-lap data: 2021 Belgium ran no racing laps.
    let fastest = db.races.iter().flat_map(|r| &r.results).filter(|r| r.fastest_lap == Some(true)).count();
    assert_eq!(fastest, 1159);
}

#[test]
fn f1db_real_references_are_all_known() {
    let rejects = real().check_references();
    assert!(
        rejects.is_empty(),
        "{} dangling references, first: {:#?}",
        rejects.len(),
        &rejects[..rejects.len().min(10)]
    );
}

/// A gzip'd tar with `f1db-main/src/data/<rel>` members, like GitHub's source archive.
fn synthetic_archive(dir: &Path, members: &[(&str, &str)]) -> PathBuf {
    let path = dir.join("f1db-main.tar.gz");
    let file = std::fs::File::create(&path).expect("create archive");
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::fast()));
    for (rel, text) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, format!("f1db-main/src/data/{rel}"), text.as_bytes()).expect("append member");
    }
    tar.into_inner().expect("finish tar").finish().expect("finish gzip").flush().expect("flush");
    path
}

const COUNTRY: &str =
    "id: testland\nalpha2Code: TL\nalpha3Code: TLD\niocCode:\nname: Testland\ndemonym: Testish\ncontinentId: europe\n";
const GOOD_DRIVER: &str =
    "id: good-driver\nname: Good Driver\nfirstName: Good\nlastName: Driver\nfullName: Good Driver\n\
abbreviation: GOO\npermanentNumber:\ngender: MALE\ndateOfBirth: 1980-02-29\ndateOfDeath:\nplaceOfBirth: Town\n\
countryOfBirthCountryId: testland\nnationalityCountryId: testland\nsecondNationalityCountryId:\n";

fn synthetic_tree() -> Vec<(&'static str, String)> {
    let bad_driver =
        GOOD_DRIVER.replace("good-driver", "bad-driver").replace("dateOfBirth: 1980-02-29", "dateOfBirth: [1980]");
    let result = |pos: &str, driver: &str| {
        format!(
            "- position: {pos}\n  driverNumber: 7\n  driverId: {driver}\n  constructorId: team\n  engineManufacturerId: motor\n  \
             tyreManufacturerId: tyre\n  laps: 10\n  time: \"1:00:00.000\"\n  gap:\n  points: 10\n  gridPosition: PL\n"
        )
    };
    vec![
        ("countries/testland.yml", COUNTRY.to_owned()),
        ("drivers/good-driver.yml", GOOD_DRIVER.to_owned()),
        ("drivers/bad-driver.yml", bad_driver),
        ("constructors/team.yml", "id: team\nname: Team\nfullName: Team Racing\ncountryId: testland\n".to_owned()),
        ("engine-manufacturers/motor.yml", "id: motor\nname: Motor\ncountryId: testland\n".to_owned()),
        ("tyre-manufacturers/tyre.yml", "id: tyre\nname: Tyre\ncountryId: testland\n".to_owned()),
        (
            "circuits/ring.yml",
            "id: ring\nname: Ring\nfullName: The Ring\npreviousNames:\ntype: RACE\ndirection: CLOCKWISE\nplaceName: Town\n\
             countryId: testland\nlatitude: 1.5\nlongitude: 2.5\nlength: 4.0\nturns: 12\nlayouts:\n  - id: ring-1\n    length: 4.0\n    turns: 12\n"
                .to_owned(),
        ),
        (
            "grands-prix/testland.yml",
            "id: testland\nname: Testland\nfullName: Testland Grand Prix\nshortName: Testland GP\nabbreviation: TES\ncountryId: testland\n"
                .to_owned(),
        ),
        (
            "seasons/2000/races/01-testland/race.yml",
            "id: 1\nround: 1\ndate: 2000-03-12\ngrandPrixId: testland\nofficialName: Testland Grand Prix 2000\n\
             qualifyingFormat: ONE_SESSION\ncircuitId: ring\ncircuitLayoutId: ring-1\ncircuitType: RACE\ndirection: CLOCKWISE\n\
             courseLength: 4.0\nturns: 12\nlaps: 10\ndistance: 40.0\nsomeFutureField: ignored\n"
                .to_owned(),
        ),
        ("seasons/2000/races/01-testland/race-results.yml", result("1", "good-driver") + &result("DNF", "nobody")),
        ("seasons/2000/driver-standings.yml", "- position: 1\n  driverId: good-driver\n  points: 10\n".to_owned()),
        ("chassis/ignored.yml", "not: [typed\n".to_owned()),
    ]
}

#[test]
fn f1db_synthetic_bad_field_is_a_reject_naming_member_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tree = synthetic_tree();
    let members: Vec<(&str, &str)> = tree.iter().map(|(p, t)| (*p, t.as_str())).collect();
    let db = F1Db::load(&synthetic_archive(dir.path(), &members)).expect("synthetic archive loads");

    assert_eq!(db.rejects.len(), 1, "{:#?}", db.rejects);
    let reject = &db.rejects[0];
    assert_eq!(reject.source, "f1db-main/src/data/drivers/bad-driver.yml");
    assert_eq!(reject.record.as_deref(), Some("bad-driver"));
    assert!(reject.reason.starts_with("field dateOfBirth: invalid type: sequence"), "{}", reject.reason);
    assert!(reject.reason.contains("line 9"), "{}", reject.reason);

    assert_eq!(db.drivers.keys().collect::<Vec<_>>(), ["good-driver"]);
    let race = db.race(2000, 1).expect("race loads");
    assert_eq!(race.results.len(), 2);
    let dnf = &race.results[1];
    assert_eq!((dnf.position, dnf.position_text.as_str(), dnf.position_display_order), (None, "DNF", 2));
    assert_eq!((dnf.grid_position, dnf.grid_position_text.as_deref()), (None, Some("PL")));
    assert_eq!(dnf.driver_number, "7");
    assert_eq!(db.race_winner(race).map(|r| r.driver_id.as_str()), Some("good-driver"));
    // No race carries the decider flag, so the season counts as open.
    assert_eq!(db.driver_champion(2000), None);
}

#[test]
fn f1db_synthetic_unknown_driver_is_reported_with_race_and_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tree = synthetic_tree();
    let members: Vec<(&str, &str)> = tree.iter().map(|(p, t)| (*p, t.as_str())).collect();
    let db = F1Db::load(&synthetic_archive(dir.path(), &members)).expect("synthetic archive loads");

    let dangling = db.check_references();
    assert_eq!(dangling.len(), 1, "{dangling:#?}");
    let d = &dangling[0];
    assert_eq!(d.source, "f1db-main/src/data/seasons/2000/races/01-testland/race-results.yml");
    assert_eq!(d.record.as_deref(), Some("2000 round 1 testland, race-results #2"));
    assert_eq!(d.reason, "driverId `nobody` is not in drivers/");
}

#[test]
fn f1db_not_gzip_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("not-an-archive.tar.gz");
    std::fs::write(&path, "id: plain text\n").expect("write");
    let err = F1Db::load(&path).expect_err("plain text is not an archive");
    assert!(matches!(err, Error::Parse { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("not-an-archive.tar.gz") && msg.contains("not a gzip file"), "{msg}");

    let missing = dir.path().join("missing.tar.gz");
    let err = F1Db::load(&missing).expect_err("missing file");
    assert!(matches!(err, Error::Io { .. }) && err.to_string().contains("missing.tar.gz"), "{err}");

    // Gzip, but not F1DB: no src/data/ tree.
    let other = dir.path().join("other.tar.gz");
    let file = std::fs::File::create(&other).expect("create");
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::fast()));
    let mut header = tar::Header::new_gnu();
    header.set_size(2);
    header.set_cksum();
    tar.append_data(&mut header, "repo/README.md", &b"hi"[..]).expect("append");
    tar.into_inner().expect("tar").finish().expect("gzip");
    let err = F1Db::load(&other).expect_err("no data tree");
    assert!(err.to_string().contains("other.tar.gz") && err.to_string().contains("no F1DB data tree"), "{err}");

    // A member header declaring 4 EiB (an allocation of that size before) is refused by name.
    let huge = dir.path().join("huge.tar.gz");
    let file = std::fs::File::create(&huge).expect("create");
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::fast()));
    let mut header = tar::Header::new_gnu();
    header.set_size(1 << 62);
    header.set_cksum();
    tar.append_data(&mut header, "f1db-main/src/data/countries/testland.yml", COUNTRY.as_bytes()).expect("append");
    tar.into_inner().expect("tar").finish().expect("gzip");
    let err = F1Db::load(&huge).expect_err("huge member").to_string();
    assert!(err.contains("huge.tar.gz") && err.contains("countries/testland.yml") && err.contains("4611686018427387904 bytes"), "{err}");
}
