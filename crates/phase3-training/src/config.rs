//! The typed configuration of a training run, read from YAML (`config/lora.yaml`,
//! `config/qlora.yaml`, `config/full.yaml`), with a `sweep` section that expands one file into
//! several runs. Every field has a default; unknown fields are errors so typos do not pass
//! silently. The hash of the resolved config guards `--resume`.
//!
//! Keys added after checkpoints were first written (`data.probe`, `data.system_prompt`,
//! `train.early_stopping_metric`, `train.early_stopping_min_delta`, `train.load_best_at_end`)
//! are left out of the hash while they hold their defaults, so a run configured before they
//! existed still resumes; set to anything else, they change the hash like every other key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Fine-tuning method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Low-rank adapters on a frozen full-precision base.
    Lora,
    /// Low-rank adapters on a frozen NF4 base.
    Qlora,
    /// Every weight trains.
    Full,
}

/// Where the data comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Chat JSONL (`{"messages": [...]}`) for training.
    pub train: PathBuf,
    /// Chat JSONL for validation.
    pub validation: PathBuf,
    /// Longest training sequence in tokens (longer examples are cut, keeping the EOS).
    pub max_seq_len: usize,
    /// Use at most this many training examples (quick runs).
    pub max_train_examples: Option<usize>,
    /// Use at most this many validation examples.
    pub max_eval_examples: Option<usize>,
    /// Pack several examples into each row of `max_seq_len` tokens (no cross-example attention).
    pub packing: bool,
    /// The probe: held-out paraphrased multiple-choice questions on the taught facts (MCQ
    /// JSONL as phase 1 writes `data/curated/probe.jsonl`), scored at step 0 and at every
    /// evaluation. `None`: no probe (early stopping then watches the validation loss).
    pub probe: Option<PathBuf>,
    /// The study's system prompt, rendered before each probe question exactly as it precedes
    /// the training pairs (which carry it in their own `messages`). Set from the study's
    /// top-level `system_prompt:` by [`crate::study::study_runs`].
    pub system_prompt: Option<String>,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig { train: "data/curated/train.jsonl".into(), validation: "data/curated/validation.jsonl".into(), max_seq_len: 256, max_train_examples: None, max_eval_examples: Some(200), packing: false, probe: None, system_prompt: None }
    }
}

/// LoRA hyper-parameters (PEFT's names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoraSection {
    /// Rank.
    pub r: usize,
    /// Scaling numerator.
    pub lora_alpha: f64,
    /// Adapter input dropout.
    pub lora_dropout: f64,
    /// Module names or ["all-linear"].
    pub target_modules: Vec<String>,
    /// alpha / sqrt(r) scaling.
    pub use_rslora: bool,
}

impl Default for LoraSection {
    fn default() -> Self {
        LoraSection { r: 16, lora_alpha: 32.0, lora_dropout: 0.05, target_modules: ["q_proj", "k_proj", "v_proj", "o_proj"].map(String::from).to_vec(), use_rslora: false }
    }
}

impl LoraSection {
    /// As f1-core's PEFT-compatible config.
    pub fn to_lora_config(&self) -> f1_core::lora::LoraConfig {
        use f1_core::lora::TargetModules;
        let targets = if self.target_modules.len() == 1 && self.target_modules[0] == "all-linear" { TargetModules::Shorthand("all-linear".into()) } else { TargetModules::List(self.target_modules.clone()) };
        f1_core::lora::LoraConfig { r: self.r, lora_alpha: self.lora_alpha, lora_dropout: self.lora_dropout, target_modules: targets, use_rslora: self.use_rslora, bias: "none".into() }
    }
}

/// Optimisation and loop settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    /// Passes over the training set.
    pub epochs: usize,
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Decoupled weight decay (not applied to norms and biases).
    pub weight_decay: f64,
    /// Share of optimizer steps spent warming up.
    pub warmup_ratio: f64,
    /// "cosine", "linear" or "constant".
    pub schedule: String,
    /// Gradient-norm clipping threshold (0 = off).
    pub max_grad_norm: f64,
    /// Seed of data order, dropout and initialisation.
    pub seed: u64,
    /// Evaluate every N optimizer steps (0 = only at the end).
    pub eval_every: usize,
    /// Checkpoint every N optimizer steps (0 = only at the end).
    pub save_every: usize,
    /// Stop after this many evaluations without a better value of `early_stopping_metric`
    /// (0 = never).
    pub early_stopping_patience: usize,
    /// What early stopping watches: "probe" (probe accuracy, higher is better; falls back to
    /// "val_loss" with a warning when `data.probe` is not set) or "val_loss" (lower is better).
    pub early_stopping_metric: String,
    /// The least change that counts as an improvement of the watched metric. `None`: the
    /// metric's default, 0 for the probe (strictly better accuracy) and 1e-4 for the
    /// validation loss.
    pub early_stopping_min_delta: Option<f64>,
    /// With the probe metric, write the weights of the evaluation with the best probe accuracy
    /// (the earliest among equals) instead of the last ones. Ignored for "val_loss".
    pub load_best_at_end: bool,
    /// Stop after this many optimizer steps (overrides epochs).
    pub max_steps: Option<usize>,
    /// Validation prompts to sample at each evaluation.
    pub sample_prompts: usize,
    /// Stop the run when the samples show mode collapse.
    pub stop_on_collapse: bool,
    /// Device: auto, cpu, cuda, cuda:N.
    pub device: String,
    /// Dtype: auto, f32, bf16, f16.
    pub dtype: String,
}

