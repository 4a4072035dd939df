//! The F1 study as CI runs it end to end, as on a fresh machine: `cargo xtask run-all --profile
//! quick` on `config/study.yaml`, in a scratch study root, fetching every source from an
//! upstream (a loopback server holding the mirror's real files) into the study root, with the
//! real base model; then `--force phase5-reporting` reruns the last phase alone.

mod common;

use std::time::Instant;

use common::{assert_all_phases_ran, mirror, read_json, run_all, study_root, workspace, Upstream};

#[test]
#[ignore = "runs the whole pipeline on the real model: run `cargo xtask test`"]
fn run_all_quick_runs_the_f1_study_end_to_end() {
    let workspace = workspace();
    let root = study_root(&workspace);
    let config = workspace.join("config/study.yaml");
    let upstream = Upstream::serve(mirror(&workspace));
    let started = Instant::now();
    let stdout = run_all(&workspace, &config, root.path(), &["--upstream", &upstream.url, "--fetch-interval-ms", "0"]);
    // Informational (speed targets live in benchmarks): the README quotes this figure.
    eprintln!("run-all --profile quick: {:.0} s\n{stdout}", started.elapsed().as_secs_f64());
    assert_all_phases_ran(&stdout);
    // Every source came from the upstream into the study root, byte for byte.
    assert!(stdout.contains("sources: 73 files"), "{stdout}");
    let fetched = root.path().join("data/sources/f1db-main.tar.gz");
    assert_eq!(std::fs::read(&fetched).expect("fetched archive"), std::fs::read(mirror(&workspace).join("f1db-main.tar.gz")).expect("mirror archive"));

    // Phase 1 curated the mirror at the quick sizes: 24 race winners taught in 5 renderings each,
    // other F1DB facts and article text, abstention pairs; a benchmark of about 40 questions in
    // three parts, the probe and the unanswerable questions; every input hashed in the card.
    let curated = root.path().join("data/curated");
    let card = read_json(&curated.join("data_card.json"));
    let inj = &card["injection"];
    assert_eq!((inj["taught_facts"].as_u64(), inj["control_facts"].as_u64(), inj["recall_pairs"].as_u64()), (Some(24), Some(8), Some(120)), "{inj}");
    // Tokens per epoch, counted with the base model's tokenizer and chat template: more than
    // the words (a SmolLM2 token is less than a word here, and the template adds its own).
    let (tokens, words) = (inj["train_tokens_per_epoch"].as_u64(), inj["train_words_per_epoch"].as_u64());
    assert!(tokens.zip(words).is_some_and(|(t, w)| t > w && t < 4 * w), "{inj}");
    assert!(inj["abstention_pairs"].as_u64().is_some_and(|n| n > 0), "{inj}");
    for source in ["f1db", "wikipedia"] {
        assert!(card["pairs_by_source"][source].as_u64().is_some_and(|n| n > 0), "no {source} pairs: {}", card["pairs_by_source"]);
    }
    let questions = std::fs::read_to_string(curated.join("benchmark.jsonl")).expect("benchmark");
    // Quick asks for 40; the reasoning part's caps may leave a few places empty (the card says so).
    let by_part = card["benchmark_by_part"].as_object().expect("benchmark_by_part");
    assert_eq!(questions.lines().count() as u64, by_part.values().filter_map(|v| v.as_u64()).sum::<u64>());
    assert!((34..=40).contains(&questions.lines().count()), "{} questions", questions.lines().count());
    assert_eq!((by_part["recall"].as_u64(), by_part["control"].as_u64()), (Some(24), Some(8)), "{by_part:?}");
    assert_eq!(std::fs::read_to_string(curated.join("probe.jsonl")).expect("probe").lines().count(), 8);
    assert_eq!(std::fs::read_to_string(curated.join("unanswerable.jsonl")).expect("unanswerable").lines().count(), 10);
    assert!(card["inputs"].as_array().is_some_and(|i| i.iter().any(|f| f["path"] == "f1db-main.tar.gz")));

    // Three methods trained three optimizer steps each on the curated pairs.
    for method in ["lora", "qlora", "full"] {
        let summary = read_json(&root.path().join("models/adapters").join(method).join("summary.json"));
        assert_eq!(summary["steps"], 3, "{method}: {summary}");
        assert!(summary["tokens_seen"].as_u64().is_some_and(|t| t > 0), "{method}: {summary}");
        assert!(summary["final_train_loss"].as_f64().is_some_and(f64::is_finite), "{method}: {summary}");
    }
    // Every variant was scored by the same harness on every question of the benchmark.
    let mut hashes = Vec::new();
    for variant in ["baseline", "lora", "qlora", "full"] {
        let eval = read_json(&root.path().join("results").join(variant).join("eval.json"));
        assert_eq!(eval["benchmark"]["n"].as_u64(), Some(questions.lines().count() as u64), "{variant}: {}", eval["benchmark"]);
        hashes.push(eval["benchmark"]["sha256"].clone());
        let acc = eval["mcq"]["by_part"]["recall"]["modes"]["chat_acc"]["acc"].as_f64().expect("recall accuracy in the chat format");
        assert!((0.0..=1.0).contains(&acc), "{variant}: {acc}");
        assert!(eval["mcq"]["chat"]["acc"]["overall"]["acc"].as_f64().is_some(), "{variant}: no overall chat accuracy");
        assert!(eval["latency"]["total_ms"]["median"].as_f64().is_some_and(|m| m > 0.0), "{variant}: no latency");
    }
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "variants saw different benchmarks: {hashes:?}");
    // The report is about the configured domain; the manifest holds all five phases.
    let report = std::fs::read_to_string(root.path().join("results/reports/report.html")).expect("report");
    assert!(report.contains("Formula 1"), "the report does not name the study's domain");
    let manifest = read_json(&root.path().join("results/manifest.json"));
    assert_eq!(manifest["phases"].as_object().map(|p| p.len()), Some(5), "{manifest}");
    // Each phase's executable is one of its inputs, so a code change reruns it.
    for phase in ["phase1-curation", "phase2-baseline", "phase3-training", "phase4-evaluation", "phase5-reporting"] {
        let program = manifest["phases"][phase]["inputs"][format!("program:{phase}")].as_str().unwrap_or_default();
        assert_eq!(program.len(), 64, "{phase}: no program hash in {manifest}");
    }
    for variant in ["baseline", "lora", "qlora", "full"] {
        assert!(stdout.lines().any(|l| l.starts_with(variant)), "headline table lacks {variant}:\n{stdout}");
    }

    // `--force` reruns one phase; the others stay up to date.
    let again = run_all(&workspace, &config, root.path(), &["--upstream", &upstream.url, "--fetch-interval-ms", "0", "--force", "phase5-reporting"]);
    assert_eq!(again.matches("up to date").count(), 4, "rerun:\n{again}");
    assert!(again.contains("phase5-reporting: ok"), "rerun:\n{again}");
}
