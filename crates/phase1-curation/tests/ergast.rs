//! Ergast CSV reader and its reconciliation with F1DB, against the real mirror
//! (`data_dir()/ergast`, `data_dir()/f1db-main.tar.gz`), plus broken CSVs written here.

use std::path::Path;
use std::sync::OnceLock;

use phase1_curation::ergast::{
    self, normalize_name, read_csv, DisagreementKind, Ergast, Kind, NameRule, Reconciliation,
};
use phase1_curation::f1db::F1Db;
use phase1_curation::{data_dir, Error};

fn real() -> &'static (Ergast, Reconciliation) {
    static REAL: OnceLock<(Ergast, Reconciliation)> = OnceLock::new();
    REAL.get_or_init(|| {
        let dir = ergast::ergast_dir();
        assert!(dir.is_dir(), "Ergast CSVs not found at {}; set F1_DATA to the mirror", dir.display());
        let ergast = Ergast::load(&dir).unwrap_or_else(|e| panic!("loading Ergast failed: {e}"));
        let f1db = F1Db::load(&data_dir().join("f1db-main.tar.gz")).unwrap_or_else(|e| panic!("F1DB: {e}"));
        let rec = ergast::reconcile(&f1db, &ergast);
        (ergast, rec)
    })
}

#[test]
fn real_csvs_load_without_rejects() {
    let (ergast, _) = real();
    assert!(ergast.rejects.is_empty(), "rejects: {:?}", &ergast.rejects[..ergast.rejects.len().min(5)]);
    // 1950 to 2025 round 24 as scheduled (the 2025 rows past round 18 have no results yet).
    assert_eq!(ergast.races.len(), 1149);
    assert_eq!(ergast.drivers.len(), 864);
    assert_eq!(ergast.results.len(), 27118);
    assert_eq!(ergast.driver_standings.len(), 35235);
    // The 2025 rows of races.csv stop after `url`: read, not rejected.
    let last = ergast.races.last().expect("races");
    assert_eq!((last.year, last.round, last.name.as_str()), (2025, 24, "Abu Dhabi Grand Prix"));
    let hamilton = &ergast.drivers[&1];
    assert_eq!((hamilton.forename.as_str(), hamilton.surname.as_str()), ("Lewis", "Hamilton"));
    assert_eq!(hamilton.dob.map(|d| d.to_string()).as_deref(), Some("1985-01-07"));
}

#[test]
fn winners_agree_on_every_shared_race() {
    let (_, rec) = real();
    assert_eq!(rec.races_compared, 1143);
    assert_eq!(rec.winners_agree, 1143, "{:#?}", rec.disagreements);
    let kinds: Vec<_> = rec.disagreements.iter().map(|d| d.kind).collect();
    assert!(!kinds.contains(&DisagreementKind::Winner));
    assert!(!kinds.contains(&DisagreementKind::MissingRace), "{:#?}", rec.disagreements);
    assert!(!kinds.contains(&DisagreementKind::UnmatchedDriver), "{:#?}", rec.disagreements);
}

#[test]
fn champions_and_points_leaders_agree() {
    let (_, rec) = real();
    // 1950–2024: 2025 is only complete in F1DB (Ergast stops at round 18).
    assert_eq!(rec.seasons_compared, 75);
    assert_eq!(rec.champions_agree, 75, "{:#?}", rec.disagreements);
    // One leader per season after Ergast's last round of it, 2025 round 18 included.
    assert_eq!(rec.leaders_compared, 76);
    assert_eq!(rec.leaders_agree, 76, "{:#?}", rec.disagreements);
    assert!(rec.disagreements.is_empty(), "{:#?}", rec.disagreements);
}

