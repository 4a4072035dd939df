//! Phase 3: LoRA, QLoRA and full-parameter fine-tuning.
//!
//! The training loop is written out here, top to bottom, in the torchtune-recipe style:
//! load the base through `f1-core`, decide what trains (adapters on a frozen — optionally NF4 —
//! base, or every weight), tokenize with the model's own chat template and mask the prompt,
//! then accumulate gradients over micro-batches, clip, step AdamW on a warmup+decay schedule,
//! evaluate, watch for mode collapse, checkpoint atomically, and write the artifacts (a PEFT
//! adapter or full weights) with metrics and a summary beside them. `f1-core` supplies the
//! components (model, LoRA, NF4, loss, optimizer); nothing here builds layers or reads weights.
//!
//! Each evaluation measures the validation loss and, when the run has a probe
//! ([`probe`]: held-out paraphrased questions on the taught facts, scored by the evaluation
//! harness), the probe accuracy, which is also measured once before the first step (the base
//! model's). Early stopping watches one of the two (`train.early_stopping_metric`, the probe
//! by default) and stops after `early_stopping_patience` evaluations without improvement;
//! with the probe, `load_best_at_end` writes the weights of the best probe evaluation (kept
//! as a copy on the training device, and in every checkpoint, so a resumed run restores the
//! same ones) instead of the last.

pub mod checkpoint;
pub mod collapse;
pub mod config;
pub mod data;
pub mod error;
pub mod probe;
pub mod study;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use f1_core::generate::{generate, GenerationConfig};
use f1_core::loss::{masked_lm_loss, Layout, IGNORE};
use f1_core::optim::{AdamW, AdamWConfig, Schedule};
use f1_core::{load_model, lora, LoadedModel, ModelOptions};
use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

pub use config::{Method, StopMetric, TrainConfig};
pub use error::{Error, Result};

use checkpoint::LoopState;
use collapse::CollapseReport;
use data::Example;
use probe::Probe;

/// The phase's name as the study's run manifest and logs spell it.
pub const PHASE: &str = "phase3-training";

/// One evaluation on the validation split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalResult {
    /// Mean token cross-entropy on the reference replies.
    pub loss: f64,
    /// exp(loss).
    pub perplexity: f64,
    /// Share of reply tokens the model ranks first.
    pub token_accuracy: f64,
    /// (prompt, greedy generation) on the first validation prompts.
    pub samples: Vec<(String, String)>,
    /// Mode-collapse signals of those samples.
    pub collapse: CollapseReport,
}

/// What the probe measured over a run (`summary.json`'s `probe`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeSummary {
    /// Accuracy of the base model, before the first step (`None` after resuming a checkpoint
    /// written before the probe existed).
    pub initial_acc: Option<f64>,
    /// Best accuracy of an evaluation after training started.
    pub best_acc: Option<f64>,
    /// Step of `best_acc` (the earliest among equals).
    pub best_step: Option<usize>,
    /// Accuracy at the last evaluation, before any restoring.
    pub final_acc: Option<f64>,
    /// The step whose weights the artifacts hold when `load_best_at_end` chose them (the last
    /// step when it was the best); `None` when the last weights were written as they were.
    pub restored_step: Option<usize>,
    /// Questions in the probe.
    pub n: usize,
}

