//! The study report built from a small but real set of phase outputs written to a temporary
//! folder: evaluation results made with phase 4's own types and functions (`mcq::report`,
//! `compare::compare`, `run::write_jsonl`), training runs shaped exactly as phase 3 writes
//! `summary.json`, `metrics.jsonl` and `resolved_config.yaml`, a data card and a run manifest.
//! The benchmark has the fact-injection parts (`recall`, `control`, `reasoning`) scored in the
//! chat, plain, circular and generative modes, and the runs log the probe.
//! The checks: the numbers put in come out as formatted, the lead section states each part's
//! accuracy and its paired test and says in words what each variant learned, significance
//! sentences follow the comparisons, every plot is written, the HTML page references nothing
//! outside itself, missing inputs are reported, a corrupt result names its file, and a study
//! with one part or results older than the parts still gets a report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use phase4_evaluation::circular::CircularOutcome;
use phase4_evaluation::compare::{compare, Comparison};
use phase4_evaluation::config::EvalConfig;
use phase4_evaluation::mcq::{self, GenOutcome, ItemResult, LlOutcome, Verdict};
use phase4_evaluation::metrics::open_metrics;
use phase4_evaluation::open::{HallucinationReport, OpenPart, OpenReport};
use phase4_evaluation::run::{write_jsonl, DatasetRef, EvalReport, LatencyReport, LatencySample, Resources, SCHEMA_VERSION};
use phase4_evaluation::stats::summarize;
use phase5_reporting::report::format::pts;
use phase5_reporting::report::{build, FontChoice, ReportOptions, ReportPaths};
use serde_json::json;

const N: usize = 40;
const SEED: u64 = 1234;

/// The part of question `i`: every fifth is a control question, the one after it a reasoning
/// question, the rest (24) recall questions.
fn part_of(i: usize) -> &'static str {
    match i % 5 {
        0 => "control",
        1 => "reasoning",
        _ => "recall",
    }
}

/// 40 questions in two categories and three parts ([`part_of`]). The first `ll` items are
/// right by plain log-likelihood; of the generative replies the first `gen_ok` are correct, the
/// last `invalid` invalid and the rest incorrect. In the chat format the first `chat.0` recall,
/// `chat.1` control and `chat.2` reasoning questions (in file order) are right, and so are the
/// same questions in every circular rotation (the others always answer `A`, with a letter
/// prior leaning to `A`).
fn items(ll: usize, gen_ok: usize, invalid: usize, chat: (usize, usize, usize)) -> Vec<ItemResult> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    (0..N)
        .map(|i| {
            let part = part_of(i);
            let rank = *seen.entry(part).and_modify(|k| *k += 1).or_insert(0);
            let chat_ok = rank < match part {
                "recall" => chat.0,
                "control" => chat.1,
                _ => chat.2,
            };
            let fact_keys = match part {
                "recall" => vec![format!("winner{i}")],
                "control" => vec![format!("control{i}")],
                _ => vec![format!("winner{}", i + 1), format!("winner{}", i + 2)],
            };
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
            let chat_pred = if chat_ok { answer } else { (answer + 1) % 4 };
            let chosen = (0..4).map(|k| if chat_ok { ["A", "B", "C", "D"][k] } else { "A" }.to_string()).collect();
            ItemResult {
                id: format!("q{i}"),
                answer_index: answer,
                part: part.into(),
                fact_keys,
                category: Some(if i % 2 == 0 { "results" } else { "circuits" }.into()),
                difficulty: Some("easy".into()),
                control: Some(i % 5 == 0),
                chat: Some(LlOutcome { logprobs: vec![-1.0, -2.0, -3.0, -4.0], pred: chat_pred, pred_norm: chat_pred }),
                ll: Some(LlOutcome { logprobs: vec![-1.0, -2.0, -3.0, -4.0], pred, pred_norm: pred }),
                circular: Some(CircularOutcome { chosen, letter_probs: vec![vec![0.4, 0.2, 0.2, 0.2]; 4] }),
                generative: Some(GenOutcome { reply: choice.map_or("I am not sure".into(), |c| ["A", "B", "C", "D"][c].to_string()), choice, verdict }),
            }
        })
        .collect()
}

