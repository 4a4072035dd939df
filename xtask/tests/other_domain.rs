//! `cargo xtask run-all --config <file> --root <dir>` runs the same five phases on another
//! domain: the example FAQ study (a user's JSONL in three record shapes and an MMLU-shaped
//! multiple-choice file), quick profile, in a scratch study root.

use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "runs the whole pipeline on the real model: run `cargo xtask test`"]
fn run_all_runs_the_study_on_another_domain_from_its_config() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf();
    assert!(workspace.join("models/base/SmolLM2-135M-Instruct.Q4_1.gguf").is_file(), "run `cargo xtask setup` first");
    let root = tempfile::tempdir().expect("tempdir");
    // The example's relative paths (its data, the run files, the base model) live in the
    // workspace; the study root links to them and receives data/, models/ and results/.
    std::os::unix::fs::symlink(workspace.join("config"), root.path().join("config")).expect("link config");
    std::fs::create_dir_all(root.path().join("models")).expect("models");
    std::os::unix::fs::symlink(workspace.join("models/base"), root.path().join("models/base")).expect("link base");
    let config = workspace.join("config/examples/pipeline-faq.yaml");
    let run_all = || Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(&workspace)
        .args(["run-all", "--profile", "quick", "--config"])
        .arg(&config)
        .arg("--root")
        .arg(root.path())
        .output()
        .expect("spawn xtask");
    let out = run_all();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "run-all failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for phase in ["phase1-curation", "phase2-baseline", "phase3-training", "phase4-evaluation", "phase5-reporting"] {
        assert!(stdout.contains(&format!("{phase}: ok")), "{phase} did not run:\n{stdout}");
    }

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
    let again = run_all();
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success() && stdout.matches("up to date").count() == 5, "rerun:\n{stdout}");
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
