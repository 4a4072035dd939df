//! Phase 3's outputs as the report reads them: `summary.json`, `metrics.jsonl` and
//! `resolved_config.yaml` of each training run under the adapters folder (sweep runs one level
//! deeper). The structs mirror the fields `phase3_training::train` writes but are this crate's
//! own, every field optional, so the report does not link the trainer and a run that stopped
//! half-way (no summary yet) still shows its curves. [`observe`] turns the logged curves into the
//! experiment log's training observations: how far the loss fell, whether validation loss rose
//! again (over-fitting), went non-finite or stayed flat (collapse). Runs with a probe (held-out
//! paraphrased MCQ on the taught facts, scored at step 0 and at every evaluation) also log its
//! accuracy, read here as [`ProbePoint`]s and the summary's [`ProbeSummary`].

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{Error, Result};

/// Mode-collapse signals of one evaluation's samples (phase 3's `CollapseReport`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Collapse {
    /// Unique unigrams / unigrams.
    pub distinct_1: Option<f64>,
    /// Unique bigrams / bigrams.
    pub distinct_2: Option<f64>,
    /// Mean share of repeated 4-grams within a sample.
    pub repetition_rate: Option<f64>,
    /// Samples that repeat their prompt.
    pub prompt_copies: usize,
    /// Samples looked at.
    pub samples: usize,
    /// Whether the signals say the model collapsed.
    pub collapsed: bool,
}

/// The last validation result of a run (phase 3's `EvalResult`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct FinalEval {
    /// Mean token cross-entropy on the validation replies (`null` when it was not finite).
    pub loss: Option<f64>,
    /// exp(loss).
    pub perplexity: Option<f64>,
    /// Share of reply tokens ranked first.
    pub token_accuracy: Option<f64>,
    /// (prompt, greedy generation) pairs.
    pub samples: Vec<(String, String)>,
    /// Collapse signals of those samples.
    pub collapse: Option<Collapse>,
}

/// The probe's accuracies over a run (phase 3's `ProbeSummary`), every field optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ProbeSummary {
    /// Accuracy of the base model, before the first step.
    pub initial_acc: Option<f64>,
    /// Best accuracy of an evaluation after training started.
    pub best_acc: Option<f64>,
    /// Step of `best_acc`.
    pub best_step: Option<u64>,
    /// Accuracy at the last evaluation, before any restoring.
    pub final_acc: Option<f64>,
    /// The step whose weights the artifacts hold when the best evaluation's were restored.
    pub restored_step: Option<u64>,
    /// Questions in the probe.
    pub n: Option<usize>,
}

/// A run's `summary.json` (phase 3's `TrainSummary`), every field optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RunSummary {
    /// Run name.
    pub name: Option<String>,
    /// `lora`, `qlora` or `full`.
    pub method: Option<String>,
    /// Parameters that received gradients.
    pub trainable_params: Option<u64>,
    /// Parameters of the base model.
    pub total_params: Option<u64>,
    /// trainable / total.
    pub trainable_share: Option<f64>,
    /// Bytes of the frozen block projections as stored.
    pub base_weight_bytes: Option<u64>,
    /// The same after NF4 quantization (QLoRA only).
    pub base_weight_bytes_nf4: Option<u64>,
    /// Peak resident memory of the training process, MiB.
    pub peak_rss_mib: Option<f64>,
    /// Seconds spent in training steps.
    pub train_seconds: Option<f64>,
    /// Optimizer steps done.
    pub steps: Option<u64>,
    /// Training tokens processed.
    pub tokens_seen: Option<u64>,
    /// Mean loss of the last optimizer step.
    pub final_train_loss: Option<f64>,
    /// Last validation result.
    pub final_eval: Option<FinalEval>,
    /// Best validation loss seen.
    pub best_val_loss: Option<f64>,
    /// Early stopping (or collapse) ended the run before its last step.
    pub stopped_early: bool,
    /// What early stopping watched: `probe` or `val_loss`.
    pub early_stopping_metric: Option<String>,
    /// The probe's accuracies, when the run had a probe.
    pub probe: Option<ProbeSummary>,
    /// Any evaluation flagged mode collapse.
    pub collapse_flagged: bool,
    /// Adapter or model directory.
    pub artifacts: Option<PathBuf>,
    /// The checkpoint the run resumed from.
    pub resumed_from: Option<PathBuf>,
}

