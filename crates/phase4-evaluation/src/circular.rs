//! Circular letter scoring: CircularEval from MMBench (Liu et al. 2023, arXiv:2307.06281), with
//! the permutation-based estimate of the model's letter prior from Zheng et al. 2023, "Large
//! Language Models Are Not Robust Multiple Choice Selectors" (arXiv:2309.03882).
//!
//! A question with n options is asked n times, the options rotated so that the right answer sits
//! once under every letter: rotation `k` puts it at letter `k`. Each prompt is the generative
//! mode's letter prompt after the study's system prompt, rendered with the model's chat template
//! with the assistant's turn opened; the continuations are the bare letters `A`, `B`, ... and the
//! chosen letter is the most likely one. A question counts as right only when every rotation is
//! right, so a model that always answers `A` scores 0 however the answers are spread, where a
//! single letter pass would give it the share of answers under `A`.
//!
//! Per item the chosen letter and the letter probabilities (the model's probabilities of the
//! letters renormalized over them) are kept for every rotation. The summary gives the circular
//! accuracy, the accuracy per position of the right answer, and the letter prior: the mean of
//! the renormalized letter probabilities over all rotated prompts. Rotations cancel the content
//! of the options, so what stays is the model's preference for the letters themselves. (Zheng et
//! al. average log-probabilities per question and renormalize; the arithmetic mean used here is
//! the prior over the whole benchmark, read directly as "how often would it say A".)

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::backend::{Backend, LlRequest};
use crate::mcq::{argmax, chat_turns, letter_prompt, progress, ItemResult, McqItem, LETTERS};
use crate::mcq_report::{breakdown, letter, Breakdown};
use crate::stats::{accuracy, Accuracy};
use crate::{Error, Result};

/// One item's circular outcome (the `circular` field of `mcq_items.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CircularOutcome {
    /// Letter chosen in each rotation; rotation `k` has the right answer at letter `k`.
    pub chosen: Vec<String>,
    /// Probabilities of the letters in each rotation, renormalized over the letters (a softmax of
    /// their log-probabilities).
    pub letter_probs: Vec<Vec<f64>>,
}

impl CircularOutcome {
    /// Whether each rotation was answered right.
    pub fn rotation_correct(&self) -> impl Iterator<Item = bool> + '_ {
        self.chosen.iter().enumerate().map(|(k, c)| *c == letter(k))
    }

    /// Right in every rotation (the circular verdict).
    pub fn correct(&self) -> bool {
        !self.chosen.is_empty() && self.rotation_correct().all(|ok| ok)
    }
}

/// The options rotated so that the right one (`answer`) lands at position `k`.
pub fn rotate(options: &[String], answer: usize, k: usize) -> Vec<String> {
    let n = options.len();
    // Position j shows option (j + answer - k) mod n; j = k shows the answer.
    (0..n).map(|j| options[(j + answer + n - k % n) % n].clone()).collect()
}

/// The n requests of an item, rotation `k` first putting the answer at letter `k`: the letter
/// prompt rendered by `render` (the backend's [`Backend::render_chat`]) with the assistant's
/// turn opened, continuations the bare letters (no leading space: the reply starts there). `None`
/// when the backend has no chat template.
pub fn circular_requests(item: &McqItem, system: Option<&str>, render: impl Fn(&[f1_core::ChatMessage]) -> Option<String>) -> Option<Vec<LlRequest>> {
    let n = item.options.len().min(LETTERS.len());
    let letters: Vec<String> = LETTERS[..n].iter().map(char::to_string).collect();
    (0..n)
        .map(|k| {
            let context = render(&chat_turns(&letter_prompt(&item.question, &rotate(&item.options, item.answer_index, k)), system))?;
            Some(LlRequest { context, continuations: letters.clone() })
        })
        .collect()
}

/// Softmax of log-probabilities (the probabilities renormalized over the given outcomes).
pub fn renormalize(logprobs: &[f64]) -> Vec<f64> {
    let max = logprobs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = logprobs.iter().map(|l| (l - max).exp()).collect();
    let total: f64 = exps.iter().sum();
    exps.iter().map(|e| e / total).collect()
}

