//! One complete evaluation of one model: the multiple-choice benchmark in every mode (chat,
//! plain, circular, generative; reported per benchmark part), the open questions, the
//! hallucination probe and the latency probe, written to `<results_dir>/<variant>/` as
//! `eval.json` (the stable summary, [`EvalReport`], schema [`SCHEMA_VERSION`]) plus per-item
//! JSONL files that paired comparisons and plots read. Every conversation built from a question
//! starts with the study's system prompt, the format the model was trained in; the headline
//! leads with the chat-format accuracy on the recall part (the taught facts).

use std::path::{Path, PathBuf};
use std::time::Instant;

use f1_core::ChatMessage;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::config::EvalConfig;
use crate::mcq::{self, ItemResult, McqReport, PartReport};
use crate::open::{self, HallucinationReport, OpenReport};
use crate::stats::{summarize, Summary};
use crate::{Error, Result};

/// Version of the `eval.json` layout; bumped on any incompatible change.
/// Version 2 added the chat and circular modes, `mcq.by_part`, over-refusal and parts of the
/// open questions, and hallucination per kind.
pub const SCHEMA_VERSION: u32 = 2;

/// Where the benchmark came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRef {
    /// Path as configured.
    pub path: PathBuf,
    /// sha256 of the file.
    pub sha256: String,
    /// Items used.
    pub n: usize,
}

/// Request latency over the latency probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyReport {
    /// Time to first token, ms.
    pub ttft_ms: Summary,
    /// Whole request, ms.
    pub total_ms: Summary,
    /// Output tokens per second of each request.
    pub output_tokens_per_s: Summary,
}

/// One latency sample (a line of `latency.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySample {
    /// Item id.
    pub id: String,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Output tokens.
    pub completion_tokens: usize,
    /// Time to first token, ms.
    pub ttft_ms: f64,
    /// Total, ms.
    pub total_ms: f64,
}

/// Memory and wall time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// Peak resident memory of the process, MiB (Linux `VmHWM`), if known.
    pub peak_rss_mib: Option<f64>,
    /// Peak GPU memory of this process during the evaluation, MiB, as the NVIDIA driver reports
    /// it (CUDA context and libtorch's cached blocks, see `f1_core::CudaMemoryProbe`); empty on
    /// CPU, for remote backends and without the driver.
    pub cuda_peak_mib: Option<f64>,
    /// Seconds spent per stage (`load`, `mcq`, `open`, `hallucination`, `latency`).
    pub wall_s: std::collections::BTreeMap<String, f64>,
}

/// The stable summary of one variant's evaluation (`eval.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Variant name.
    pub variant: String,
    /// What was loaded (paths, method) or the endpoint.
    pub model: String,
    /// Device and dtype, or `remote`.
    pub runtime: String,
    /// The benchmark file.
    pub benchmark: DatasetRef,
    /// Multiple-choice results.
    pub mcq: McqReport,
    /// Open-question results, if configured.
    pub open: Option<OpenReport>,
    /// Hallucination probe, if configured.
    pub hallucination: Option<HallucinationReport>,
    /// Latency probe, if run.
    pub latency: Option<LatencyReport>,
    /// Memory and time.
    pub resources: Resources,
    /// Seconds since the Unix epoch when the run finished.
    pub finished_at: u64,
    /// The settings used.
    pub config: EvalConfig,
}

/// sha256 of a file, hex.
pub fn file_sha256(path: &Path) -> Result<String> {
    Ok(f1_study::hash::sha256_file(path)?)
}

/// Write records as JSONL, atomically and durably (`f1_study::jsonl`).
pub fn write_jsonl<T: Serialize>(path: &Path, records: &[T]) -> Result<()> {
    Ok(f1_study::jsonl::write(path, records)?)
}

/// Write bytes to `path` atomically and durably (`f1_study::fs`): a reader never sees half a
/// file and a crash never loses the old one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(f1_study::fs::write_atomic(path, bytes)?)
}