/// What a run did, written to `summary.json` beside its artifacts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainSummary {
    /// Run name.
    pub name: String,
    /// lora, qlora or full.
    pub method: Method,
    /// Parameters that received gradients.
    pub trainable_params: usize,
    /// Parameters of the base model.
    pub total_params: usize,
    /// trainable / total.
    pub trainable_share: f64,
    /// Bytes of the frozen block projections before quantization (QLoRA) or as stored.
    pub base_weight_bytes: usize,
    /// Bytes of the same weights after NF4 quantization (QLoRA only).
    pub base_weight_bytes_nf4: Option<usize>,
    /// Peak resident memory of the process (MiB).
    pub peak_rss_mib: f64,
    /// Peak GPU memory of the process during the run (MiB), as the NVIDIA driver reports it;
    /// `None` on CPU or without the driver (see `f1_core::CudaMemoryProbe`).
    pub cuda_peak_mib: Option<f64>,
    /// Seconds spent in training steps.
    pub train_seconds: f64,
    /// Optimizer steps done.
    pub steps: usize,
    /// Training tokens processed.
    pub tokens_seen: u64,
    /// Mean loss of the last optimizer step.
    pub final_train_loss: Option<f64>,
    /// Last validation result.
    pub final_eval: Option<EvalResult>,
    /// Best validation loss seen.
    pub best_val_loss: Option<f64>,
    /// Whether early stopping (or collapse) ended the run before its last step.
    pub stopped_early: bool,
    /// What early stopping watched: `probe` or `val_loss` (after the fallback to `val_loss`
    /// of a run without a probe).
    pub early_stopping_metric: StopMetric,
    /// The probe's accuracies, when the run has a probe.
    pub probe: Option<ProbeSummary>,
    /// Whether any evaluation flagged mode collapse.
    pub collapse_flagged: bool,
    /// Adapter directory (lora, qlora) or model directory (full).
    pub artifacts: PathBuf,
    /// The resumed checkpoint, if any.
    pub resumed_from: Option<PathBuf>,
    /// The run key ([`run_key`]): a run asked to resume whose `summary.json` holds its own
    /// key and whose artifacts exist is finished, and is reported, not retrained. Empty in
    /// summaries written before the key existed.
    #[serde(default)]
    pub run_key: String,
}

/// What to do with what a run's output folder already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Train from step 0. Checkpoints already there are set aside first
    /// (`checkpoints.stale`), so the new run never keeps or resumes them.
    No,
    /// A finished run with this run key is reported as it is; an interrupted one continues
    /// from its newest checkpoint. A checkpoint written under another run key is an error
    /// naming both keys and the fix (`phase3-training train --resume`).
    Continue,
    /// As [`Resume::Continue`], but a checkpoint written under another run key (the config,
    /// the data or the model changed) is set aside (`checkpoints.stale`) and the run starts
    /// over: what `phase3-training run` (and so `cargo xtask run-all`) does, because the study
    /// decides what the run is.
    ContinueOrRestart,
}

/// The identity of a run's result: the config's hash ([`TrainConfig::hash`]), `max_steps`
/// (it sets the schedule's length), and the contents of the training, validation and probe
/// files and of the base model (a local file or folder; a hub id as written). Checkpoints and
/// `summary.json` carry it, so nothing trained under another key is resumed or reused.
pub fn run_key(cfg: &TrainConfig) -> Result<String> {
    let mut key = f1_study::hash::Fields::new();
    key.field(b"run-key-v1").field(cfg.hash().as_bytes()).field(format!("{:?}", cfg.train.max_steps).as_bytes());
    let mut files = vec![&cfg.data.train, &cfg.data.validation];
    files.extend(cfg.data.probe.as_ref());
    for f in files {
        key.field(f1_study::hash::sha256_file(f)?.as_bytes());
    }
    let model = Path::new(&cfg.model);
    let model_hash = if model.exists() { f1_study::hash::sha256_tree(model)? } else { cfg.model.clone() };
    key.field(model_hash.as_bytes());
    Ok(key.hex())
}

/// The summary of a finished run under `key` in `out_dir`, if there is one with its artifacts.
fn finished(out_dir: &Path, key: &str) -> Option<TrainSummary> {
    let text = std::fs::read_to_string(out_dir.join("summary.json")).ok()?;
    let s: TrainSummary = serde_json::from_str(&text).ok()?;
    (s.run_key == key && s.artifacts.exists()).then_some(s)
}

/// Move `ck_dir` aside to `checkpoints.stale` (replacing an older one), so a fresh run neither
/// resumes nor prunes checkpoints it did not write, and nothing is deleted unasked twice over.
fn set_aside(ck_dir: &Path, why: &str) -> Result<()> {
    if checkpoint::list(ck_dir)?.is_empty() {
        return Ok(());
    }
    let stale = ck_dir.with_file_name("checkpoints.stale");
    if stale.exists() {
        std::fs::remove_dir_all(&stale).map_err(|e| Error::io(&stale, e))?;
    }
    std::fs::rename(ck_dir, &stale).map_err(|e| Error::io(ck_dir, e))?;
    tracing::warn!(from = %ck_dir.display(), to = %stale.display(), "{why}: the old checkpoints were set aside and the run starts over");
    Ok(())
}

/// Peak resident set size of this process in MiB (0 where unknown).
pub fn peak_rss_mib() -> f64 {
    f1_core::device::peak_rss_mib().unwrap_or(0.0)
}

