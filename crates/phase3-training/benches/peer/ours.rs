//! Our side of every case, through the phase code paths themselves: a training step is a step
//! of `phase3_training::train` (each repetition is a fresh two-step run whose first step is the
//! warm-up, timed from the loop's own `metrics.jsonl`), MCQ scoring is phase 4's
//! `score_loglikelihood` on a `LocalBackend`, decoding is `f1_core::generate_ids`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use f1_core::generate::{generate_ids, GenerationConfig};
use f1_core::{load_model, ModelOptions};
use phase3_training::{train, TrainConfig};
use phase4_evaluation::mcq::{score_loglikelihood, McqItem};
use phase4_evaluation::LocalBackend;

use super::Sample;

/// One of our cases, set up and ready to repeat.
pub enum Ours {
    /// A training run configuration (two steps per repetition).
    Train {
        cfg: TrainConfig,
        tokens_per_step: usize,
    },
    /// The loaded model behind phase 4's backend, and the questions.
    Mcq {
        backend: Box<LocalBackend>,
        items: Vec<McqItem>,
        chunk: usize,
        tokens: f64,
    },
    /// The loaded model and the batch of identical prompts.
    Decode {
        loaded: Box<f1_core::LoadedModel>,
        prompts: Vec<Vec<u32>>,
        cfg: GenerationConfig,
    },
}

impl Ours {
    /// Load the model for an MCQ case.
    pub fn mcq(model: &str, items: Vec<McqItem>, chunk: usize, tokens: f64) -> Result<Self> {
        let loaded = load_model(model, &ModelOptions::cpu(), None)?;
        Ok(Ours::Mcq {
            backend: Box::new(LocalBackend::new(loaded, "bench")),
            items,
            chunk,
            tokens,
        })
    }

    /// Load the model for a decode case.
    pub fn decode(model: &str, prompt: Vec<u32>, batch: usize, new_tokens: usize) -> Result<Self> {
        let loaded = load_model(model, &ModelOptions::cpu(), None)?;
        Ok(Ours::Decode {
            loaded: Box::new(loaded),
            prompts: vec![prompt; batch],
            cfg: GenerationConfig::greedy(new_tokens),
        })
    }

    /// Whether a warm-up repetition is needed (a training repetition carries its own).
    pub fn needs_warm_up(&self) -> bool {
        !matches!(self, Ours::Train { .. })
    }

    /// One timed repetition.
    pub fn run(&mut self) -> Result<Sample> {
        match self {
            Ours::Train {
                cfg,
                tokens_per_step,
            } => train_step(cfg, *tokens_per_step),
            Ours::Mcq {
                backend,
                items,
                chunk,
                tokens,
            } => {
                let t = Instant::now();
                score_loglikelihood(backend.as_mut(), items, *chunk)?;
                Ok(Sample {
                    seconds: t.elapsed().as_secs_f64(),
                    work: items.len() as f64,
                    ttft_s: None,
                    tokens: Some(*tokens),
                })
            }
            Ours::Decode {
                loaded,
                prompts,
                cfg,
            } => {
                let t = Instant::now();
                let out = generate_ids(&loaded.model, &loaded.tokenizer, prompts, cfg, |_, _| {})?;
                let seconds = t.elapsed().as_secs_f64();
                let work: usize = out.iter().map(|o| o.completion_tokens).sum();
                Ok(Sample {
                    seconds,
                    work: work as f64,
                    ttft_s: out.first().map(|o| o.time_to_first_token.as_secs_f64()),
                    tokens: None,
                })
            }
        }
    }
}

/// Run `cfg` (two optimizer steps) and return its second step: seconds from the loop's own
/// tokens/s, recorded in `metrics.jsonl`.
fn train_step(cfg: &TrainConfig, tokens_per_step: usize) -> Result<Sample> {
    let dir: &PathBuf = &cfg.output_dir;
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let summary = train(cfg, false)?;
    if summary.steps != 2 || summary.tokens_seen as usize != 2 * tokens_per_step {
        bail!(
            "the training run did {} steps over {} tokens, expected 2 over {}: the batch the peer gets would differ from ours",
            summary.steps,
            summary.tokens_seen,
            2 * tokens_per_step
        );
    }
    let path = dir.join("metrics.jsonl");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let tps = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["step"].as_u64() == Some(2) && v["tokens_per_s"].is_number())
        .and_then(|v| v["tokens_per_s"].as_f64())
        .with_context(|| format!("{} has no tokens_per_s for step 2", path.display()))?;
    Ok(Sample {
        seconds: tokens_per_step as f64 / tps,
        work: tokens_per_step as f64,
        ttft_s: None,
        tokens: Some(tokens_per_step as f64),
    })
}