/// One optimizer step of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainPoint {
    /// Optimizer step (1-based).
    pub step: u64,
    /// Mean token loss of the step; NaN when the log holds `null` (a non-finite loss).
    pub loss: f64,
    /// Learning rate.
    pub lr: Option<f64>,
    /// Gradient norm before clipping.
    pub grad_norm: Option<f64>,
    /// Training throughput of the step.
    pub tokens_per_s: Option<f64>,
}

/// One validation line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalPoint {
    /// Step after which it ran.
    pub step: u64,
    /// Validation loss; NaN when logged as `null`.
    pub loss: f64,
    /// Token accuracy on the validation replies.
    pub token_accuracy: Option<f64>,
    /// Collapse signals.
    pub collapse: Option<Collapse>,
    /// (prompt, generation) samples.
    pub samples: Vec<(String, String)>,
}

/// One probe line of `metrics.jsonl` (step 0 is the base model).
#[derive(Debug, Clone, PartialEq)]
pub struct ProbePoint {
    /// Optimizer step after which the probe ran (0 = before training).
    pub step: u64,
    /// Chat-format answer-text accuracy on the probe; NaN when logged as `null`.
    pub acc: f64,
    /// The length-normalised variant.
    pub acc_norm: Option<f64>,
    /// Probe questions scored.
    pub n: Option<u64>,
}

/// The settings of a run that the experiment log quotes, from `resolved_config.yaml`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunConfig {
    /// (setting, value) in the order the log lists them.
    pub settings: Vec<(String, String)>,
}

/// Everything the report knows about one training run.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingRun {
    /// Run name (`summary.json`'s, else the folder's).
    pub name: String,
    /// The run's output folder.
    pub dir: PathBuf,
    /// `summary.json`, absent while the run has not finished.
    pub summary: Option<RunSummary>,
    /// Optimizer steps logged.
    pub train: Vec<TrainPoint>,
    /// Validation evaluations logged.
    pub evals: Vec<EvalPoint>,
    /// Probe evaluations logged (empty for a run without a probe).
    pub probes: Vec<ProbePoint>,
    /// Settings from `resolved_config.yaml`.
    pub config: Option<RunConfig>,
}

impl TrainingRun {
    /// `lora`, `qlora` or `full`, from the summary or else the config.
    pub fn method(&self) -> Option<String> {
        self.summary.as_ref().and_then(|s| s.method.clone()).or_else(|| self.config.as_ref().and_then(|c| c.get("method").map(str::to_string)))
    }

    /// Last validation loss: the summary's, else the last logged.
    pub fn final_val_loss(&self) -> Option<f64> {
        self.summary.as_ref().and_then(|s| s.final_eval.as_ref()).and_then(|e| e.loss).or_else(|| self.evals.last().map(|e| e.loss))
    }

    /// Last training loss: the summary's, else the last logged.
    pub fn final_train_loss(&self) -> Option<f64> {
        self.summary.as_ref().and_then(|s| s.final_train_loss).or_else(|| self.train.last().map(|p| p.loss))
    }