/// Labelled positions that enter the loss (labels after the first position).
fn loss_tokens(ex: &Example) -> i64 {
    ex.labels.iter().skip(1).filter(|&&l| l != IGNORE).count() as i64
}

/// Loss, perplexity and token accuracy on `examples`, plus greedy samples of the first
/// `n_samples` prompts and their collapse signals.
pub fn evaluate(m: &mut LoadedModel, examples: &[Example], batch_size: usize, n_samples: usize) -> Result<EvalResult> {
    m.model.set_training(false);
    let _guard = tch::no_grad_guard();
    let pad = m.tokenizer.pad_id().unwrap_or(0) as i64;
    let device = m.model.device();
    let (mut sum, mut tokens, mut correct) = (0.0, 0i64, 0i64);
    let rows: Vec<Vec<usize>> = (0..examples.len()).map(|i| vec![i]).collect();
    for chunk in rows.chunks(batch_size.max(1)) {
        let b = data::collate(examples, chunk, pad, false);
        let (ids, mask, _, labels) = b.to_device(device);
        let parts = masked_lm_loss(&m.model, &ids, Layout::Padded(&mask), &labels);
        sum += parts.sum.double_value(&[]);
        tokens += parts.tokens;
        correct += parts.correct;
    }
    let loss = sum / tokens.max(1) as f64;
    let mut samples = vec![];
    for ex in examples.iter().take(n_samples) {
        let prompt = m.chat_template.render(&ex.prompt, true)?;
        let out = generate(&m.model, &m.tokenizer, &[prompt], &GenerationConfig::greedy(64), |_, _| {})?;
        let question = ex.prompt.last().map(|p| p.content.clone()).unwrap_or_default();
        samples.push((question, out[0].text.trim().to_string()));
    }
    let collapse = collapse::assess(&samples);
    Ok(EvalResult { loss, perplexity: loss.exp(), token_accuracy: correct as f64 / tokens.max(1) as f64, samples, collapse })
}

/// Copies of `vars` (detached, same device), e.g. the best evaluation's weights.
fn snapshot(vars: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    let _guard = tch::no_grad_guard();
    vars.iter().map(|(n, t)| (n.clone(), t.detach().copy())).collect()
}

/// Copy `src` (by name) into the variables `vars`, in place. `what` names the source in errors.
fn copy_into(vars: &[(String, Tensor)], src: &[(String, Tensor)], what: &Path) -> Result<()> {
    let by_name: std::collections::HashMap<&str, &Tensor> = src.iter().map(|(n, t)| (n.as_str(), t)).collect();
    for (name, var) in vars {
        let t = by_name.get(name.as_str()).ok_or_else(|| Error::Checkpoint { path: what.into(), reason: format!("has no weight `{name}`") })?;
        if t.size() != var.size() {
            return Err(Error::Checkpoint { path: what.into(), reason: format!("weight `{name}` has shape {:?}, the run's is {:?}", t.size(), var.size()) });
        }
        tch::no_grad(|| var.shallow_clone().copy_(t));
    }
    Ok(())
}

/// `src` (read from `what`) in the order, device and dtype of the variables `vars`.
fn like_vars(vars: &[(String, Tensor)], src: &[(String, Tensor)], what: &Path) -> Result<Vec<(String, Tensor)>> {
    let by_name: std::collections::HashMap<&str, &Tensor> = src.iter().map(|(n, t)| (n.as_str(), t)).collect();
    vars.iter()
        .map(|(name, var)| {
            let t = by_name.get(name.as_str()).ok_or_else(|| Error::Checkpoint { path: what.into(), reason: format!("has no best weight `{name}`") })?;
            Ok((name.clone(), t.to_device(var.device()).to_kind(var.kind())))
        })
        .collect()
}

/// Append one JSON line to the metrics file.
fn log_metrics(file: &mut std::fs::File, value: serde_json::Value) -> Result<()> {
    writeln!(file, "{value}").map_err(|e| Error::io("metrics.jsonl", e))
}

/// Keep the metrics lines of steps up to `step` (after a resume, later lines are replayed).
fn truncate_metrics(path: &Path, step: usize) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let kept: Vec<&str> = text.lines().filter(|l| serde_json::from_str::<serde_json::Value>(l).ok().and_then(|v| v["step"].as_u64()).is_some_and(|s| s as usize <= step)).collect();
    Ok(f1_study::fs::write_atomic(path, kept.iter().map(|l| format!("{l}\n")).collect::<String>().as_bytes())?)
}