/// Read back a JSONL file of records (errors name the file and the 1-based line).
pub fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    Ok(f1_study::jsonl::read(path)?)
}

/// Evaluate `backend` as `variant` under `cfg`, writing everything to
/// `<cfg.results_dir>/<variant>/`. `load_s` is the time it took to load the model.
pub fn evaluate(backend: &mut dyn Backend, variant: &str, runtime: &str, cfg: &EvalConfig, load_s: f64) -> Result<EvalReport> {
    let out = cfg.results_dir.join(variant);
    // The backend may be remote or on the CPU even where CUDA works: then this process holds
    // no GPU memory and the probe reports none.
    let cuda = f1_core::CudaMemoryProbe::start(tch::Device::cuda_if_available());
    let mut wall = std::collections::BTreeMap::from([("load".to_string(), load_s)]);
    let mut items = mcq::read_mcq(&cfg.benchmark)?;
    if cfg.max_questions > 0 {
        items.truncate(cfg.max_questions);
    }
    tracing::info!(variant, model = %backend.describe(), questions = items.len(), "multiple-choice benchmark");
    let t = Instant::now();
    let system = cfg.system_prompt.as_deref();
    let results: Vec<ItemResult> = mcq::evaluate(backend, &items, &cfg.mcq, system)?;
    wall.insert("mcq".into(), t.elapsed().as_secs_f64());
    write_jsonl(&out.join("mcq_items.jsonl"), &results)?;
    let mcq_report = mcq::report_resampled(&results, cfg.seed, cfg.bootstrap_resamples);
    log_mcq(variant, &mcq_report);

    let mut open_items = vec![];
    let open_report = match &cfg.open_questions {
        Some(p) if p.exists() => {
            open_items = open::read_open(p)?;
            if cfg.max_open > 0 {
                open_items.truncate(cfg.max_open);
            }
            let t = Instant::now();
            let mut results = open::evaluate_open(backend, &open_items, cfg.open_max_new_tokens, cfg.open_batch)?;
            let mut report = open::open_report(&results)?;
            if let Some(judge_cfg) = cfg.judge.clone().map(|j| j.from_env_overrides()).or_else(judge_from_env) {
                report.judge = Some(run_judge(judge_cfg, &open_items, &mut results)?);
            }
            wall.insert("open".into(), t.elapsed().as_secs_f64());
            write_jsonl(&out.join("open_items.jsonl"), &results)?;
            tracing::info!(variant, em = report.metrics.exact_match, f1 = report.metrics.token_f1, bleu = report.metrics.bleu, rouge_l = report.metrics.rouge_l, ppl = ?report.perplexity, declined_rate = report.declined_rate, "open questions");
            for (part, p) in &report.by_part {
                tracing::info!(variant, part = part.as_str(), n = p.n, f1 = p.token_f1, em = p.exact_match, declined_rate = p.declined_rate, "open questions by part");
            }
            Some(report)
        }
        Some(p) => {
            tracing::warn!("open questions {} not found; skipped", p.display());
            None
        }
        None => None,
    };

    let hallucination = match &cfg.unanswerable {
        Some(p) if p.exists() => {
            let t = Instant::now();
            let (report, rows) = open::evaluate_unanswerable(backend, p, cfg.max_unanswerable, system, cfg.open_max_new_tokens, cfg.open_batch)?;
            wall.insert("hallucination".into(), t.elapsed().as_secs_f64());
            write_jsonl(&out.join("hallucination_items.jsonl"), &rows)?;
            tracing::info!(variant, rate = report.hallucination_rate, "hallucination probe");
            Some(report)
        }
        Some(p) => return Err(Error::Invalid(format!("evaluation.unanswerable: {} does not exist (remove the key to skip the probe)", p.display()))),
        None => None,
    };

    let latency = if cfg.latency_samples > 0 {
        let t = Instant::now();
        let prompts: Vec<(String, Vec<ChatMessage>)> = if open_items.is_empty() {
            items.iter().map(|i| (i.id.clone(), mcq::generative_prompt(i, system))).collect()
        } else {
            open_items.iter().map(|i| (i.id.clone(), i.prompt.clone())).collect()
        };
        let mut samples = vec![];
        for (id, p) in prompts.into_iter().take(cfg.latency_samples) {
            // One request at a time, as a user of the demo would send them.
            let g = backend.chat(std::slice::from_ref(&p), cfg.latency_max_new_tokens, 1)?.remove(0);
            samples.push(LatencySample { id, prompt_tokens: g.prompt_tokens, completion_tokens: g.completion_tokens, ttft_ms: g.ttft_ms, total_ms: g.total_ms });
        }
        wall.insert("latency".into(), t.elapsed().as_secs_f64());
        write_jsonl(&out.join("latency.jsonl"), &samples)?;
        let col = |f: fn(&LatencySample) -> f64| summarize(&samples.iter().map(f).collect::<Vec<_>>());
        let report = LatencyReport { ttft_ms: col(|s| s.ttft_ms), total_ms: col(|s| s.total_ms), output_tokens_per_s: col(|s| s.completion_tokens as f64 / (s.total_ms / 1000.0).max(1e-9)) };
        tracing::info!(variant, median_ms = report.total_ms.median, mean_ms = report.total_ms.mean, p90_ms = report.total_ms.p90, "latency");
        Some(report)
    } else {
        None
    };

    let cuda_peak_mib = cuda.peak_mib();
    match (cuda_peak_mib, cuda.reason()) {
        (Some(mib), _) => tracing::info!(variant, cuda_peak_mib = mib, "GPU memory"),
        (None, reason) => tracing::debug!(variant, reason = reason.as_deref().unwrap_or_default(), "no GPU memory measured"),
    }
    let report = EvalReport {
        schema_version: SCHEMA_VERSION,
        variant: variant.to_string(),
        model: backend.describe(),
        runtime: runtime.to_string(),
        benchmark: DatasetRef { path: cfg.benchmark.clone(), sha256: file_sha256(&cfg.benchmark)?, n: items.len() },
        mcq: mcq_report,
        open: open_report,
        hallucination,
        latency,
        resources: Resources { peak_rss_mib: f1_core::device::peak_rss_mib(), cuda_peak_mib, wall_s: wall },
        finished_at: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        config: cfg.clone(),
    };
    let json = serde_json::to_vec_pretty(&report).map_err(|e| Error::Invalid(e.to_string()))?;
    write_atomic(&out.join("eval.json"), &json)?;
    Ok(report)
}