    /// The probe's summary: the one `summary.json` holds, else one computed from the logged
    /// probe lines (initial = step 0, best = the highest after it, earliest among equals), else
    /// `None` for a run without a probe.
    pub fn probe_summary(&self) -> Option<ProbeSummary> {
        if let Some(p) = self.summary.as_ref().and_then(|s| s.probe.clone()) {
            return Some(p);
        }
        if self.probes.is_empty() {
            return None;
        }
        let finite = || self.probes.iter().filter(|p| p.acc.is_finite());
        let best = finite().filter(|p| p.step > 0).fold(None::<&ProbePoint>, |b, p| match b {
            Some(b) if b.acc >= p.acc => Some(b),
            _ => Some(p),
        });
        Some(ProbeSummary {
            initial_acc: finite().find(|p| p.step == 0).map(|p| p.acc),
            best_acc: best.map(|p| p.acc),
            best_step: best.map(|p| p.step),
            final_acc: self.probes.last().filter(|p| p.step > 0).map(|p| p.acc),
            restored_step: None,
            n: self.probes.iter().find_map(|p| p.n).map(|n| n as usize),
        })
    }

    /// The LoRA rank when the run's name is `<name>-r<rank>` (a rank sweep).
    pub fn sweep_rank(&self) -> Option<(String, u64)> {
        let (base, rank) = self.name.rsplit_once("-r")?;
        let r: u64 = rank.parse().ok()?;
        (!base.is_empty()).then(|| (base.to_string(), r))
    }
}

impl RunConfig {
    /// The value of a setting.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.settings.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Find the training runs under `root`: every folder holding `summary.json` or `metrics.jsonl`,
/// at depth one (`models/adapters/lora`) or two (a sweep's `models/adapters/lora/lora-r8`),
/// plus `extra` folders. Sorted by path; a missing root gives no runs.
pub fn discover(root: &Path, extra: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut dirs = vec![];
    let is_run = |d: &Path| d.join("summary.json").is_file() || d.join("metrics.jsonl").is_file();
    let children = |d: &Path| -> Result<Vec<PathBuf>> {
        let mut v = vec![];
        for entry in std::fs::read_dir(d).map_err(|e| Error::ReportInput { path: d.to_path_buf(), reason: e.to_string(), hint: "check the folder's permissions".into() })? {
            let entry = entry.map_err(|e| Error::ReportInput { path: d.to_path_buf(), reason: e.to_string(), hint: "check the folder's permissions".into() })?;
            if entry.path().is_dir() {
                v.push(entry.path());
            }
        }
        v.sort();
        Ok(v)
    };
    if root.is_dir() {
        for d in children(root)? {
            if is_run(&d) {
                dirs.push(d.clone());
            }
            for sub in children(&d)? {
                // Checkpoint folders hold weights, never a run of their own.
                if is_run(&sub) && sub.file_name().is_some_and(|n| n != "checkpoints") {
                    dirs.push(sub);
                }
            }
        }
    }
    for d in extra {
        if is_run(d) && !dirs.iter().any(|x| same_dir(x, d)) {
            dirs.push(d.clone());
        }
    }
    Ok(dirs)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::ReportInput { path: path.to_path_buf(), reason: reason.into(), hint: "rerun phase 3 for this run (`cargo xtask run-all --force phase3-training`) or delete the folder".into() }
}

/// Read one run folder.
pub fn read_run(dir: &Path) -> Result<TrainingRun> {
    let summary_path = dir.join("summary.json");
    let summary: Option<RunSummary> = if summary_path.is_file() {
        let text = std::fs::read_to_string(&summary_path).map_err(|e| bad(&summary_path, e.to_string()))?;
        Some(serde_json::from_str(&text).map_err(|e| bad(&summary_path, format!("not a phase-3 summary: {e}")))?)
    } else {
        None
    };
    let metrics_path = dir.join("metrics.jsonl");
    let Metrics { train, evals, probes } = if metrics_path.is_file() { read_metrics(&metrics_path)? } else { Metrics::default() };
    let config_path = dir.join("resolved_config.yaml");
    let config = if config_path.is_file() { Some(read_config(&config_path)?) } else { None };
    let name = summary
        .as_ref()
        .and_then(|s| s.name.clone())
        .or_else(|| config.as_ref().and_then(|c| c.get("name").map(str::to_string)))
        .unwrap_or_else(|| dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned()));
    Ok(TrainingRun { name, dir: dir.to_path_buf(), summary, train, evals, probes, config })
}