/// Run one training configuration to the end (or to `max_steps`), resuming from the newest
/// checkpoint in its output directory when `resume` is set ([`Resume::Continue`], else
/// [`Resume::No`]).
pub fn train(cfg: &TrainConfig, resume: bool) -> Result<TrainSummary> {
    train_until(cfg, resume, None)
}

/// Run one training configuration, deciding from `resume` what to do with what its output
/// folder already holds.
pub fn train_with(cfg: &TrainConfig, resume: Resume) -> Result<TrainSummary> {
    run(cfg, resume, None)
}

/// [`train`], but stop right after optimizer step `interrupt_after` as if the process had been
/// killed there: no final evaluation, no artifacts, only the checkpoints the cadence wrote.
/// Used to test that `--resume` continues exactly.
pub fn train_until(cfg: &TrainConfig, resume: bool, interrupt_after: Option<usize>) -> Result<TrainSummary> {
    run(cfg, if resume { Resume::Continue } else { Resume::No }, interrupt_after)
}

fn run(cfg: &TrainConfig, resume: Resume, interrupt_after: Option<usize>) -> Result<TrainSummary> {
    let t = &cfg.train;
    let out_dir = cfg.output_dir.clone();
    std::fs::create_dir_all(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
    let ck_dir = out_dir.join("checkpoints");
    let key = run_key(cfg)?;
    if resume != Resume::No {
        if let Some(done) = finished(&out_dir, &key) {
            tracing::info!(run = %cfg.name, artifacts = %done.artifacts.display(), "finished before with the same config, data and model: nothing to train");
            return Ok(done);
        }
    }
    f1_study::fs::write_atomic(&out_dir.join("resolved_config.yaml"), serde_yaml::to_string(cfg).unwrap_or_default().as_bytes())?;

    // 1. The model, and what trains.
    let opts = ModelOptions::parse(&t.device, &t.dtype)?;
    let cuda = f1_core::CudaMemoryProbe::start(opts.device);
    tch::manual_seed(t.seed as i64);
    let mut m = load_model(&cfg.model, &opts, None)?;
    let total_params = m.model.config().num_parameters();
    let base_weight_bytes: usize = m.model.linears_mut().iter().map(|(_, l)| l.weight.numel() * l.weight.kind().elt_size_in_bytes()).sum();
    let mut base_weight_bytes_nf4 = None;
    let lora_vs = nn::VarStore::new(opts.device);
    let lora_cfg = cfg.lora.to_lora_config();
    let trainable: Vec<(String, Tensor)> = match cfg.method {
        Method::Full => m.vs.variables().into_iter().collect(),
        Method::Lora | Method::Qlora => {
            m.vs.freeze();
            if cfg.method == Method::Qlora {
                let (before, after) = lora::quantize_base(&mut m.model);
                tracing::info!(before_mib = before as f64 / 1048576.0, after_mib = after as f64 / 1048576.0, "base projections quantized to NF4");
                base_weight_bytes_nf4 = Some(after);
            }
            let adapted = lora::attach(&mut m.model, &lora_vs, &lora_cfg)?;
            tracing::info!(modules = adapted.len(), r = lora_cfg.r, "LoRA attached");
            lora_vs.variables().into_iter().collect()
        }
    };
    let trainable_params: usize = trainable.iter().map(|(_, t)| t.numel()).sum();
    tracing::info!(trainable_params, total_params, share = trainable_params as f64 / total_params as f64, "parameters");

    // 2. Data, and the checks that stop a wrong run before it starts.
    let train_convs = data::read_chat_jsonl(&cfg.data.train, cfg.data.max_train_examples)?;
    let train_set = data::encode_all(&m, &train_convs, cfg.data.max_seq_len, &cfg.data.train)?;
    let val_convs = data::read_chat_jsonl(&cfg.data.validation, cfg.data.max_eval_examples)?;
    let val_set = data::encode_all(&m, &val_convs, cfg.data.max_seq_len, &cfg.data.validation)?;
    data::preflight(&m, &train_set, 3)?;
    data::preflight(&m, &val_set, 0)?;
    let probe = cfg.data.probe.as_deref().map(|p| Probe::load(p, &m, cfg.data.system_prompt.as_deref())).transpose()?;
    let metric = cfg.stop_metric();
    if t.early_stopping_metric == "probe" && probe.is_none() {
        tracing::warn!("train.early_stopping_metric is `probe` but data.probe is not set: early stopping watches the validation loss");
    }
    // The best probe evaluation's weights are kept only when they will be written.
    let keep_best = metric == StopMetric::Probe && t.load_best_at_end;
    let min_delta = |m: StopMetric| match (t.early_stopping_min_delta, m == metric) {
        (Some(d), true) => d,
        _ if m == StopMetric::Probe => 0.0,
        _ => 1e-4,
    };

    // 3. Schedule and optimizer.
    let packing = cfg.data.packing.then_some(cfg.data.max_seq_len);
    let micro_per_epoch = data::epoch_batches(&train_set, t.batch_size, t.seed, 0, packing).len();
    let steps_per_epoch = micro_per_epoch.div_ceil(t.grad_accum);
    let total_steps = t.max_steps.unwrap_or(t.epochs * steps_per_epoch).max(1);
    let warmup = (t.warmup_ratio * total_steps as f64).ceil() as usize;
    let schedule = Schedule::parse(&t.schedule)?;
    let mut opt = AdamW::new(trainable.iter().map(|(n, t)| (n.clone(), t.shallow_clone())), AdamWConfig { weight_decay: t.weight_decay, ..Default::default() });
    let mut state = LoopState {
        step: 0,
        epoch: 0,
        batch_in_epoch: 0,
        config_hash: key.clone(),
        best_val_loss: None,
        evals_without_improvement: 0,
        initial_probe_acc: None,
        best_probe_acc: None,
        best_step: None,
        last_probe_acc: None,
        stopped_early: false,
        tokens_seen: 0,
        train_seconds: 0.0,
    };
    let mut best_weights: Option<Vec<(String, Tensor)>> = None;
    let mut resumed_from = None;
    let latest = match resume {
        Resume::No => {
            set_aside(&ck_dir, "training from step 0")?;
            None
        }
        Resume::Continue | Resume::ContinueOrRestart => match checkpoint::load_latest(&ck_dir, &key)? {
            checkpoint::Latest::None => {
                tracing::info!("no checkpoint in {}, starting fresh", ck_dir.display());
                None
            }
            checkpoint::Latest::Same(ck) => Some(ck),
            checkpoint::Latest::Other { path, key: other } if resume == Resume::Continue => {
                return Err(Error::Checkpoint { path, reason: format!("was written by a different config, data or model (run key {} vs this run's {}); use a new output_dir, or train without --resume to start over (the old checkpoints are then set aside in checkpoints.stale)", &other[..12.min(other.len())], &key[..12]) });
            }
            checkpoint::Latest::Other { .. } => {
                set_aside(&ck_dir, "the config, data or model changed since the last checkpoint")?;
                None
            }
        },
    };
    if let Some(ck) = latest {
        copy_into(&trainable, &ck.weights, &ck.path)?;
        opt.load_state(&ck.optimizer)?;
        if keep_best {
            best_weights = match (ck.state.best_step, &ck.best) {
                (None, _) => None,
                (Some(s), None) if s == ck.state.step => Some(snapshot(&trainable)),
                (Some(_), Some(best)) => Some(like_vars(&trainable, best, &ck.path)?),
                (Some(s), None) => return Err(Error::Checkpoint { path: ck.path.clone(), reason: format!("its best evaluation is step {s} but it holds no best.safetensors; drop --resume to start over") }),
            };
        }
        tracing::info!(step = ck.state.step, path = %ck.path.display(), "resumed");
        state = ck.state;
        resumed_from = Some(ck.path);
    }
    let metrics_path = out_dir.join("metrics.jsonl");
    if resumed_from.is_some() {
        truncate_metrics(&metrics_path, state.step)?;
    } else if metrics_path.exists() {
        std::fs::remove_file(&metrics_path).map_err(|e| Error::io(&metrics_path, e))?;
    }
    let mut metrics = std::fs::OpenOptions::new().create(true).append(true).open(&metrics_path).map_err(|e| Error::io(&metrics_path, e))?;

    // The base model's probe accuracy, the reference the run is measured against.
    if let (Some(p), 0) = (&probe, state.step) {
        let score = p.score(&mut m)?;
        tracing::info!(step = 0, probe_acc = score.acc, probe_acc_norm = score.acc_norm, n = score.n, "probe (base model)");
        log_metrics(&mut metrics, serde_json::json!({"step": 0, "probe_acc": score.acc, "probe_acc_norm": score.acc_norm, "probe_n": score.n}))?;
        state.initial_probe_acc = Some(score.acc);
    }

    // 4. The loop.
    let bar = indicatif::ProgressBar::new(total_steps as u64).with_position(state.step as u64);
    bar.set_style(indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} steps, {elapsed} elapsed, ETA {eta} {msg}").unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()));
    bar.set_prefix(cfg.name.clone());
    let pad = m.tokenizer.pad_id().unwrap_or(0) as i64;
    let device = opts.device;
    let mut final_train_loss = None;
    let mut final_eval: Option<EvalResult> = None;
    let mut collapse_flagged = false;
    let mut batches = data::epoch_batches(&train_set, t.batch_size, t.seed, state.epoch, packing);
    // A run that stopped early and is resumed stays stopped: it goes straight to its artifacts.
    while state.step < total_steps && !state.stopped_early {
        if state.batch_in_epoch >= batches.len() {
            state.epoch += 1;
            state.batch_in_epoch = 0;
            batches = data::epoch_batches(&train_set, t.batch_size, t.seed, state.epoch, packing);
        }
        let started = Instant::now();
        // Dropout's randomness depends only on the step, so a resumed run repeats it exactly.
        tch::manual_seed(t.seed as i64 + state.step as i64);
        m.model.set_training(true);
        let end = (state.batch_in_epoch + t.grad_accum).min(batches.len());
        let group = &batches[state.batch_in_epoch..end];
        // Normalise by the labelled tokens of the whole optimizer step, not per micro-batch.
        let step_tokens: i64 = group.iter().flatten().flatten().map(|&i| loss_tokens(&train_set[i])).sum::<i64>().max(1);
        let mut loss_sum = 0.0;
        let mut seen = 0;
        for rows in group {
            let b = data::collate(&train_set, rows, pad, cfg.data.packing);
            let (ids, mask, packed, labels) = b.to_device(device);
            let layout = match &packed {
                Some((seg, pos)) => Layout::Packed(seg, pos),
                None => Layout::Padded(&mask),
            };
            let parts = masked_lm_loss(&m.model, &ids, layout, &labels);
            (&parts.sum / step_tokens as f64).backward();
            loss_sum += parts.sum.double_value(&[]);
            seen += b.tokens;
        }
        let grad_norm = opt.clip_grad_norm(t.max_grad_norm);
        let lr = schedule.lr(t.lr, state.step, warmup, total_steps);
        opt.step(lr);
        opt.zero_grad();
        let secs = started.elapsed().as_secs_f64();
        state.step += 1;
        state.batch_in_epoch = end;
        state.tokens_seen += seen as u64;
        state.train_seconds += secs;
        let loss = loss_sum / step_tokens as f64;
        final_train_loss = Some(loss);
        let epoch_f = state.epoch as f64 + state.batch_in_epoch as f64 / batches.len() as f64;
        log_metrics(&mut metrics, serde_json::json!({"step": state.step, "epoch": epoch_f, "loss": loss, "lr": lr, "grad_norm": grad_norm, "tokens_per_s": seen as f64 / secs, "rss_mib": peak_rss_mib()}))?;
        bar.set_position(state.step as u64);
        bar.set_message(format!("loss {loss:.4}"));
        if !loss.is_finite() {
            return Err(Error::Invalid(format!("loss became {loss} at step {}: lower train.lr or check the data", state.step)));
        }

        let last = state.step == total_steps;
        if (t.eval_every > 0 && state.step.is_multiple_of(t.eval_every)) || last {
            let ev = evaluate(&mut m, &val_set, t.batch_size, t.sample_prompts)?;
            tracing::info!(step = state.step, val_loss = ev.loss, ppl = ev.perplexity, acc = ev.token_accuracy, collapsed = ev.collapse.collapsed, "eval");
            for (q, a) in &ev.samples {
                tracing::info!("sample: {q:?} -> {a:?}");
            }
            log_metrics(&mut metrics, serde_json::json!({"step": state.step, "eval_loss": ev.loss, "eval_perplexity": ev.perplexity, "eval_token_accuracy": ev.token_accuracy, "collapse": ev.collapse, "samples": ev.samples}))?;
            collapse_flagged |= ev.collapse.collapsed;
            let val_improved = state.best_val_loss.is_none_or(|b| ev.loss < b - min_delta(StopMetric::ValLoss));
            if val_improved {
                state.best_val_loss = Some(ev.loss);
            }
            let mut probe_improved = false;
            if let Some(p) = &probe {
                let score = p.score(&mut m)?;
                log_metrics(&mut metrics, serde_json::json!({"step": state.step, "probe_acc": score.acc, "probe_acc_norm": score.acc_norm, "probe_n": score.n}))?;
                state.last_probe_acc = Some(score.acc);
                probe_improved = state.best_probe_acc.is_none_or(|b| score.acc > b + min_delta(StopMetric::Probe));
                if probe_improved {
                    state.best_probe_acc = Some(score.acc);
                    state.best_step = Some(state.step);
                    if keep_best {
                        best_weights = Some(snapshot(&trainable));
                    }
                }
                tracing::info!(step = state.step, probe_acc = score.acc, probe_acc_norm = score.acc_norm, best = state.best_probe_acc, best_step = state.best_step, "probe");
            }
            let improved = match metric {
                StopMetric::Probe => probe_improved,
                StopMetric::ValLoss => val_improved,
            };
            state.evals_without_improvement = if improved { 0 } else { state.evals_without_improvement + 1 };
            let patience_out = t.early_stopping_patience > 0 && state.evals_without_improvement >= t.early_stopping_patience;
            let collapse_stop = t.stop_on_collapse && ev.collapse.collapsed;
            final_eval = Some(ev);
            if (patience_out || collapse_stop) && !last {
                tracing::warn!(step = state.step, metric = metric.name(), patience_out, collapse_stop, "stopping early");
                state.stopped_early = true;
            }
        }
        if (t.save_every > 0 && state.step.is_multiple_of(t.save_every)) || last || state.stopped_early {
            let opt_state = opt.state();
            // The best weights go beside the checkpoint's own unless they are the same.
            let best = best_weights.as_deref().filter(|_| state.best_step != Some(state.step));
            checkpoint::save(&ck_dir, &state, &trainable, &opt_state, best, 2)?;
        }
        if state.stopped_early {
            break;
        }
        if interrupt_after == Some(state.step) {
            bar.abandon();
            return Err(Error::Invalid(format!("interrupted after step {}", state.step)));
        }
    }
    bar.finish();

    // 5. Artifacts, from the best probe evaluation's weights when load_best_at_end asks.
    let mut restored_step = None;
    if let (Some(best), Some(step)) = (&best_weights, state.best_step) {
        if step != state.step {
            copy_into(&trainable, best, &ck_dir)?;
        }
        tracing::info!(restored_step = step, last_step = state.step, probe_acc = state.best_probe_acc, "writing the weights of the best probe evaluation");
        restored_step = Some(step);
    }
    m.model.set_training(false);
    let artifacts = match cfg.method {
        Method::Full => {
            let dir = out_dir.join("model");
            lora::save_merged(&dir, &mut m, Kind::Float)?;
            dir
        }
        Method::Lora | Method::Qlora => {
            let dir = out_dir.join("adapter");
            lora::save(&dir, &lora_vs, &lora_cfg, &cfg.model)?;
            dir
        }
    };
    let summary = TrainSummary {
        name: cfg.name.clone(),
        method: cfg.method,
        trainable_params,
        total_params,
        trainable_share: trainable_params as f64 / total_params as f64,
        base_weight_bytes,
        base_weight_bytes_nf4,
        peak_rss_mib: peak_rss_mib(),
        cuda_peak_mib: cuda.peak_mib(),
        train_seconds: state.train_seconds,
        steps: state.step,
        tokens_seen: state.tokens_seen,
        final_train_loss,
        final_eval,
        best_val_loss: state.best_val_loss,
        stopped_early: state.stopped_early,
        early_stopping_metric: metric,
        probe: probe.as_ref().map(|p| ProbeSummary { initial_acc: state.initial_probe_acc, best_acc: state.best_probe_acc, best_step: state.best_step, final_acc: state.last_probe_acc, restored_step, n: p.len() }),
        collapse_flagged,
        artifacts,
        resumed_from,
        run_key: key,
    };
    let json = serde_json::to_string_pretty(&summary).map_err(|e| Error::Invalid(e.to_string()))?;
    f1_study::fs::write_atomic(&out_dir.join("summary.json"), json.as_bytes())?;
    Ok(summary)
}