fn latency(ms: &[f64]) -> Vec<LatencySample> {
    ms.iter().enumerate().map(|(i, &t)| LatencySample { id: format!("o{i}"), prompt_tokens: 20, completion_tokens: 16, ttft_ms: t / 4.0, total_ms: t }).collect()
}

/// Write `results/<name>/` as phase 2/4 would; `recall_f1` is the token F1 of the open
/// questions on taught facts. Returns the report.
fn write_variant(results: &Path, name: &str, items: &[ItemResult], lat: &[LatencySample], hallucinated: usize, recall_f1: f64) -> EvalReport {
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
        open: Some(OpenReport {
            metrics,
            perplexity: Some(12.5),
            mean_token_accuracy: Some(0.4),
            judge: None,
            declined: 1,
            declined_rate: 0.125,
            by_part: BTreeMap::from([
                ("recall".to_string(), OpenPart { n: 4, token_f1: recall_f1, exact_match: 0.25, declined: 1, declined_rate: 0.25 }),
                ("unseen".to_string(), OpenPart { n: 4, token_f1: 0.1, exact_match: 0.0, declined: 0, declined_rate: 0.0 }),
            ]),
        }),
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

/// How a run's probe is logged: its (step, accuracy) lines, and whether `summary.json` carries
/// the probe's summary (runs written before it did carry only the lines).
struct ProbeLog<'a> {
    points: &'a [(u64, f64)],
    in_summary: bool,
}

