//! The study report built from a small but real set of phase outputs written to a temporary
//! folder: evaluation results made with phase 4's own types and functions (`mcq::report`,
//! `compare::compare`, `run::write_jsonl`), training runs shaped exactly as phase 3 writes
//! `summary.json`, `metrics.jsonl` and `resolved_config.yaml`, a data card and a run manifest.
//! The checks: the numbers put in come out as formatted, significance sentences follow the
//! comparisons, every plot is written, the HTML page references nothing outside itself, missing
//! inputs are reported and a corrupt result names its file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use phase4_evaluation::compare::{compare, Comparison};
use phase4_evaluation::config::EvalConfig;
use phase4_evaluation::mcq::{self, GenOutcome, ItemResult, LlOutcome, Verdict};
use phase4_evaluation::metrics::open_metrics;
use phase4_evaluation::open::{HallucinationReport, OpenReport};
use phase4_evaluation::run::{write_jsonl, DatasetRef, EvalReport, LatencyReport, LatencySample, Resources, SCHEMA_VERSION};
use phase4_evaluation::stats::summarize;
use phase5_reporting::report::{build, FontChoice, ReportOptions, ReportPaths};
use serde_json::json;

const N: usize = 40;
const SEED: u64 = 1234;

/// 40 questions in two categories, every fifth a control question. The first `ll` items are
/// right by log-likelihood; of the generative replies the first `gen_ok` are correct, the last
/// `invalid` invalid and the rest incorrect.
fn items(ll: usize, gen_ok: usize, invalid: usize) -> Vec<ItemResult> {
    (0..N)
        .map(|i| {
            let answer = i % 4;
            let pred = if i < ll { answer } else { (answer + 1) % 4 };
            let verdict = if i < gen_ok {
                Verdict::Correct
            } else if i >= N - invalid {
                Verdict::Invalid
            } else {
                Verdict::Incorrect
            };
            let choice = match verdict {
                Verdict::Correct => Some(answer),
                Verdict::Incorrect => Some((answer + 2) % 4),
                Verdict::Invalid => None,
            };
            ItemResult {
                id: format!("q{i}"),
                answer_index: answer,
                part: mcq::DEFAULT_PART.into(),
                fact_keys: vec![],
                category: Some(if i % 2 == 0 { "results" } else { "circuits" }.into()),
                difficulty: Some("easy".into()),
                control: Some(i % 5 == 0),
                chat: None,
                ll: Some(LlOutcome { logprobs: vec![-1.0, -2.0, -3.0, -4.0], pred, pred_norm: pred }),
                circular: None,
                generative: Some(GenOutcome { reply: choice.map_or("I am not sure".into(), |c| ["A", "B", "C", "D"][c].to_string()), choice, verdict }),
            }
        })
        .collect()
}

fn latency(ms: &[f64]) -> Vec<LatencySample> {
    ms.iter().enumerate().map(|(i, &t)| LatencySample { id: format!("o{i}"), prompt_tokens: 20, completion_tokens: 16, ttft_ms: t / 4.0, total_ms: t }).collect()
}

/// Write `results/<name>/` as phase 2/4 would; returns the report.
fn write_variant(results: &Path, name: &str, items: &[ItemResult], lat: &[LatencySample], hallucinated: usize) -> EvalReport {
    let dir = results.join(name);
    let preds = ["Michael Schumacher", "Monza", "Ferrari won", "1994"];
    let refs = ["Michael Schumacher", "Spa", "Ferrari", "1994"];
    let metrics = open_metrics(&preds, &refs).expect("open metrics");
    let col = |f: fn(&LatencySample) -> f64| summarize(&lat.iter().map(f).collect::<Vec<_>>());
    let report = EvalReport {
        schema_version: SCHEMA_VERSION,
        variant: name.into(),
        model: format!("{name} model"),
        runtime: "Cpu Float".into(),
        benchmark: DatasetRef { path: "data/curated/benchmark.jsonl".into(), sha256: "0f".repeat(32), n: items.len() },
        mcq: mcq::report(items, SEED),
        open: Some(OpenReport { metrics, perplexity: Some(12.5), mean_token_accuracy: Some(0.4), judge: None, declined: 0, declined_rate: 0.0, by_part: BTreeMap::new() }),
        hallucination: Some(HallucinationReport { n: 10, declined: 10 - hallucinated, hallucination_rate: hallucinated as f64 / 10.0, by_kind: BTreeMap::new() }),
        latency: Some(LatencyReport { ttft_ms: col(|s| s.ttft_ms), total_ms: col(|s| s.total_ms), output_tokens_per_s: col(|s| s.completion_tokens as f64 / (s.total_ms / 1000.0)) }),
        resources: Resources { peak_rss_mib: Some(812.0), cuda_peak_mib: None, wall_s: BTreeMap::from([("mcq".to_string(), 3.5)]) },
        finished_at: 1_700_000_000,
        config: EvalConfig::default(),
    };
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("eval.json"), serde_json::to_vec_pretty(&report).expect("json")).expect("write eval.json");
    write_jsonl(&dir.join("mcq_items.jsonl"), items).expect("mcq_items");
    write_jsonl(&dir.join("latency.jsonl"), lat).expect("latency");
    report
}

