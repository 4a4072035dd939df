//! The benchmark of the default curation (the default profile of `config/study.yaml`, as
//! `phase1-curation run` makes it) against the real mirror: balance over template families, templates, kinds and
//! answer letters; the control share; distractors of the same type and era; answers
//! re-derived from F1DB.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

use phase1_curation::curate::benchmark::{cap, template, Kind, Question};
use phase1_curation::curate::config::CurationConfig;
use phase1_curation::curate::pipeline::{self, Curated, Inputs};
use phase1_curation::f1db::F1Db;

/// No template family (results, standings, drivers, constructors, circuits) may hold more
/// than this share of the benchmark: a fair share is a fifth, and a family whose facts run
/// short leaves its places to the others, but no family may take over.
const MAX_FAMILY_SHARE: f64 = 0.25;
/// Nor fewer than this share: every family is measured.
const MIN_FAMILY_SHARE: f64 = 0.05;

/// The study config's default profile.
fn study() -> CurationConfig {
    let root = std::env::var_os("F1_ROOT").map(std::path::PathBuf::from).unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."));
    CurationConfig::load(&root.join("config/study.yaml"), "default").expect("config/study.yaml reads")
}

fn inputs() -> &'static Inputs {
    static INPUTS: OnceLock<Inputs> = OnceLock::new();
    INPUTS.get_or_init(|| pipeline::load_inputs(&phase1_curation::data_dir(), &CurationConfig::default().sources).expect("mirror loads"))
}

fn default_run() -> &'static Curated {
    static CURATED: OnceLock<Curated> = OnceLock::new();
    CURATED.get_or_init(|| pipeline::curate(inputs(), &study()).expect("default curation passes"))
}

fn questions() -> &'static [Question] {
    &default_run().questions
}

fn db() -> &'static F1Db {
    &inputs().db
}

fn share(n: usize) -> f64 {
    n as f64 / questions().len() as f64
}

#[test]
fn default_benchmark_is_full_and_balanced_over_families() {
    let cfg = study();
    let qs = questions();
    assert_eq!(qs.len(), cfg.benchmark, "the default benchmark is full");
    let mut families: BTreeMap<String, usize> = BTreeMap::new();
    for q in qs {
        *families.entry(q.category.name().to_owned()).or_default() += 1;
        let t = template(&q.template).expect("a known template");
        assert_eq!((t.category, t.kind, t.kind.difficulty()), (q.category, q.kind, q.difficulty), "{}", q.id);
    }
    assert_eq!(families.len(), 5, "{families:?}");
    for (f, n) in &families {
        assert!(share(*n) <= MAX_FAMILY_SHARE, "family {f} holds {n} of {} questions: {families:?}", qs.len());
        assert!(share(*n) >= MIN_FAMILY_SHARE, "family {f} holds only {n} of {} questions: {families:?}", qs.len());
    }
    let kinds: HashSet<Kind> = qs.iter().map(|q| q.kind).collect();
    assert_eq!(kinds.len(), 4, "which, count, compare and order all appear: {kinds:?}");
}

#[test]
fn default_benchmark_caps_every_template_in_both_parts() {
    let cfg = study();
    let qs = questions();
    let control = qs.iter().filter(|q| q.control).count();
    assert_eq!(control, (cfg.benchmark as f64 * cfg.control_share).round() as usize);
    let (taught_cap, control_cap) = (cap(cfg.benchmark_template_cap, qs.len() - control), cap(cfg.benchmark_template_cap, control));
    let mut per: BTreeMap<(&str, bool), usize> = BTreeMap::new();
    for q in qs {
        *per.entry((q.template.as_str(), q.control)).or_default() += 1;
    }
    for ((t, is_control), n) in &per {
        let limit = if *is_control { control_cap } else { taught_cap };
        assert!(*n <= limit, "{t} (control {is_control}): {n} > cap {limit}");
    }
    let sel = default_run().card.benchmark_selection.as_ref().expect("selection recorded");
    assert_eq!((sel.taught_cap, sel.control_cap), (taught_cap, control_cap));
    let card_total: usize = default_run().card.benchmark_by_template.values().sum();
    assert_eq!(card_total, qs.len());
}

#[test]
fn default_benchmark_answer_letters_are_balanced_overall_and_per_template() {
    let qs = questions();
    let mut overall = [0usize; 4];
    let mut per: HashMap<&str, [usize; 4]> = HashMap::new();
    for q in qs {
        overall[q.answer_index] += 1;
        per.entry(q.template.as_str()).or_default()[q.answer_index] += 1;
        assert_eq!(q.answer, ["A", "B", "C", "D"][q.answer_index]);
        assert_eq!(q.options.iter().collect::<HashSet<_>>().len(), 4, "{q:?}");
    }
    let (lo, hi) = (overall.iter().min().copied().unwrap_or(0), overall.iter().max().copied().unwrap_or(0));
    assert!(hi - lo <= 1, "letters {overall:?}");
    for (t, l) in per {
        let (lo, hi) = (l.iter().min().copied().unwrap_or(0), l.iter().max().copied().unwrap_or(0));
        assert!(hi - lo <= 1, "{t}: letters {l:?}");
    }
}

