//! Curation outputs against the real mirror: answers re-derived from F1DB, splits by fact,
//! balanced answer letters, control facts absent from every pair, leakage gate, data-card
//! identity, determinism; and `import` on the three input shapes.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use phase1_curation::curate::config::CurationConfig;
use phase1_curation::curate::pipeline::{self, Curated, Inputs};
use phase1_curation::curate::split::Split;
use phase1_curation::curate::{facts_text, import, leakage, Category};

fn inputs() -> &'static Inputs {
    static INPUTS: OnceLock<Inputs> = OnceLock::new();
    INPUTS.get_or_init(|| pipeline::load_inputs(&phase1_curation::data_dir(), &CurationConfig::default().sources).expect("mirror loads"))
}

fn cfg() -> CurationConfig {
    CurationConfig { pairs: 600, benchmark: 200, ..CurationConfig::default() }
}

/// Pairs that train whatever the split: taught race winners and abstention.
fn always_train(p: &phase1_curation::curate::Pair) -> bool {
    p.id.starts_with("race_winner:") || p.id.starts_with("abstain:")
}

fn curated() -> &'static Curated {
    static CURATED: OnceLock<Curated> = OnceLock::new();
    CURATED.get_or_init(|| pipeline::curate(inputs(), &cfg()).expect("curation passes"))
}

#[test]
fn race_winner_pairs_name_the_f1db_winner() {
    let db = &inputs().db;
    let mut checked = 0;
    for (p, _) in &curated().pairs {
        let Some(rest) = p.fact_keys.first().and_then(|k| k.strip_prefix("race_winner:")) else { continue };
        let (y, r) = rest.split_once(':').expect("year:round");
        let race = db.race(y.parse().expect("year"), r.parse().expect("round")).expect("race exists");
        let winner = db.race_winner(race).expect("winner");
        let name = &db.drivers[&winner.driver_id].name;
        assert!(p.answer.contains(name.as_str()), "{}: {:?} lacks {name}", p.id, p.answer);
        checked += 1;
    }
    for (p, _) in &curated().pairs {
        if let Some(y) = p.fact_keys.first().and_then(|k| k.strip_prefix("driver_champion:")) {
            let champ = db.driver_champion(y.parse().expect("year")).expect("decided");
            assert!(p.answer.contains(db.drivers[champ].name.as_str()), "{}", p.id);
            checked += 1;
        }
    }
    assert!(checked > 10, "only {checked} pairs checked");
}

#[test]
fn every_pair_has_3_to_5_phrasings_and_no_fact_spans_two_splits() {
    let mut split_of: HashMap<&str, Split> = HashMap::new();
    let mut phrasings: HashMap<&str, usize> = HashMap::new();
    for (p, s) in &curated().pairs {
        for k in &p.fact_keys {
            *phrasings.entry(k).or_default() += 1;
            let prev = split_of.insert(k, *s);
            assert!(prev.is_none_or(|prev| prev == *s), "{k} in {prev:?} and {s:?}");
        }
    }
    // Dedup may drop a phrasing; none of a fact's may exceed five.
    assert!(phrasings.values().all(|n| (1..=5).contains(n)));
    // Taught race winners and abstention pairs all train; the other facts split 80/10/10.
    let split_pairs: Vec<Split> = curated().pairs.iter().filter(|(p, _)| !always_train(p)).map(|(_, s)| *s).collect();
    let train = split_pairs.iter().filter(|s| **s == Split::Train).count() as f64 / split_pairs.len() as f64;
    assert!((0.7..0.9).contains(&train), "train share {train}");
    assert!(curated().pairs.iter().filter(|(p, _)| always_train(p)).all(|(_, s)| *s == Split::Train));
    let cats: HashSet<Category> = curated().pairs.iter().map(|(p, _)| p.category).collect();
    assert!(cats.len() >= 6, "{cats:?}");
}

#[test]
fn benchmark_answers_are_balanced_and_options_distinct() {
    let qs = &curated().questions;
    assert_eq!(qs.len(), 200);
    let mut letters = [0usize; 4];
    for q in qs {
        letters[q.answer_index] += 1;
        assert_eq!(q.answer, ["A", "B", "C", "D"][q.answer_index]);
        assert_eq!(q.options.iter().collect::<HashSet<_>>().len(), 4, "{q:?}");
    }
    assert_eq!(letters, [50, 50, 50, 50]);
    let control = qs.iter().filter(|q| q.control).count();
    assert_eq!(control, 40);
}

#[test]
fn control_facts_are_in_no_pair_and_taught_facts_are_in_train() {
    let c = curated();
    let paired: HashSet<&String> = c.pairs.iter().flat_map(|(p, _)| &p.fact_keys).collect();
    let train: HashSet<&String> = c.pairs.iter().filter(|(_, s)| *s == Split::Train).flat_map(|(p, _)| &p.fact_keys).collect();
    for q in &c.questions {
        for k in &q.fact_keys {
            if q.control {
                assert!(!paired.contains(k), "control fact {k} of {} is in a pair", q.id);
            } else {
                assert!(train.contains(k), "taught fact {k} of {} is not in train", q.id);
            }
        }
    }
}