fn num(v: &serde_json::Value, key: &str) -> Option<f64> {
    v.get(key).and_then(serde_json::Value::as_f64)
}

/// The lines of one `metrics.jsonl`, by kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// Optimizer steps.
    pub train: Vec<TrainPoint>,
    /// Validation evaluations.
    pub evals: Vec<EvalPoint>,
    /// Probe evaluations.
    pub probes: Vec<ProbePoint>,
}

/// Parse `metrics.jsonl`: step lines carry `loss`, evaluation lines `eval_loss`, probe lines
/// `probe_acc`; lines of other kinds are skipped. A value logged as `null` is a non-finite one
/// (serde_json writes NaN as `null`) and is kept as NaN. A broken last line is what a crash
/// mid-write leaves and is skipped with a warning; a broken line anywhere else is an error
/// naming the line.
pub fn read_metrics(path: &Path) -> Result<Metrics> {
    let text = std::fs::read_to_string(path).map_err(|e| bad(path, e.to_string()))?;
    let lines: Vec<(usize, &str)> = f1_study::jsonl::lines(&text).collect();
    let (mut train, mut evals, mut probes) = (vec![], vec![], vec![]);
    for (k, &(i, line)) in lines.iter().enumerate() {
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) if k + 1 == lines.len() => {
                tracing::warn!("{} line {i}: {e}; skipped (a run interrupted while writing it)", path.display());
                continue;
            }
            Err(e) => return Err(bad(path, format!("line {i}: not JSON: {e}"))),
        };
        let Some(step) = v.get("step").and_then(serde_json::Value::as_u64) else {
            return Err(bad(path, format!("line {i}: no `step`")));
        };
        if v.get("eval_loss").is_some() {
            let collapse = v.get("collapse").and_then(|c| serde_json::from_value(c.clone()).ok());
            let samples = v.get("samples").and_then(|s| serde_json::from_value(s.clone()).ok()).unwrap_or_default();
            evals.push(EvalPoint { step, loss: num(&v, "eval_loss").unwrap_or(f64::NAN), token_accuracy: num(&v, "eval_token_accuracy"), collapse, samples });
        } else if v.get("loss").is_some() {
            train.push(TrainPoint { step, loss: num(&v, "loss").unwrap_or(f64::NAN), lr: num(&v, "lr"), grad_norm: num(&v, "grad_norm"), tokens_per_s: num(&v, "tokens_per_s") });
        } else if v.get("probe_acc").is_some() {
            probes.push(ProbePoint { step, acc: num(&v, "probe_acc").unwrap_or(f64::NAN), acc_norm: num(&v, "probe_acc_norm"), n: v.get("probe_n").and_then(serde_json::Value::as_u64) });
        }
    }
    Ok(Metrics { train, evals, probes })
}