impl Default for TrainSection {
    fn default() -> Self {
        TrainSection { epochs: 3, batch_size: 4, grad_accum: 4, lr: 2e-4, weight_decay: 0.0, warmup_ratio: 0.03, schedule: "cosine".into(), max_grad_norm: 1.0, seed: 42, eval_every: 50, save_every: 50, early_stopping_patience: 3, early_stopping_metric: EARLY_STOPPING_METRICS[0].into(), early_stopping_min_delta: None, load_best_at_end: true, max_steps: None, sample_prompts: 3, stop_on_collapse: false, device: "auto".into(), dtype: "auto".into() }
    }
}

/// The values of `train.early_stopping_metric`; the first is the default.
pub const EARLY_STOPPING_METRICS: [&str; 2] = ["probe", "val_loss"];

/// What early stopping watches once the config is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopMetric {
    /// Probe accuracy, higher is better.
    Probe,
    /// Validation loss, lower is better.
    ValLoss,
}

impl StopMetric {
    /// The metric's name as configs and `summary.json` spell it.
    pub fn name(self) -> &'static str {
        match self {
            StopMetric::Probe => "probe",
            StopMetric::ValLoss => "val_loss",
        }
    }
}

/// One training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Run name (output sub-directory, report label).
    pub name: String,
    /// lora, qlora or full.
    pub method: Method,
    /// Base model: .gguf, Hugging Face directory, or hub id.
    pub model: String,
    /// Where adapters / weights, checkpoints and metrics go.
    pub output_dir: PathBuf,
    /// Data.
    #[serde(default)]
    pub data: DataConfig,
    /// LoRA settings (ignored by full fine-tuning).
    #[serde(default)]
    pub lora: LoraSection,
    /// Loop settings.
    #[serde(default)]
    pub train: TrainSection,
    /// Optional sweep: dotted field path -> values, expanded by [`expand`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sweep: BTreeMap<String, Vec<serde_yaml::Value>>,
}