fn judge_from_env() -> Option<crate::judge::JudgeConfig> {
    std::env::var("F1_JUDGE_ENDPOINT").ok().map(|_| crate::judge::JudgeConfig::default().from_env_overrides())
}

fn run_judge(cfg: crate::judge::JudgeConfig, items: &[open::OpenItem], results: &mut [open::OpenResult]) -> Result<crate::judge::JudgeSummary> {
    let judge = crate::judge::Judge::new(cfg)?;
    let asks: Vec<crate::judge::JudgeItem> = items
        .iter()
        .zip(results.iter())
        .map(|(i, r)| crate::judge::JudgeItem { question: i.prompt.last().map(|m| m.content.clone()).unwrap_or_default(), reference: r.reference.clone(), prediction: r.prediction.clone() })
        .collect();
    let verdicts = judge.judge_all(&asks);
    for (r, v) in results.iter_mut().zip(&verdicts) {
        match v {
            Ok(v) => r.judge = Some((v.score, v.reason.clone())),
            Err(e) => tracing::warn!(id = %r.id, "judge failed: {e}"),
        }
    }
    Ok(crate::judge::summarize(&verdicts))
}

/// Parts in headline order: `recall` (the taught facts), `control`, `reasoning`, then the rest.
fn parts_in_order(r: &McqReport) -> Vec<(&str, &PartReport)> {
    let rank = |p: &str| ["recall", "control", "reasoning"].iter().position(|&x| x == p).unwrap_or(3);
    let mut parts: Vec<(&str, &PartReport)> = r.by_part.iter().map(|(k, v)| (k.as_str(), v)).collect();
    parts.sort_by_key(|(k, _)| rank(k));
    parts
}