/// The settings of `resolved_config.yaml` worth quoting (phase 3's `TrainConfig` layout).
pub fn read_config(path: &Path) -> Result<RunConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| bad(path, e.to_string()))?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| bad(path, format!("not valid YAML: {e}")))?;
    let show = |v: &serde_yaml::Value| -> Option<String> {
        match v {
            serde_yaml::Value::Null => None,
            serde_yaml::Value::Bool(b) => Some(b.to_string()),
            serde_yaml::Value::Number(n) => Some(n.to_string()),
            serde_yaml::Value::String(s) => Some(s.clone()),
            serde_yaml::Value::Sequence(items) => Some(items.iter().filter_map(|i| i.as_str().map(str::to_string).or_else(|| serde_yaml::to_string(i).ok().map(|s| s.trim().to_string()))).collect::<Vec<_>>().join(", ")),
            _ => serde_yaml::to_string(v).ok().map(|s| s.trim().to_string()),
        }
    };
    let at = |path: &str| -> Option<String> {
        let mut cur = &doc;
        for part in path.split('.') {
            cur = cur.get(part)?;
        }
        show(cur)
    };
    let method = at("method");
    let mut keys = vec!["name", "method", "model", "data.train", "data.validation", "data.max_seq_len", "data.max_train_examples", "data.packing"];
    if method.as_deref() != Some("full") {
        keys.extend(["lora.r", "lora.lora_alpha", "lora.lora_dropout", "lora.target_modules", "lora.use_rslora"]);
    }
    keys.extend(["train.epochs", "train.max_steps", "train.batch_size", "train.grad_accum", "train.lr", "train.schedule", "train.warmup_ratio", "train.weight_decay", "train.max_grad_norm", "train.seed", "train.eval_every", "train.early_stopping_patience", "train.device", "train.dtype"]);
    let settings = keys.into_iter().filter_map(|k| at(k).map(|v| (k.to_string(), v))).collect();
    Ok(RunConfig { settings })
}

/// Relative change below which a loss curve counts as flat: an order of magnitude under what a
/// run that learns anything moves in its first epoch.
pub const FLAT_REL: f64 = 0.01;

/// Rise of the last validation loss over the best one that counts as over-fitting: above the
/// run-to-run noise of a 200-example validation split.
pub const OVERFIT_REL: f64 = 0.02;

/// What the curves of one run show.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observations {
    /// Steps logged.
    pub steps_logged: usize,
    /// Mean training loss over the first window, with the window's first and last step.
    pub start: Option<(f64, u64, u64)>,
    /// Mean training loss over the last window, with its steps.
    pub end: Option<(f64, u64, u64)>,
    /// Lowest logged training loss and its step.
    pub min_train: Option<(f64, u64)>,
    /// First step whose training loss was not finite.
    pub non_finite_at: Option<u64>,
    /// The training loss moved less than [`FLAT_REL`] from start to end.
    pub flat: bool,
    /// The training loss ended above where it started.
    pub rose: bool,
    /// First validation loss and its step.
    pub val_first: Option<(f64, u64)>,
    /// Best validation loss and its step.
    pub val_best: Option<(f64, u64)>,
    /// Last validation loss and its step.
    pub val_last: Option<(f64, u64)>,
    /// The last validation loss is more than [`OVERFIT_REL`] above the best, seen later.
    pub overfit: bool,
    /// First evaluation whose samples the collapse detector flagged, with its signals.
    pub collapse_at: Option<(u64, Collapse)>,
    /// Mean training throughput, tokens/s.
    pub mean_tokens_per_s: Option<f64>,
    /// Largest gradient norm and its step.
    pub max_grad_norm: Option<(f64, u64)>,
}