/// Score every item in all its rotations, `chunk` questions per backend call. `None` when the
/// backend has no chat template.
pub fn score_circular(backend: &mut dyn Backend, items: &[McqItem], system: Option<&str>, chunk: usize) -> Result<Option<Vec<CircularOutcome>>> {
    let Some(per_item) = items.iter().map(|it| circular_requests(it, system, |m| backend.render_chat(m))).collect::<Option<Vec<Vec<LlRequest>>>>() else {
        return Ok(None);
    };
    let bar = progress(items.len(), "mcq circular");
    let mut out = Vec::with_capacity(items.len());
    for part in per_item.chunks(chunk.max(1)) {
        let flat: Vec<LlRequest> = part.iter().flatten().cloned().collect();
        let scored = backend.loglikelihood(&flat)?;
        if scored.len() != flat.len() {
            return Err(Error::Invalid(format!("{} answered {} of {} circular requests", backend.describe(), scored.len(), flat.len())));
        }
        let mut scores = scored.into_iter();
        for rotations in part {
            let mut outcome = CircularOutcome { chosen: Vec::with_capacity(rotations.len()), letter_probs: Vec::with_capacity(rotations.len()) };
            for _ in rotations {
                let logprobs: Vec<f64> = scores.next().unwrap_or_default().iter().map(|l| l.logprob).collect();
                outcome.chosen.push(letter(argmax(logprobs.iter().copied())));
                outcome.letter_probs.push(renormalize(&logprobs));
            }
            out.push(outcome);
        }
        bar.inc(part.len() as u64);
    }
    bar.finish_and_clear();
    Ok(Some(out))
}

/// The circular mode's summary (`mcq.circular` of `eval.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CircularReport {
    /// Questions right in every rotation, with the usual breakdowns.
    pub accuracy: Breakdown,
    /// Share of all rotated prompts answered right (what single letter passes would average).
    pub per_prompt_acc: f64,
    /// Accuracy of the rotation with the right answer at each letter, over the items that have
    /// that letter; equal values mean no position bias.
    pub by_position: BTreeMap<String, Accuracy>,
    /// Estimated letter prior: mean renormalized probability of each letter over all rotated
    /// prompts that offer it (uniform = no preference for a letter).
    pub letter_prior: BTreeMap<String, f64>,
    /// How often each letter was chosen over all rotated prompts.
    pub chosen_letters: BTreeMap<String, usize>,
}

/// Summarize the circular outcomes of `results` (`None` when the mode did not run).
pub fn report(results: &[ItemResult], seed: u64) -> Option<CircularReport> {
    let outcomes: Vec<&CircularOutcome> = results.iter().filter_map(|r| r.circular.as_ref()).collect();
    if outcomes.is_empty() {
        return None;
    }
    let mut by_position: BTreeMap<usize, Vec<bool>> = BTreeMap::new();
    let mut prior: BTreeMap<usize, (f64, usize)> = BTreeMap::new();
    let mut chosen_letters = BTreeMap::new();
    for o in &outcomes {
        for (k, ok) in o.rotation_correct().enumerate() {
            by_position.entry(k).or_default().push(ok);
        }
        for probs in &o.letter_probs {
            for (j, p) in probs.iter().enumerate() {
                let e = prior.entry(j).or_insert((0.0, 0));
                e.0 += p;
                e.1 += 1;
            }
        }
        for c in &o.chosen {
            *chosen_letters.entry(c.clone()).or_insert(0) += 1;
        }
    }
    let prompts: usize = by_position.values().map(Vec::len).sum();
    let right: usize = by_position.values().flatten().filter(|&&ok| ok).count();
    Some(CircularReport {
        accuracy: breakdown(results, ItemResult::circular_correct, seed),
        per_prompt_acc: if prompts == 0 { 0.0 } else { right as f64 / prompts as f64 },
        by_position: by_position.into_iter().map(|(k, v)| (letter(k), accuracy(&v, seed))).collect(),
        letter_prior: prior.into_iter().map(|(j, (sum, n))| (letter(j), sum / n as f64)).collect(),
        chosen_letters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rotation_puts_the_answer_at_its_position_and_keeps_the_cycle() {
        let o: Vec<String> = ["w", "x", "y", "z"].iter().map(|s| s.to_string()).collect();
        for answer in 0..4 {
            for k in 0..4 {
                let r = rotate(&o, answer, k);
                assert_eq!(r[k], o[answer]);
                // A rotation, not a shuffle: each option is followed by its successor.
                let i = o.iter().position(|x| *x == r[0]).expect("present");
                assert_eq!(r, (0..4).map(|j| o[(i + j) % 4].clone()).collect::<Vec<_>>());
            }
        }
        let p = renormalize(&[-1.0, -1.0, (0.5f64).ln() - 1.0]);
        assert!((p[0] - 0.4).abs() < 1e-12 && (p[2] - 0.2).abs() < 1e-12);
    }
}