impl TrainConfig {
    /// Read a YAML file; a typo or a wrong type names the file and the field.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg: TrainConfig = serde_yaml::from_str(&text).map_err(|e| Error::Config { path: path.into(), reason: e.to_string() })?;
        cfg.validate().map_err(|reason| Error::Config { path: path.into(), reason })?;
        Ok(cfg)
    }

    /// Check values a user could get wrong.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let t = &self.train;
        if t.batch_size == 0 || t.grad_accum == 0 {
            return Err("train.batch_size and train.grad_accum must be at least 1".into());
        }
        if !(t.lr > 0.0 && t.lr < 1.0) {
            return Err(format!("train.lr {} is out of range (0, 1)", t.lr));
        }
        if !(0.0..1.0).contains(&t.warmup_ratio) {
            return Err(format!("train.warmup_ratio {} must be in [0, 1)", t.warmup_ratio));
        }
        f1_core::optim::Schedule::parse(&t.schedule).map_err(|e| format!("train.schedule: {e}"))?;
        if !EARLY_STOPPING_METRICS.contains(&t.early_stopping_metric.as_str()) {
            return Err(format!("train.early_stopping_metric `{}` is not one of {}", t.early_stopping_metric, EARLY_STOPPING_METRICS.map(|m| format!("`{m}`")).join(", ")));
        }
        if let Some(d) = t.early_stopping_min_delta.filter(|d| !(d.is_finite() && *d >= 0.0)) {
            return Err(format!("train.early_stopping_min_delta {d} must be a finite number >= 0"));
        }
        if self.data.max_seq_len < 8 {
            return Err("data.max_seq_len must be at least 8".into());
        }
        if self.method != Method::Full {
            self.lora.to_lora_config().validate().map_err(|e| format!("lora: {e}"))?;
        }
        Ok(())
    }

    /// What early stopping watches: the configured metric, except that "probe" without a
    /// probe file is "val_loss" (validated configs only).
    pub fn stop_metric(&self) -> StopMetric {
        match (self.train.early_stopping_metric.as_str(), &self.data.probe) {
            ("probe", Some(_)) => StopMetric::Probe,
            _ => StopMetric::ValLoss,
        }
    }

    /// sha256 of the resolved config without the fields that do not change the run's
    /// trajectory (output dir, save cadence, max_steps), hex. Keys added later are left out
    /// while at their defaults (see the module doc).
    pub fn hash(&self) -> String {
        let mut c = self.clone();
        c.output_dir = PathBuf::new();
        c.train.save_every = 0;
        c.train.max_steps = None;
        c.sweep.clear();
        let mut value = serde_yaml::to_value(&c).unwrap_or(serde_yaml::Value::Null);
        let defaults = TrainConfig { data: DataConfig::default(), train: TrainSection::default(), ..c.clone() };
        let defaults = serde_yaml::to_value(&defaults).unwrap_or(serde_yaml::Value::Null);
        for (section, key) in [("data", "probe"), ("data", "system_prompt"), ("train", "early_stopping_metric"), ("train", "early_stopping_min_delta"), ("train", "load_best_at_end")] {
            let default = defaults.get(section).and_then(|s| s.get(key)).cloned();
            if let Some(serde_yaml::Value::Mapping(m)) = value.get_mut(section) {
                if m.get(key).cloned() == default {
                    // shift_remove keeps the other keys in order (remove would swap the last in).
                    m.shift_remove(key);
                }
            }
        }
        let yaml = serde_yaml::to_string(&value).unwrap_or_default();
        f1_study::hash::sha256_hex(yaml.as_bytes())
    }

    /// Resolve relative paths against `root`.
    pub fn resolve_paths(&mut self, root: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = root.join(&*p);
            }
        };
        fix(&mut self.output_dir);
        fix(&mut self.data.train);
        fix(&mut self.data.validation);
        if let Some(p) = self.data.probe.as_mut() {
            fix(p);
        }
        let model = PathBuf::from(&self.model);
        if model.is_relative() && root.join(&model).exists() {
            self.model = root.join(model).to_string_lossy().into_owned();
        }
    }
}

/// Expand a config with a `sweep` section into one config per combination, each named
/// `<name>-<field>=<value>...` with its own output directory.
pub fn expand(cfg: &TrainConfig) -> Result<Vec<TrainConfig>> {
    if cfg.sweep.is_empty() {
        return Ok(vec![cfg.clone()]);
    }
    if let Some((key, _)) = cfg.sweep.iter().find(|(_, values)| values.is_empty()) {
        return Err(Error::Invalid(format!("sweep key `{key}` lists no values; give it at least one, or remove it")));
    }
    let mut out = vec![];
    let keys: Vec<&String> = cfg.sweep.keys().collect();
    let mut idx = vec![0usize; keys.len()];
    loop {
        let mut value = serde_yaml::to_value(cfg).map_err(|e| Error::Invalid(e.to_string()))?;
        let mut suffix = String::new();
        for (k, &i) in keys.iter().zip(&idx) {
            let v = cfg.sweep[*k][i].clone();
            set_path(&mut value, k, v.clone()).map_err(Error::Invalid)?;
            suffix.push_str(&format!("-{}{}", k.rsplit('.').next().unwrap_or(k), serde_yaml::to_string(&v).unwrap_or_default().trim()));
        }
        let mut run: TrainConfig = serde_yaml::from_value(value).map_err(|e| Error::Invalid(format!("sweep produced an invalid config: {e}")))?;
        run.sweep.clear();
        run.name = format!("{}{suffix}", cfg.name);
        run.output_dir = cfg.output_dir.join(&run.name);
        run.validate().map_err(|e| Error::Invalid(format!("sweep run {}: {e}", run.name)))?;
        out.push(run);
        // Odometer increment over the value lists.
        let mut k = keys.len();
        loop {
            if k == 0 {
                return Ok(out);
            }
            k -= 1;
            idx[k] += 1;
            if idx[k] < cfg.sweep[keys[k]].len() {
                break;
            }
            idx[k] = 0;
        }
    }
}

fn set_path(value: &mut serde_yaml::Value, path: &str, new: serde_yaml::Value) -> std::result::Result<(), String> {
    let mut cur = value;
    for part in path.split('.') {
        cur = cur.get_mut(part).ok_or_else(|| format!("sweep key `{path}`: no field `{part}`"))?;
    }
    *cur = new;
    Ok(())
}