#[test]
fn spelling_variants_are_matched_by_a_named_rule() {
    let (_, rec) = real();
    let rule_of = |name: &str| rec.name_matches_by_rule.iter().find(|m| m.ergast_name == name);
    let fangio = rule_of("Juan Fangio").expect("Fangio matched by a rule");
    assert_eq!((fangio.f1db_id.as_str(), fangio.rule), ("juan-manuel-fangio", NameRule::SurnameFirstNamePrefix));
    let lehto = rule_of("Jyrki Järvilehto").expect("Lehto matched by a rule");
    assert_eq!((lehto.f1db_id.as_str(), lehto.rule), ("jj-lehto", NameRule::BirthDateAndNameWord));
    // Accents and case alone are not a rule: Räikkönen matches exactly.
    assert!(rule_of("Kimi Räikkönen").is_none());
    // Ergast's "Boy Lunger" (surname wrong, birth date and first name of Boy Hayje).
    let hayje = rule_of("Boy Lunger").expect("Hayje matched by a rule");
    assert_eq!(hayje.f1db_id, "boy-hayje");
    // 864 Ergast drivers: 828 exact, 23 by a rule, 13 that F1DB does not hold (entrants of
    // races they never started, e.g. Ken Miles, Geoff Duke); none is in a compared fact.
    assert_eq!((rec.names_exact, rec.name_matches_by_rule.len()), (828, 23), "{:#?}", rec.name_matches_by_rule);
    assert_eq!(rec.unmatched_drivers.len(), 13, "{:?}", rec.unmatched_drivers);
    assert!(rec.unmatched_drivers.contains(&"Ken Miles (ken_miles)".to_owned()));
}

#[test]
fn names_normalise() {
    assert_eq!(normalize_name("Kimi Räikkönen"), "kimi raikkonen");
    assert_eq!(normalize_name("  Jean-Éric   Vergne "), "jean eric vergne");
    assert_eq!(normalize_name("Tom Belsø"), "tom belso");
    assert_eq!(normalize_name("Kurt Ahrens, Jr."), "kurt ahrens jr");
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write csv");
    path
}

const COLUMNS: &[(&str, Kind)] = &[("id", Kind::Int), ("name", Kind::Text), ("points", Kind::Float)];

#[test]
fn broken_rows_are_rejects_naming_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "t.csv",
        "id,name,points,extra\n\
         1,\"Hamilton, Lewis\",10,x\n\
         2,Bottas,abc,x\n\
         3,Too,Many,Fields,x\n\
         4,Short\n\
         5,\\N,3,x\n\
         six,Verstappen,1,x\n\
         7,Leclerc,4.5\n",
    );
    let (table, rejects) = read_csv(&path, COLUMNS).expect("file reads");
    let lines: Vec<_> = rejects.iter().map(|r| r.line_number().expect("line")).collect();
    assert_eq!(lines, [3, 4, 5, 6, 7], "{rejects:#?}");
    let shown: Vec<String> = rejects.iter().map(ToString::to_string).collect();
    assert!(shown.iter().all(|s| s.starts_with(&path.display().to_string())), "{shown:?}");
    assert!(shown[0].contains("`points`: `abc` is not a number"), "{}", shown[0]);
    assert!(shown[1].contains("5 fields, the header has 4"), "{}", shown[1]);
    assert!(shown[2].contains("too few"), "{}", shown[2]);
    assert!(shown[3].contains("`name` is empty"), "{}", shown[3]);
    assert!(shown[4].contains("`id`: `six` is not a number"), "{}", shown[4]);
    // Good rows keep their lines; a short row missing only an unread column is kept.
    assert_eq!(table.lines, [2, 8]);
    assert_eq!(table.ints("id").expect("ids"), [Some(1), Some(7)]);
    assert_eq!(table.texts("name").expect("names")[0].as_deref(), Some("Hamilton, Lewis"));
    assert_eq!(table.floats("points").expect("points"), [Some(10.0), Some(4.5)]);
}

#[test]
fn a_missing_column_or_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "h.csv", "id,name\n1,a\n");
    match read_csv(&path, COLUMNS) {
        Err(Error::Parse { path: p, line: Some(1), reason }) => {
            assert!(p.ends_with("h.csv") && reason.contains("no column `points`"), "{reason}")
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    let empty = write(dir.path(), "e.csv", "");
    assert!(matches!(read_csv(&empty, COLUMNS), Err(Error::Parse { line: Some(1), .. })));
    let err = Ergast::load(&dir.path().join("nowhere")).expect_err("no CSVs");
    assert!(err.to_string().contains("races.csv"), "{err}");
}