#[test]
fn leakage_gate_catches_an_injected_benchmark_duplicate() {
    let c = curated();
    let train: Vec<(String, String)> = c.pairs.iter().map(|(p, _)| (p.question.clone(), p.answer.clone())).collect();
    let mut bench: Vec<(String, String)> = c.questions.iter().map(|q| (q.question.clone(), q.question.clone())).collect();
    assert!(leakage::gate(&bench, &train, 0.7).is_ok());
    bench.push((train[7].0.clone(), train[7].0.clone()));
    let err = leakage::gate(&bench, &train, 0.7).expect_err("duplicate caught");
    assert!(err.to_string().contains("leakage"), "{err}");
}

#[test]
fn data_card_identity_holds_and_counts_add_up() {
    let card = &curated().card;
    card.check().expect("identity");
    let pairs = card.stages.iter().find(|s| s.name == "pairs").expect("pairs stage");
    assert_eq!(pairs.outputs, curated().pairs.len());
    assert_eq!(card.rejects.iter().filter(|r| r.stage == "pairs").count(), pairs.rejects);
    assert!(card.inputs.iter().any(|f| f.path.ends_with(".jsonStream")) && card.inputs.iter().any(|f| f.path.ends_with(".html")));
    let md = card.markdown();
    assert!(md.contains("CC BY 4.0") && md.contains("CC BY-SA 4.0") && md.contains("inputs = outputs + rejects"));
}

#[test]
fn same_seed_same_outputs_other_seed_other_outputs() {
    let a = curated();
    let b = pipeline::curate(inputs(), &cfg()).expect("again");
    let json = |c: &Curated| serde_json::to_string(&(&c.pairs, &c.questions)).expect("json");
    assert_eq!(json(a), json(&b));
    let c = pipeline::curate(inputs(), &CurationConfig { seed: 7, ..cfg() }).expect("seed 7");
    assert_ne!(json(a), json(&c));
}

#[test]
fn run_writes_every_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = pipeline::curate(inputs(), &CurationConfig::default().with_profile("quick").expect("quick")).expect("quick");
    pipeline::write(&mut c, dir.path()).expect("write");
    for f in ["train.jsonl", "validation.jsonl", "test.jsonl", "train.alpaca.jsonl", "benchmark.jsonl", "probe.jsonl", "unanswerable.jsonl", "data_card.md", "data_card.json", "resolved_config.yaml"] {
        assert!(dir.path().join(f).is_file(), "{f}");
    }
    for f in ["train.jsonl", "train.alpaca.jsonl"] {
        let text = std::fs::read_to_string(dir.path().join(f)).expect("read");
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("json");
            for k in ["id", "source", "category", "difficulty", "provenance"] {
                assert!(v[k].as_str().is_some_and(|s| !s.is_empty()), "{f}: `{k}` missing in {line}");
            }
            assert!(v["fact_keys"].is_array(), "{f}: {line}");
            if f.contains("alpaca") {
                assert!(v["instruction"].is_string() && v["input"].is_string() && v["output"].is_string(), "{line}");
            } else {
                // The study's system turn, then the question and the answer.
                let roles: Vec<&str> = v["messages"].as_array().expect("messages").iter().filter_map(|m| m["role"].as_str()).collect();
                assert_eq!(roles, ["system", "user", "assistant"], "{line}");
                assert_eq!(v["messages"][0]["content"].as_str(), Some(phase1_curation::curate::config::DEFAULT_SYSTEM_PROMPT));
            }
        }
    }
}

#[test]
fn article_pairs_are_extractive_with_the_span_in_the_article_text() {
    let (facts, _) = facts_text::article_facts(&inputs().articles);
    let by_key: HashMap<&str, &phase1_curation::curate::Fact> = facts.iter().map(|f| (f.key.as_str(), f)).collect();
    let texts: HashMap<String, String> = inputs()
        .articles
        .iter()
        .map(|(file, a)| (a.url.clone().unwrap_or_else(|| file.clone()), facts_text::article_text(a)))
        .collect();
    let mut checked = 0;
    for (p, _) in curated().pairs.iter().filter(|(p, _)| p.category == Category::History) {
        let f = by_key[p.fact_keys[0].as_str()];
        let (url, text) = texts.iter().find(|(u, _)| p.provenance.starts_with(&format!("{u} ["))).expect("the pair names its article");
        assert!(text.contains(&f.value), "{}: {:?} is not in {url}", p.id, f.value);
        assert!(p.answer.contains(&f.value), "{}: the answer {:?} lacks the span {:?}", p.id, p.answer, f.value);
        checked += 1;
    }
    assert!(checked > 20, "only {checked} article pairs");
}