/// A training run as phase 3 leaves it: `summary.json`, `metrics.jsonl`, `resolved_config.yaml`.
/// `val` are (step, validation loss) pairs; `collapse_at` flags the evaluation at that step.
#[allow(clippy::too_many_arguments)] // a fixture's knobs, each named at the call
fn write_run(dir: &Path, name: &str, method: &str, r: usize, losses: &[f64], val: &[(u64, f64)], collapse_at: Option<u64>, probe: ProbeLog) {
    std::fs::create_dir_all(dir).expect("mkdir run");
    let mut lines = String::new();
    let probe_line = |step: u64| probe.points.iter().find(|(s, _)| *s == step).map(|(s, a)| format!("{}\n", json!({"step": s, "probe_acc": a, "probe_acc_norm": a, "probe_n": 8})));
    lines += &probe_line(0).unwrap_or_default();
    let collapse = |flag: bool| json!({"distinct_1": 0.7, "distinct_2": if flag { 0.12 } else { 0.85 }, "repetition_rate": if flag { 0.66 } else { 0.02 }, "prompt_copies": if flag { 1 } else { 0 }, "samples": 1, "collapsed": flag});
    let samples = json!([["Who won the 2005 Monaco Grand Prix?", "Kimi Räikkönen won the 2005 Monaco Grand Prix."]]);
    for (i, &loss) in losses.iter().enumerate() {
        let step = i as u64 + 1;
        // serde_json writes a NaN as null, exactly as phase 3's json! macro does.
        lines += &format!("{}\n", json!({"step": step, "epoch": step as f64 / losses.len() as f64, "loss": loss, "lr": 2e-4, "grad_norm": 1.0 + i as f64 / 10.0, "tokens_per_s": 850.0, "rss_mib": 1500.0}));
        if let Some(&(_, v)) = val.iter().find(|(s, _)| *s == step) {
            lines += &format!("{}\n", json!({"step": step, "eval_loss": v, "eval_perplexity": v.exp(), "eval_token_accuracy": 0.55, "collapse": collapse(collapse_at == Some(step)), "samples": samples}));
        }
        lines += &probe_line(step).unwrap_or_default();
    }
    std::fs::write(dir.join("metrics.jsonl"), lines).expect("metrics");
    let last_val = val.last().map(|v| v.1);
    let trainable: u64 = if method == "full" { 134_515_008 } else { 921_600 * r as u64 / 16 };
    let mut summary = json!({
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
    if probe.in_summary {
        let best = probe.points.iter().filter(|p| p.0 > 0).fold((0, f64::NEG_INFINITY), |b, p| if p.1 > b.1 { *p } else { b });
        summary["early_stopping_metric"] = json!("probe");
        summary["probe"] = json!({"initial_acc": probe.points[0].1, "best_acc": best.1, "best_step": best.0, "final_acc": probe.points.last().map(|p| p.1), "restored_step": best.0, "n": 8});
    }
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
    // Chat format: LoRA's recall gain is significant and its control gain is not; full
    // fine-tuning gains a little on recall, not significantly.
    let (bi, li, fi) = (items(16, 14, 6, (6, 2, 2)), items(30, 28, 2, (20, 3, 4)), items(17, 15, 6, (9, 2, 1)));
    let base = write_variant(&results, "baseline", &bi, &latency(&[100.0, 200.0, 300.0, 400.0, 500.0]), 6, 0.3);
    let lora = write_variant(&results, "lora", &li, &latency(&[120.0, 220.0, 320.0, 420.0, 520.0]), 3, 0.81);
    let full = write_variant(&results, "full", &fi, &latency(&[110.0, 210.0, 310.0, 410.0, 910.0]), 7, 0.35);
    let comparisons = vec![compare("baseline", &bi, "lora", &li, 1000, SEED).expect("compare lora"), compare("baseline", &bi, "full", &fi, 1000, SEED).expect("compare full")];
    std::fs::write(results.join("comparison.json"), serde_json::to_vec_pretty(&comparisons).expect("json")).expect("comparison.json");

    let adapters = root.join("models").join("adapters");
    let falling: Vec<f64> = (0..30).map(|i| 2.5 * (-(i as f64) / 15.0).exp() + 0.5).collect();
    write_run(&adapters.join("lora"), "lora", "lora", 16, &falling, &[(10, 1.40), (20, 1.20), (30, 1.15)], None, ProbeLog { points: &[(0, 0.25), (10, 0.5), (20, 0.75), (30, 0.625)], in_summary: true });
    // Full fine-tuning: training loss keeps falling, validation loss turns up, samples collapse.
    let steep: Vec<f64> = (0..30).map(|i| 2.5 * (-(i as f64) / 5.0).exp() + 0.05).collect();
    write_run(&adapters.join("full"), "full", "full", 16, &steep, &[(10, 1.30), (20, 1.60), (30, 2.10)], Some(30), ProbeLog { points: &[(0, 0.25), (10, 0.375), (20, 0.25), (30, 0.125)], in_summary: false });
    for r in [8, 32] {
        write_run(&adapters.join("lora").join(format!("lora-r{r}")), &format!("lora-r{r}"), "lora", r, &falling, &[(30, 1.1 + r as f64 / 100.0)], None, ProbeLog { points: &[], in_summary: false });
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

const PLOTS: [&str; 11] = ["part_accuracy", "loss", "probe", "mcq_accuracy", "mcq_outcomes", "latency_histogram", "latency_box", "category_accuracy_chat_acc", "category_accuracy_acc", "category_accuracy_generative", "rank_sweep"];

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
    assert!(md.contains("LoRA (plain acc): taught questions 37.5% → 75.0% (+37.5 points"), "{md}");
    assert!(md.contains("supports the hypothesis"));

    // The report leads with what fine-tuning taught: right after the overview.
    let lead = md.find("## What fine-tuning taught").expect("lead section");
    assert!(lead < md.find("## Hypothesis").expect("hypothesis") && lead < md.find("## Results").expect("results"), "the lead section comes first");
    // One row per variant and part, with the chat accuracy and its cluster interval from
    // eval.json and the paired difference and McNemar p from comparison.json.
    for (r, cmp) in [(&s.base, None), (&s.lora, Some(&s.comparisons[0])), (&s.full, Some(&s.comparisons[1]))] {
        for (part, n) in [("recall", 24), ("control", 8), ("reasoning", 8)] {
            let p = &r.mcq.by_part[part];
            let chat = &p.modes["chat_acc"];
            let mut row = format!("| {} | {part} | {n} ({}) | {:.1}% ({:.1}–{:.1}) | ", r.variant, p.clusters, 100.0 * chat.acc, 100.0 * chat.ci95.0, 100.0 * chat.ci95.1);
            match cmp {
                Some(c) => {
                    let m = c.by_part[part].modes.iter().find(|m| m.mode == "chat_acc").expect("chat_acc compared");
                    let cb = &m.cluster_bootstrap;
                    let pv = m.mcnemar.p_value;
                    let p_cell = if pv < 0.1 { format!("{pv:.4}") } else { format!("{pv:.2}") };
                    row += &format!("{} ({} to {}) | {p_cell} | ", pts(cb.diff), pts(cb.ci95.0), pts(cb.ci95.1));
                }
                None => row += "— | — | ",
            }
            row += &format!("{:.1}% | {:.1}% |", 100.0 * p.modes["acc"].acc, 100.0 * p.modes["circular"].acc);
            assert!(md.contains(&row), "row {row}\n{md}");
        }
    }
    assert!(md.contains("| lora | recall | 24 (24) | 83.3% ("), "LoRA's recall accuracy");
    // One sentence per variant, worded by sign and significance: LoRA's recall gain (+58.3,
    // exact McNemar p = 2 / 2^14) is significant and exceeds its control gain (+12.5) by an
    // interval clear of zero; full
    // fine-tuning's recall gain (+12.5, p = 0.25) is not significant.
    let lora_recall = s.comparisons[0].by_part["recall"].modes.iter().find(|m| m.mode == "chat_acc").expect("lora recall");
    assert!((lora_recall.mcnemar.p_value - 2.0 / 16384.0).abs() < 1e-12, "{lora_recall:?}");
    assert!(md.contains("LoRA answers 83.3% of recall questions on taught facts against the baseline's 25.0% (+58.3 points, McNemar p = 0.0001), while control questions moved +12.5 points (n.s., McNemar p = 1.00): part of the gain is format learning, since control questions rose too, but the taught facts gained +45.8 points more (95% CI +17.8 to +73.9): it learned facts."), "LoRA's sentence\n{md}");
    assert!(md.contains("Full fine-tuning answers 37.5% of recall questions on taught facts against the baseline's 25.0% (+12.5 points, n.s., McNemar p = 0.25), while control questions moved ±0.0 points (n.s., McNemar p = 1.00): the gain on the taught facts is not significant at this sample size (n = 24)."), "full's sentence\n{md}");
    // Free answers on taught facts, over-refusal and hallucination beside them.
    assert!(md.contains("| lora | 81.0% | 25.0% (1/4) | 10.0% | 0.0% (0/4) | 30.0% (3/10) |"), "free answers\n{md}");
    // Circular letters: per-position accuracy and the letter prior.
    assert!(md.contains("## Letters and position bias (circular)") && md.contains("| 40.0% | 20.0% | 20.0% | 20.0% |"), "circular section\n{md}");
    // The probe: from summary.json for LoRA, computed from metrics.jsonl for full.
    assert!(md.contains("| lora | probe | 8 | 25.0% | 75.0% (step 20) | 62.5% | 20 |"), "LoRA's probe\n{md}");
    assert!(md.contains("| full | — | 8 | 25.0% | 37.5% (step 10) | 12.5% | — |"), "full's probe\n{md}");

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
    assert!(!s.paths.out.join("loss.svg").exists() && !s.paths.out.join("probe.svg").exists() && s.paths.out.join("mcq_accuracy.svg").exists());

    // A corrupt eval.json is an error naming the file.
    let bad: PathBuf = s.paths.results.join("lora").join("eval.json");
    std::fs::write(&bad, "{\"schema_version\": 1, \"variant\": ").expect("corrupt");
    let err = build(&s.paths, &ReportOptions::default()).expect_err("corrupt eval.json").to_string();
    assert!(err.contains(&bad.display().to_string()), "{err}");
}

#[test]
fn a_study_with_one_part_or_results_older_than_parts_still_gets_a_report() {
    // An imported-domain study: one unmarked part (`all`), no chat template (plain format only),
    // no circular mode, no training runs, no data card.
    let tmp = tempfile::tempdir().expect("tempdir");
    let results = tmp.path().join("results");
    let plain = |ll: usize| -> Vec<ItemResult> {
        items(ll, ll, 0, (0, 0, 0))
            .into_iter()
            .map(|mut r| {
                r.part = mcq::DEFAULT_PART.into();
                r.fact_keys.clear();
                r.chat = None;
                r.circular = None;
                r
            })
            .collect()
    };
    let (bi, li) = (plain(16), plain(30));
    write_variant(&results, "baseline", &bi, &latency(&[100.0]), 5, 0.2);
    write_variant(&results, "lora", &li, &latency(&[100.0]), 5, 0.6);
    let cmp = vec![compare("baseline", &bi, "lora", &li, 500, SEED).expect("compare")];
    std::fs::write(results.join("comparison.json"), serde_json::to_vec_pretty(&cmp).expect("json")).expect("comparison.json");
    let mut paths = ReportPaths::new(&results, results.join("reports"));
    paths.runs = tmp.path().join("models");
    paths.data_card = tmp.path().join("data_card.json");
    build(&paths, &ReportOptions { font: FontChoice::Off }).expect("report of a one-part study");
    let md = read(&paths.out.join("report.md"));
    assert!(md.contains("| lora | all | 40 (40) | 75.0% ("), "the one part, plain format\n{md}");
    assert!(md.contains("LoRA answers 75.0% of the benchmark's questions against the baseline's 40.0% (+35.0 points, McNemar p"), "{md}");
    assert!(md.contains("it gained on the benchmark; no control part separates fact learning from format learning."), "{md}");
    assert!(!md.contains("Probe during training") && !md.contains("Letters and position bias"), "no probe, no circular section");
    assert!(paths.out.join("part_accuracy.svg").exists() && !paths.out.join("probe.svg").exists());

    // Results written before benchmark parts existed (no `chat`, `circular`, `by_part`, and the
    // open questions without over-refusal) still read; the lead section says what is missing.
    for name in ["baseline", "lora"] {
        let path = results.join(name).join("eval.json");
        let mut v: serde_json::Value = serde_json::from_str(&read(&path)).expect("eval.json");
        for key in ["chat", "circular", "by_part"] {
            v["mcq"].as_object_mut().expect("mcq").remove(key);
        }
        for key in ["declined", "declined_rate", "by_part"] {
            v["open"].as_object_mut().expect("open").remove(key);
        }
        std::fs::write(&path, serde_json::to_vec_pretty(&v).expect("json")).expect("write");
    }
    build(&paths, &ReportOptions { font: FontChoice::Off }).expect("report of older results");
    let md = read(&paths.out.join("report.md"));
    assert!(md.contains("Not available: the evaluation results carry no benchmark parts"), "{md}");
    assert!(md.contains("LoRA beat the baseline by +35.0 points"), "the whole-benchmark sections still work\n{md}");
    assert!(!paths.out.join("part_accuracy.svg").exists(), "a stale per-part plot is removed");
}
