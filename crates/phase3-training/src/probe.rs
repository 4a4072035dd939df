//! The probe: held-out, paraphrased multiple-choice questions on the taught facts (phase 1's
//! `data/curated/probe.jsonl`), scored during training to see what the run has taught so far
//! and to stop it when that no longer improves.
//!
//! Scoring is the evaluation harness's chat-format answer-text mode, called, not copied
//! (`phase4_evaluation::mcq::chat_request` and `backend::score_requests`): the question is the
//! user's turn after the study's system prompt, rendered with the model's chat template with
//! the assistant's turn opened, and each option text is scored as the start of the reply.
//! `acc` takes the option with the highest summed log-probability, `acc_norm` the highest per
//! character (lm-evaluation-harness's definitions, as the harness reports them).

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use f1_core::LoadedModel;
use phase4_evaluation::backend::score_requests;
use phase4_evaluation::mcq::{chat_request, read_mcq};
use phase4_evaluation::LlRequest;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Tokens per forward pass when scoring (the harness's `LocalBackend` default).
const MAX_BATCH_TOKENS: usize = 4096;

/// The probe's questions, rendered once for the model being trained.
pub struct Probe {
    path: PathBuf,
    requests: Vec<LlRequest>,
    answers: Vec<usize>,
}

/// One scoring of the probe.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProbeScore {
    /// Share of questions whose right option has the highest summed log-probability.
    pub acc: f64,
    /// The same with log-probabilities divided by the option's character count.
    pub acc_norm: f64,
    /// Questions scored.
    pub n: usize,
}

impl Probe {
    /// Read the probe file and render every question with `m`'s chat template after `system`.
    pub fn load(path: &Path, m: &LoadedModel, system: Option<&str>) -> Result<Probe> {
        let items = read_mcq(path)?;
        let failure = RefCell::new(None);
        let render = |msgs: &[f1_core::ChatMessage]| match m.chat_template.render(msgs, true) {
            Ok(text) => Some(text),
            Err(e) => {
                failure.replace(Some(e.to_string()));
                None
            }
        };
        let mut requests = Vec::with_capacity(items.len());
        for item in &items {
            let request = chat_request(item, system, render).ok_or_else(|| {
                let reason = failure.borrow().clone().unwrap_or_else(|| "no chat template".into());
                Error::Data { path: path.into(), line: 0, reason: format!("question `{}`: the model's chat template cannot render it ({reason}); a probe needs a model with a chat template", item.id) }
            })?;
            requests.push(request);
        }
        Ok(Probe { path: path.into(), requests, answers: items.iter().map(|i| i.answer_index).collect() })
    }

    /// Number of questions.
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// Whether the probe has no question (never true for a loaded one: the harness refuses
    /// an empty file).
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// Score the model in eval mode without gradients, then put it back in training mode.
    pub fn score(&self, m: &mut LoadedModel) -> Result<ProbeScore> {
        m.model.set_training(false);
        let scores = {
            let _guard = tch::no_grad_guard();
            score_requests(&*m, &self.requests, MAX_BATCH_TOKENS)
        };
        m.model.set_training(true);
        let scores = scores.map_err(|e| Error::Data { path: self.path.clone(), line: 0, reason: format!("scoring the probe: {e}") })?;
        let (mut acc, mut acc_norm) = (0usize, 0usize);
        for ((request, options), &answer) in self.requests.iter().zip(&scores).zip(&self.answers) {
            let logprobs: Vec<f64> = options.iter().map(|o| o.logprob).collect();
            acc += usize::from(argmax(&logprobs) == answer);
            let per_char: Vec<f64> = logprobs.iter().zip(&request.continuations).map(|(lp, c)| lp / c.chars().count().max(1) as f64).collect();
            acc_norm += usize::from(argmax(&per_char) == answer);
        }
        let n = self.len();
        Ok(ProbeScore { acc: acc as f64 / n.max(1) as f64, acc_norm: acc_norm as f64 / n.max(1) as f64, n })
    }
}

/// Index of the first of the largest values (numpy's `argmax`, as the harness breaks ties).
fn argmax(xs: &[f64]) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, &x) in xs.iter().enumerate() {
        if x > best.1 {
            best = (i, x);
        }
    }
    best.0
}