#[test]
fn every_category_with_enough_groups_is_split_80_10_10() {
    // The split unit is a fact group (a season's standings travel together, so that benchmark
    // orderings rest on one split); a category of a few large groups cannot be cut 80/10/10,
    // so the bounds apply to categories of at least ten groups.
    let mut groups: HashMap<Category, HashMap<&str, Split>> = HashMap::new();
    for (p, s) in curated().pairs.iter().filter(|(p, _)| !always_train(p)) {
        groups.entry(p.category).or_default().insert(p.group.as_str(), *s);
    }
    let card = &curated().card;
    let mut checked = 0;
    for (cat, g) in &groups {
        if g.len() < 10 {
            continue;
        }
        let n = |s: &str| {
            let split = match s {
                "train" => Split::Train,
                "validation" => Split::Validation,
                _ => Split::Test,
            };
            curated().pairs.iter().filter(|(p, x)| p.category == *cat && *x == split && !always_train(p)).count() as f64
        };
        let total = n("train") + n("validation") + n("test");
        assert!((0.65..=0.92).contains(&(n("train") / total)), "{cat:?}: train {} of {total}", n("train"));
        assert!(n("test") > 0.0 && n("validation") > 0.0, "{cat:?}: {:?}", card.pairs_by_category_split);
        checked += 1;
    }
    assert!(checked >= 5, "{checked} categories with ten groups or more");
}

#[test]
fn the_card_reports_the_ergast_reconciliation_with_every_disagreement() {
    let card = &curated().card;
    let r = card.reconciliation.as_ref().expect("reconciled");
    assert!(r.races_compared > 1000 && r.seasons_compared > 60, "{} races, {} seasons", r.races_compared, r.seasons_compared);
    let winner_disagreements = r.disagreements.iter().filter(|d| d.kind == phase1_curation::ergast::DisagreementKind::Winner).count();
    assert_eq!(r.winners_agree + winner_disagreements, r.races_compared);
    assert!(!r.name_matches_by_rule.is_empty(), "spelling variants such as Fangio's are matched by a rule");
    assert!(card.inputs.iter().any(|f| f.path.ends_with("results.csv")));
    let md = card.markdown();
    assert!(md.contains("## Ergast reconciliation") && md.contains(&format!("Disagreements: {}.", r.disagreements.len())));
    for d in &r.disagreements {
        assert!(md.contains(&d.key), "disagreement {} is missing from the card", d.key);
    }
}

#[test]
fn import_reads_three_shapes_and_rejects_a_malformed_line_by_number() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("mine.jsonl");
    let lines = [
        r#"{"messages":[{"role":"user","content":"Who won the 2008 title?"},{"role":"assistant","content":"Lewis Hamilton."}]}"#,
        r#"{"instruction":"Name the 2009 champion team.","input":"","output":"Brawn GP."}"#,
        r#"{"prompt":"Which circuit hosts the Monaco Grand Prix?","completion":"Circuit de Monaco."}"#,
        r#"{"prompt": "broken"#,
        r#"{"question":"no known shape","answer":"x"}"#,
        r#"{"prompt":"Which circuit hosts the Monaco Grand Prix?","completion":"Monte Carlo."}"#,
    ];
    std::fs::write(&input, lines.join("\n")).expect("write");
    let out = dir.path().join("out");
    let c = import::import(&input, &out, 1, 0.8).expect("import");
    assert_eq!(c.pairs.len(), 3);
    let bad: Vec<Option<usize>> =
        c.card.rejects.iter().filter(|r| r.stage == "import parse").map(|r| r.reject.line_number()).collect();
    assert_eq!(bad, [Some(4), Some(5)]);
    assert!(c.card.rejects.iter().any(|r| r.stage == "pairs" && r.reject.reason.contains("exact duplicate")));
    c.card.check().expect("identity");
    assert!(out.join("train.jsonl").is_file() && out.join("data_card.json").is_file());
    assert!(!out.join("benchmark.jsonl").exists());
}

/// The data card's tokens per epoch come from the model's own tokenizer and chat template: one
/// pair, counted against Hugging Face transformers on the same GGUF (`AutoTokenizer` with
/// `gguf_file`, `apply_chat_template` then encode: 69 tokens, 2026-12-03).
#[test]
#[ignore = "needs the real model: run `cargo xtask test`"]
fn training_tokens_are_counted_with_the_models_chat_template() {
    let model = std::path::PathBuf::from(std::env::var_os("F1_MODEL_GGUF").expect("F1_MODEL_GGUF (set by cargo xtask test)"));
    let mut pair = curated().pairs.iter().map(|(p, _)| p.clone()).find(|p| p.id.starts_with("race_winner:")).expect("a taught pair");
    let m = |role: &str, content: &str| phase1_curation::curate::Message { role: role.into(), content: content.into() };
    pair.messages = Some(vec![
        m("system", "You are a Formula 1 expert. Answer in one sentence."),
        m("user", "Who won the 2005 Monaco Grand Prix?"),
        m("assistant", "Kimi Räikkönen won the 2005 Monaco Grand Prix, driving for McLaren."),
    ]);
    assert_eq!(pipeline::train_tokens(&model, std::iter::once(&pair)), Some(69));
    assert_eq!(pipeline::train_tokens(&model, [&pair, &pair].into_iter()), Some(138));
    // No model here (a hub id, say): not counted rather than a wrong number.
    assert_eq!(pipeline::train_tokens(std::path::Path::new("org/not-a-local-model"), std::iter::once(&pair)), None);
}