#[test]
fn default_benchmark_control_facts_are_in_no_pair_and_the_gate_passes() {
    let c = default_run();
    let paired: HashSet<&String> = c.pairs.iter().flat_map(|(p, _)| &p.fact_keys).collect();
    for q in c.questions.iter().filter(|q| q.control) {
        assert!(q.fact_keys.iter().all(|k| !paired.contains(k)), "{}", q.id);
    }
    let leak = c.card.leakage.as_ref().expect("gate ran");
    assert!(leak.leaks.is_empty() && leak.max_similarity < leak.threshold);
}

fn debut(db: &F1Db, name: &str) -> u16 {
    let id = db.drivers.values().find(|d| d.name == name).map(|d| d.id.clone()).unwrap_or_else(|| panic!("{name} is no F1DB driver"));
    db.races.iter().find(|r| r.results.iter().any(|x| x.driver_id == id)).map(|r| r.year).expect("raced")
}

#[test]
fn distractors_are_of_the_same_type_and_era() {
    let db = db();
    let mut checked = BTreeMap::<&str, usize>::new();
    for q in questions() {
        let key = &q.fact_keys[0];
        match q.template.as_str() {
            "winner_which" | "fastest_lap_which" => {
                let (y, n) = key.rsplit_once(':').map(|(a, n)| (a.rsplit_once(':').expect("year").1, n)).expect("key");
                let race = db.race(y.parse().expect("year"), n.parse().expect("round")).expect("race");
                let field: HashSet<&str> = race.results.iter().map(|r| db.drivers[&r.driver_id].name.as_str()).collect();
                assert!(q.options.iter().all(|o| field.contains(o.as_str())), "{}: {:?} not all in the race", q.id, q.options);
            }
            "birthplace_which" | "nationality_which" => {
                let years: Vec<u16> = q.options.iter().map(|o| debut(db, o)).collect();
                let answer = years[q.answer_index];
                assert!(years.iter().all(|y| y.abs_diff(answer) <= 3), "{}: debuts {years:?}", q.id);
            }
            "engine_which" => {
                let year: u16 = key.split(':').nth(1).expect("year").parse().expect("year");
                let entrants: HashSet<&str> = db
                    .races_in(year)
                    .iter()
                    .flat_map(|r| r.results.iter().map(|x| db.constructors[&x.constructor_id].name.as_str()))
                    .collect();
                assert!(q.options.iter().all(|o| entrants.contains(o.as_str())), "{}: {:?}", q.id, q.options);
            }
            _ => continue,
        }
        *checked.entry(q.template.as_str()).or_default() += 1;
    }
    assert_eq!(checked.len(), 5, "{checked:?}");
}

#[test]
fn benchmark_answers_re_derive_from_f1db() {
    let db = db();
    let mut checked = BTreeMap::<&str, usize>::new();
    let right = |q: &Question| q.options[q.answer_index].clone();
    for q in questions() {
        let key = q.fact_keys[0].as_str();
        let parts: Vec<&str> = key.split(':').collect();
        match q.template.as_str() {
            "winner_which" => {
                let race = db.race(parts[1].parse().expect("year"), parts[2].parse().expect("round")).expect("race");
                assert_eq!(right(q), db.drivers[&db.race_winner(race).expect("winner").driver_id].name, "{}", q.id);
            }
            "wins_count" => {
                let (year, driver): (u16, &str) = (parts[1].parse().expect("year"), parts[2]);
                let wins = db.races_in(year).iter().filter(|r| db.race_winners(r).iter().any(|w| w.driver_id == driver)).count();
                assert_eq!(right(q), wins.to_string(), "{}", q.id);
            }
            "standing_order" | "standing_lowest" => {
                let year: u16 = parts[1].parse().expect("year");
                let standings = &db.seasons[&year].driver_standings;
                let pos = |name: &str| {
                    standings.iter().find(|s| db.drivers[&s.driver_id].name == name).and_then(|s| s.position).expect("classified")
                };
                let places: Vec<u32> = q.options.iter().map(|o| pos(o)).collect();
                let best = if q.template == "standing_order" { places.iter().min() } else { places.iter().max() };
                assert_eq!(Some(&places[q.answer_index]), best, "{}: {places:?}", q.id);
            }
            "circuit_length_longest" => {
                let len = |name: &str| db.circuits.values().find(|c| c.full_name == name).expect("circuit").length;
                let lengths: Vec<f64> = q.options.iter().map(|o| len(o)).collect();
                assert!(lengths.iter().all(|l| *l < lengths[q.answer_index] || *l == lengths[q.answer_index]), "{}: {lengths:?}", q.id);
            }
            "birth_year" => {
                let d = &db.drivers[parts[1]];
                assert_eq!(right(q), d.date_of_birth.year.to_string(), "{}", q.id);
            }
            _ => continue,
        }
        *checked.entry(q.template.as_str()).or_default() += 1;
    }
    assert_eq!(checked.len(), 6, "{checked:?}");
}
