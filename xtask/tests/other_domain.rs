//! `cargo xtask run-all --config <file> --root <dir>` runs the same five phases on another
//! domain: the example FAQ study (a user's JSONL in three record shapes and an MMLU-shaped
//! multiple-choice file), quick profile, in a scratch study root.

mod common;

use common::{assert_all_phases_ran, read_json, run_all, study_root, workspace};

#[test]
#[ignore = "runs the whole pipeline on the real model: run `cargo xtask test`"]
fn run_all_runs_the_study_on_another_domain_from_its_config() {
    let workspace = workspace();
    let root = study_root(&workspace);
    let config = workspace.join("config/examples/pipeline-faq.yaml");
    let stdout = run_all(&workspace, &config, root.path(), &[]);
    assert_all_phases_ran(&stdout);

    // Phase 1 imported the user's 36 pairs (no F1 source), every one accounted for.
    let card: serde_json::Value = read_json(&root.path().join("data/curated/data_card.json"));
    let split_total: u64 = card["pairs_by_split"].as_object().expect("pairs_by_split").values().filter_map(|v| v.as_u64()).sum();
    assert_eq!(split_total + card["rejects"].as_array().map_or(0, |r| r.len() as u64), 36, "{card}");
    // Every variant was scored on the user's 16-question multiple-choice file.
    for variant in ["baseline", "lora", "qlora", "full"] {
        let eval = read_json(&root.path().join("results").join(variant).join("eval.json"));
        assert_eq!(eval["benchmark"]["n"], 16, "{variant}: {}", eval["benchmark"]);
        assert!(eval["benchmark"]["path"].as_str().is_some_and(|p| p.ends_with("pipeline-faq/mcq.jsonl")), "{variant}: {}", eval["benchmark"]);
        let acc = eval["mcq"]["loglikelihood"]["acc"]["overall"]["acc"].as_f64().expect("accuracy");
        assert!((0.0..=1.0).contains(&acc));
    }
    // The report and the headline table cover the study root's results.
    assert!(root.path().join("results/reports/report.html").is_file());
    assert!(stdout.contains("baseline"), "headline table missing:\n{stdout}");

    // A rerun finds every phase up to date.
    let again = run_all(&workspace, &config, root.path(), &[]);
    assert_eq!(again.matches("up to date").count(), 5, "rerun:\n{again}");
}