/// A training run as phase 3 leaves it: `summary.json`, `metrics.jsonl`, `resolved_config.yaml`.
/// `val` are (step, validation loss) pairs; `collapse_at` flags the evaluation at that step.
fn write_run(dir: &Path, name: &str, method: &str, r: usize, losses: &[f64], val: &[(u64, f64)], collapse_at: Option<u64>) {
    std::fs::create_dir_all(dir).expect("mkdir run");
    let mut lines = String::new();
    let collapse = |flag: bool| json!({"distinct_1": 0.7, "distinct_2": if flag { 0.12 } else { 0.85 }, "repetition_rate": if flag { 0.66 } else { 0.02 }, "prompt_copies": if flag { 1 } else { 0 }, "samples": 1, "collapsed": flag});
    let samples = json!([["Who won the 2005 Monaco Grand Prix?", "Kimi Räikkönen won the 2005 Monaco Grand Prix."]]);
    for (i, &loss) in losses.iter().enumerate() {
        let step = i as u64 + 1;
        // serde_json writes a NaN as null, exactly as phase 3's json! macro does.
        lines += &format!("{}\n", json!({"step": step, "epoch": step as f64 / losses.len() as f64, "loss": loss, "lr": 2e-4, "grad_norm": 1.0 + i as f64 / 10.0, "tokens_per_s": 850.0, "rss_mib": 1500.0}));
        if let Some(&(_, v)) = val.iter().find(|(s, _)| *s == step) {
            lines += &format!("{}\n", json!({"step": step, "eval_loss": v, "eval_perplexity": v.exp(), "eval_token_accuracy": 0.55, "collapse": collapse(collapse_at == Some(step)), "samples": samples}));
        }
    }
    std::fs::write(dir.join("metrics.jsonl"), lines).expect("metrics");
    let last_val = val.last().map(|v| v.1);
    let trainable: u64 = if method == "full" { 134_515_008 } else { 921_600 * r as u64 / 16 };
    let summary = json!({
        "name": name,
        "method": method,
        "trainable_params": trainable,
        "total_params": 134_515_008u64,
        "trainable_share": trainable as f64 / 134_515_008.0,
        "base_weight_bytes": 113_246_208u64,
        "base_weight_bytes_nf4": if method == "qlora" { json!(31_850_496u64) } else { json!(null) },
        "peak_rss_mib": if method == "full" { 2400.0 } else { 1500.0 },
        "train_seconds": if method == "full" { 410.0 } else { 325.0 },
        "steps": losses.len(),
        "tokens_seen": 96_000u64,
        "final_train_loss": losses.last(),
        "final_eval": {"loss": last_val, "perplexity": last_val.map(f64::exp), "token_accuracy": 0.55, "samples": samples, "collapse": collapse(collapse_at.is_some())},
        "best_val_loss": val.iter().map(|v| v.1).fold(f64::INFINITY, f64::min),
        "stopped_early": false,
        "collapse_flagged": collapse_at.is_some(),
        "artifacts": dir.join(if method == "full" { "model" } else { "adapter" }),
        "resumed_from": null,
    });
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(&summary).expect("json")).expect("summary");
    let yaml = format!(
        "name: {name}\nmethod: {method}\nmodel: models/base/SmolLM2-135M-Instruct.Q4_1.gguf\noutput_dir: {}\ndata:\n  train: data/curated/train.jsonl\n  validation: data/curated/validation.jsonl\n  max_seq_len: 256\n  max_train_examples: null\n  max_eval_examples: 200\n  packing: false\nlora:\n  r: {r}\n  lora_alpha: 32.0\n  lora_dropout: 0.05\n  target_modules:\n  - q_proj\n  - v_proj\n  use_rslora: false\ntrain:\n  epochs: 3\n  batch_size: 4\n  grad_accum: 4\n  lr: 0.0002\n  weight_decay: 0.0\n  warmup_ratio: 0.03\n  schedule: cosine\n  max_grad_norm: 1.0\n  seed: 42\n  eval_every: 10\n  save_every: 10\n  early_stopping_patience: 3\n  max_steps: null\n  sample_prompts: 1\n  stop_on_collapse: false\n  device: auto\n  dtype: auto\n",
        dir.display()
    );
    std::fs::write(dir.join("resolved_config.yaml"), yaml).expect("config");
}