/// Read the training observations off a run's logged curves.
pub fn observe(run: &TrainingRun) -> Observations {
    let mut o = Observations { steps_logged: run.train.len(), ..Default::default() };
    o.non_finite_at = run.train.iter().find(|p| !p.loss.is_finite()).map(|p| p.step);
    let finite: Vec<&TrainPoint> = run.train.iter().filter(|p| p.loss.is_finite()).collect();
    if !finite.is_empty() {
        // Per-step losses move with the batch; compare window means, not single steps.
        let w = (finite.len() / 5).clamp(1, 5);
        let mean = |ps: &[&TrainPoint]| ps.iter().map(|p| p.loss).sum::<f64>() / ps.len() as f64;
        let head = &finite[..w];
        let tail = &finite[finite.len() - w..];
        o.start = Some((mean(head), head[0].step, head[w - 1].step));
        o.end = Some((mean(tail), tail[0].step, tail[w - 1].step));
        o.min_train = finite.iter().map(|p| (p.loss, p.step)).min_by(|a, b| a.0.total_cmp(&b.0));
        if let (Some((s, ..)), Some((e, ..))) = (o.start, o.end) {
            // With a single window's worth of steps, start and end are the same steps.
            if finite.len() >= 2 * w && finite.len() >= 2 {
                o.flat = ((e - s) / s.abs().max(1e-12)).abs() < FLAT_REL;
                o.rose = e > s * (1.0 + FLAT_REL);
            }
        }
    }
    let evals: Vec<&EvalPoint> = run.evals.iter().filter(|e| e.loss.is_finite()).collect();
    o.val_first = evals.first().map(|e| (e.loss, e.step));
    o.val_last = evals.last().map(|e| (e.loss, e.step));
    o.val_best = evals.iter().map(|e| (e.loss, e.step)).min_by(|a, b| a.0.total_cmp(&b.0));
    if let (Some((best, bs)), Some((last, ls))) = (o.val_best, o.val_last) {
        o.overfit = ls > bs && last > best * (1.0 + OVERFIT_REL);
    }
    o.collapse_at = run.evals.iter().find_map(|e| e.collapse.as_ref().filter(|c| c.collapsed).map(|c| (e.step, c.clone())));
    let tps: Vec<f64> = run.train.iter().filter_map(|p| p.tokens_per_s).filter(|x| x.is_finite()).collect();
    o.mean_tokens_per_s = (!tps.is_empty()).then(|| tps.iter().sum::<f64>() / tps.len() as f64);
    o.max_grad_norm = run.train.iter().filter_map(|p| p.grad_norm.filter(|g| g.is_finite()).map(|g| (g, p.step))).max_by(|a, b| a.0.total_cmp(&b.0));
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(losses: &[f64], vals: &[(u64, f64)]) -> TrainingRun {
        TrainingRun {
            name: "lora-r8".into(),
            dir: PathBuf::new(),
            summary: None,
            train: losses.iter().enumerate().map(|(i, &l)| TrainPoint { step: i as u64 + 1, loss: l, lr: None, grad_norm: Some(1.0 + i as f64), tokens_per_s: Some(100.0) }).collect(),
            evals: vals.iter().map(|&(s, l)| EvalPoint { step: s, loss: l, token_accuracy: None, collapse: None, samples: vec![] }).collect(),
            probes: vec![],
            config: None,
        }
    }

    #[test]
    fn curves_are_read_as_convergence_overfitting_or_collapse() {
        let r = run(&[3.0, 2.8, 2.5, 2.0, 1.8, 1.5, 1.2, 1.0, 0.9, 0.8], &[(5, 2.0), (10, 2.2)]);
        let o = observe(&r);
        assert!(!o.flat && !o.rose && o.overfit, "{o:?}");
        assert_eq!(o.val_best, Some((2.0, 5)));
        assert_eq!(o.max_grad_norm, Some((10.0, 10)));
        assert_eq!(r.sweep_rank(), Some(("lora".into(), 8)));
        let flat = observe(&run(&[2.0, 2.001, 2.0, 1.999, 2.0, 2.0], &[]));
        assert!(flat.flat && !flat.rose);
        let nan = observe(&run(&[2.0, 1.9, f64::NAN], &[]));
        assert_eq!(nan.non_finite_at, Some(3));
    }

    #[test]
    fn a_probe_summary_is_computed_from_the_logged_lines_when_the_summary_has_none() {
        let mut r = run(&[2.0, 1.5], &[]);
        assert_eq!(r.probe_summary(), None);
        r.probes = [(0, 0.25), (10, 0.5), (20, 0.75), (30, 0.75), (40, f64::NAN)].iter().map(|&(step, acc)| ProbePoint { step, acc, acc_norm: None, n: Some(8) }).collect();
        let p = r.probe_summary().expect("probe");
        assert_eq!((p.initial_acc, p.best_acc, p.best_step, p.n), (Some(0.25), Some(0.75), Some(20), Some(8)));
        assert!(p.final_acc.is_some_and(f64::is_nan) && p.restored_step.is_none());
    }
}