fn log_mcq(variant: &str, r: &McqReport) {
    for (part, p) in parts_in_order(r) {
        let acc = |mode: &str| p.modes.get(mode).map(|a| a.acc);
        let chat = p.modes.get("chat_acc");
        tracing::info!(
            variant,
            part,
            n = p.n,
            clusters = p.clusters,
            chat_acc = ?chat.map(|a| a.acc),
            chat_ci95 = ?chat.map(|a| a.ci95),
            plain_acc = ?acc("acc"),
            circular = ?acc("circular"),
            generative = ?acc("generative"),
            "mcq part"
        );
    }
    if let Some(c) = &r.circular {
        tracing::info!(variant, acc = c.accuracy.overall.acc, per_prompt_acc = c.per_prompt_acc, letter_prior = ?c.letter_prior, "mcq circular");
    }
    if let Some(g) = &r.generative {
        tracing::info!(variant, correct = g.correct, incorrect = g.incorrect, invalid = g.invalid, acc = g.accuracy.overall.acc, "mcq generative");
    }
}

/// Read a variant's `eval.json`.
pub fn read_report(path: &Path) -> Result<EvalReport> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let report: EvalReport = serde_json::from_str(&text).map_err(|e| Error::Data { path: path.to_path_buf(), line: 0, reason: format!("not an eval.json of schema {SCHEMA_VERSION}: {e}") })?;
    Ok(report)
}

/// Load `variant` on the study's base model in this process and evaluate it (phase 2 does this
/// for the baseline, phase 4 for every fine-tuned variant).
pub fn evaluate_variant(study: &crate::config::Study, variant: &crate::Variant) -> Result<EvalReport> {
    let opts = study.model.options()?;
    let t = Instant::now();
    let (loaded, description) = variant.load(&study.model.base, &opts)?;
    let load_s = t.elapsed().as_secs_f64();
    tracing::info!(variant = %variant.name, "loaded {description} in {load_s:.1} s");
    let runtime = format!("{:?} {:?}", opts.device, opts.dtype);
    let mut backend = crate::LocalBackend::new(loaded, description);
    evaluate(&mut backend, &variant.name, &runtime, &study.eval, load_s)
}

/// The terminal summary: per benchmark part (recall first), the chat-format accuracy with its
/// cluster-bootstrap interval, then the plain, circular and generative columns.
pub fn headline(r: &EvalReport) -> String {
    let mut s = format!("{}: {} questions", r.variant, r.benchmark.n);
    for (part, p) in parts_in_order(&r.mcq) {
        s += &format!("; {part} ({} items, {} fact clusters):", p.n, p.clusters);
        let mut cols = vec![];
        if let Some(a) = p.modes.get("chat_acc") {
            cols.push(format!(" chat acc {:.1}% (95% CI {:.1}-{:.1})", 100.0 * a.acc, 100.0 * a.ci95.0, 100.0 * a.ci95.1));
        }
        for (mode, label) in [("acc", "plain acc"), ("circular", "circular"), ("generative", "generative")] {
            if let Some(a) = p.modes.get(mode) {
                cols.push(format!(" {label} {:.1}%", 100.0 * a.acc));
            }
        }
        s += &cols.join(",");
    }
    if let Some(g) = &r.mcq.generative {
        s += &format!("; generative {} correct / {} incorrect / {} invalid", g.correct, g.incorrect, g.invalid);
    }
    if let Some(o) = &r.open {
        s += &format!("; open F1 {:.2}, declined {:.0}%", o.metrics.token_f1, 100.0 * o.declined_rate);
    }
    if let Some(h) = &r.hallucination {
        s += &format!("; hallucination {:.0}%", 100.0 * h.hallucination_rate);
    }
    if let Some(l) = &r.latency {
        s += &format!("; latency median {:.0} ms", l.total_ms.median);
    }
    s
}