struct Study {
    _tmp: tempfile::TempDir,
    paths: ReportPaths,
    base: EvalReport,
    lora: EvalReport,
    full: EvalReport,
    comparisons: Vec<Comparison>,
}

fn study() -> Study {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let results = root.join("results");
    let (bi, li, fi) = (items(16, 14, 6), items(30, 28, 2), items(17, 15, 6));
    let base = write_variant(&results, "baseline", &bi, &latency(&[100.0, 200.0, 300.0, 400.0, 500.0]), 6);
    let lora = write_variant(&results, "lora", &li, &latency(&[120.0, 220.0, 320.0, 420.0, 520.0]), 3);
    let full = write_variant(&results, "full", &fi, &latency(&[110.0, 210.0, 310.0, 410.0, 910.0]), 7);
    let comparisons = vec![compare("baseline", &bi, "lora", &li, 1000, SEED).expect("compare lora"), compare("baseline", &bi, "full", &fi, 1000, SEED).expect("compare full")];
    std::fs::write(results.join("comparison.json"), serde_json::to_vec_pretty(&comparisons).expect("json")).expect("comparison.json");

    let adapters = root.join("models").join("adapters");
    let falling: Vec<f64> = (0..30).map(|i| 2.5 * (-(i as f64) / 15.0).exp() + 0.5).collect();
    write_run(&adapters.join("lora"), "lora", "lora", 16, &falling, &[(10, 1.40), (20, 1.20), (30, 1.15)], None);
    // Full fine-tuning: training loss keeps falling, validation loss turns up, samples collapse.
    let steep: Vec<f64> = (0..30).map(|i| 2.5 * (-(i as f64) / 5.0).exp() + 0.05).collect();
    write_run(&adapters.join("full"), "full", "full", 16, &steep, &[(10, 1.30), (20, 1.60), (30, 2.10)], Some(30));
    for r in [8, 32] {
        write_run(&adapters.join("lora").join(format!("lora-r{r}")), &format!("lora-r{r}"), "lora", r, &falling, &[(30, 1.1 + r as f64 / 100.0)], None);
    }

    let curated = root.join("data").join("curated");
    std::fs::create_dir_all(&curated).expect("mkdir curated");
    let card = json!({
        "command": "phase1-curation run",
        "config": {"years": [2000, 2024], "pairs": 120, "benchmark": 40},
        "period_note": "Facts from 2000 to 2024.",
        "licenses": [{"source": "f1db", "license": "CC BY 4.0", "attribution": "F1DB"}],
        "outputs": [{"path": "train.jsonl", "bytes": 1234, "sha256": "ab".repeat(32)}],
        "pairs_by_source": {"f1db": 100, "wikipedia": 20},
        "pairs_by_category": {"results": 70, "circuits": 50},
        "pairs_by_split": {"train": 96, "validation": 12, "test": 12},
        "benchmark_by_category": {"results": 20, "circuits": 20},
        "benchmark_by_control": {"control": 8, "taught": 32},
        "leakage": {"threshold": 0.7, "benchmark_questions": 40, "training_questions": 96, "max_similarity": 0.41, "questions_with_shared_8gram": 2, "benchmark_8grams": 300, "shared_8grams": 3, "leaks": []},
        "stages": [{"name": "pairs", "unit": "pairs", "inputs": 130, "outputs": 120, "rejects": 10}],
        "rejects": [{"stage": "pairs", "reason": "near duplicate"}],
    });
    std::fs::write(curated.join("data_card.json"), serde_json::to_vec_pretty(&card).expect("json")).expect("card");
    let manifest = json!({"version": 1, "phases": {"phase1-curation": {"profile": "quick", "inputs": {"config/study.yaml": "cd".repeat(32)}, "outputs": {"data/curated": "ef".repeat(32)}, "seconds": 12.5, "finished_at": 1_700_000_000u64}}});
    std::fs::write(results.join("manifest.json"), serde_json::to_vec_pretty(&manifest).expect("json")).expect("manifest");

    let mut paths = ReportPaths::new(&results, results.join("reports"));
    paths.runs = adapters;
    paths.data_card = curated.join("data_card.json");
    Study { _tmp: tmp, paths, base, lora, full, comparisons }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

const PLOTS: [&str; 8] = ["loss", "mcq_accuracy", "mcq_outcomes", "latency_histogram", "latency_box", "category_accuracy_acc", "category_accuracy_generative", "rank_sweep"];

#[test]
fn the_report_states_every_variants_numbers_and_the_tests_as_computed() {
    let s = study();
    let produced = build(&s.paths, &ReportOptions::default()).expect("report");
    let md = read(&s.paths.out.join("report.md"));

    // Each variant's numbers, formatted as the report formats them.
    for (r, gen, ll) in [(&s.base, "35.0%", "40.0%"), (&s.lora, "70.0%", "75.0%"), (&s.full, "37.5%", "42.5%")] {
        let g = r.mcq.generative.as_ref().expect("generative");
        assert!(md.contains(&format!("| {} | {} | {} | {} | {gen} (", g.total, g.correct, g.incorrect, g.invalid)), "{}: counts and accuracy\n{md}", r.variant);
        assert!(md.contains(&format!("| {ll} (")), "{}: acc {ll}", r.variant);
        let l = r.latency.as_ref().expect("latency");
        assert!(md.contains(&format!("{:.0} / {:.0} / {:.0}", l.total_ms.median, l.total_ms.mean, l.total_ms.p90)), "{}: latency", r.variant);
        let h = r.hallucination.as_ref().expect("hallucination");
        assert!(md.contains(&format!("{:.1}% ({}/{})", 100.0 * h.hallucination_rate, h.n - h.declined, h.n)), "{}: hallucination", r.variant);
        assert!(md.contains(&format!("{:.2}", r.open.as_ref().expect("open").metrics.bleu)), "{}: BLEU", r.variant);
    }
    // Training columns and the data card.
    assert!(md.contains("921.6 K (0.69%)") && md.contains("1500 MiB / 812 MiB") && md.contains("5 min 25 s"), "training columns\n{md}");
    assert!(md.contains("| pairs per split | train | 96 |") && md.contains("highest word 3-shingle similarity 0.410"), "data card");

    // Significance sentences follow the comparisons.
    for cmp in &s.comparisons {
        let acc = cmp.modes.iter().find(|m| m.mode == "acc").expect("acc mode");
        let name = if cmp.b == "lora" { "LoRA" } else { "Full fine-tuning" };
        if acc.mcnemar.p_value < 0.05 {
            assert!(md.contains(&format!("{name} beat the baseline by {:+.1} points", 100.0 * acc.bootstrap.diff)), "{name}: significant\n{md}");
        } else {
            assert!(md.contains(&format!("{name} vs the baseline: {:+.1} points", 100.0 * acc.bootstrap.diff)), "{name}: not significant\n{md}");
        }
    }
    let lora_acc = s.comparisons[0].modes.iter().find(|m| m.mode == "acc").expect("acc");
    assert!(lora_acc.mcnemar.p_value < 0.05, "the fixture's LoRA gain is significant");
    assert!(md.contains("LoRA beat the baseline by +35.0 points") && md.contains("significant at 5%"));
    assert!(md.contains("Full fine-tuning vs the baseline: +2.5 points") && md.contains("no significant difference at 5%"));
    // The hypothesis: LoRA's taught gain (+37.5) beats its control gain (+25.0) significantly.
    assert!(md.contains("LoRA (acc (loglik)): taught questions 37.5% → 75.0% (+37.5 points"), "{md}");
    assert!(md.contains("supports the hypothesis"));

    // Experiment log: one entry per run, observations computed from the curves.
    for run in ["lora", "full", "lora-r8", "lora-r32"] {
        assert!(md.contains(&format!(": {run}\n")), "experiment entry for {run}");
    }
    assert!(md.contains("over-fitting after step 10") && md.contains("Mode collapse") && md.contains("distinct-2 0.12"), "full's observations\n{md}");
    assert!(md.contains("Validation loss 1.4000 at step 10, best 1.1500 at step 30"), "lora's observations");

    // Every plot written; SVGs are SVG; PNGs are PNG when a font was found.
    for stem in PLOTS {
        let svg = s.paths.out.join(format!("{stem}.svg"));
        assert!(produced.files.contains(&svg), "{stem}.svg listed");
        assert!(read(&svg).contains("<svg"), "{stem}.svg");
        let png = s.paths.out.join(format!("{stem}.png"));
        if produced.png_skipped.is_none() {
            let bytes = std::fs::read(&png).expect("png");
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{stem}.png");
        }
    }
    assert!(produced.files.contains(&s.paths.out.join("report.html")) && produced.files.contains(&s.paths.out.join("report.md")));

    // The HTML page is self-contained: plots inline, no URL of any kind.
    let html = read(&s.paths.out.join("report.html"));
    assert!(html.matches("<svg").count() >= PLOTS.len(), "plots inline");
    for bad in ["http://", "https://", "<link", "<script", "<img", "@import"] {
        assert!(!html.contains(bad), "report.html contains {bad}");
    }
    assert!(html.contains("LoRA beat the baseline by +35.0 points"));

    // The manifest's hashes are copied; the missing QLoRA variant is reported, not fatal.
    assert!(md.contains(&"cd".repeat(32)) && md.contains(&"ef".repeat(32)), "manifest hashes");
    assert!(md.contains("variant `qlora` has no evaluation results"), "missing qlora");
    assert!(produced.missing.iter().any(|m| m.path.ends_with("qlora/eval.json")));
}

#[test]
fn missing_inputs_are_reported_and_corrupt_ones_name_the_file() {
    let s = study();
    build(&s.paths, &ReportOptions { font: FontChoice::Off }).expect("first report");
    assert!(s.paths.out.join("loss.svg").exists());
    // Remove the optional inputs: the report still builds and says what it lacks.
    std::fs::remove_file(&s.paths.data_card).expect("rm card");
    std::fs::remove_file(s.paths.results.join("comparison.json")).expect("rm comparison");
    std::fs::remove_file(&s.paths.manifest).expect("rm manifest");
    std::fs::remove_file(s.paths.results.join("full").join("latency.jsonl")).expect("rm latency");
    std::fs::remove_dir_all(&s.paths.runs).expect("rm runs");
    let produced = build(&s.paths, &ReportOptions { font: FontChoice::Off }).expect("report without optional inputs");
    let md = read(&s.paths.out.join("report.md"));
    for (path, what) in [
        (s.paths.data_card.clone(), "no data card summary"),
        (s.paths.results.join("comparison.json"), "no paired significance tests"),
        (s.paths.manifest.clone(), "no input/output hashes"),
        (s.paths.results.join("full").join("latency.jsonl"), "no latency plots for `full`"),
    ] {
        assert!(produced.missing.iter().any(|m| m.path == path), "{} reported", path.display());
        assert!(md.contains(what), "{what}\n{md}");
    }
    assert!(md.contains("no training runs"), "runs reported missing");
    assert!(produced.png_skipped.is_some() && !produced.files.iter().any(|f| f.extension().is_some_and(|e| e == "png")), "SVG only");
    // Plots without data are not drawn, and stale ones from the first build are gone.
    assert!(!s.paths.out.join("loss.svg").exists() && s.paths.out.join("mcq_accuracy.svg").exists());

    // A corrupt eval.json is an error naming the file.
    let bad: PathBuf = s.paths.results.join("lora").join("eval.json");
    std::fs::write(&bad, "{\"schema_version\": 1, \"variant\": ").expect("corrupt");
    let err = build(&s.paths, &ReportOptions::default()).expect_err("corrupt eval.json").to_string();
    assert!(err.contains(&bad.display().to_string()), "{err}");
}
