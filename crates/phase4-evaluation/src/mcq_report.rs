//! The multiple-choice summary of `eval.json` (`mcq`): every mode's accuracy overall and per
//! category, difficulty and taught/control mark, and per benchmark part (`recall`, `control`,
//! `reasoning`, ...), where the 95% intervals come from a cluster bootstrap over the facts the
//! questions rest on ([`crate::stats::clusters`]): the headline is the recall part, and its
//! questions are not independent draws when several rest on one fact.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::circular::{self, CircularReport};
use crate::mcq::{ItemResult, LlOutcome, Verdict, LETTERS, MODES};
use crate::stats::{accuracy, cluster_accuracy, clusters, Accuracy, ACCURACY_RESAMPLES};

/// Accuracy of a mode overall and per group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breakdown {
    /// All items.
    pub overall: Accuracy,
    /// Per category.
    pub by_category: BTreeMap<String, Accuracy>,
    /// Per difficulty.
    pub by_difficulty: BTreeMap<String, Accuracy>,
    /// `taught` (facts in the training pairs) and `control` items, when the file marks them.
    pub by_control: BTreeMap<String, Accuracy>,
}

/// The breakdown of one mode's per-item outcome (items where it did not run are left out).
pub(crate) fn breakdown(results: &[ItemResult], outcome: impl Fn(&ItemResult) -> Option<bool>, seed: u64) -> Breakdown {
    let mut groups: [BTreeMap<String, Vec<bool>>; 3] = Default::default();
    let mut all = vec![];
    for r in results {
        let Some(ok) = outcome(r) else { continue };
        all.push(ok);
        let keys = [r.category.clone(), r.difficulty.clone(), r.control.map(|c| if c { "control" } else { "taught" }.to_string())];
        for (g, k) in groups.iter_mut().zip(keys) {
            if let Some(k) = k {
                g.entry(k).or_default().push(ok);
            }
        }
    }
    let acc = |m: &BTreeMap<String, Vec<bool>>| m.iter().map(|(k, v)| (k.clone(), accuracy(v, seed))).collect();
    Breakdown { overall: accuracy(&all, seed), by_category: acc(&groups[0]), by_difficulty: acc(&groups[1]), by_control: acc(&groups[2]) }
}

/// A log-likelihood mode's summary (chat or plain format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlReport {
    /// `acc`.
    pub acc: Breakdown,
    /// `acc_norm`.
    pub acc_norm: Breakdown,
    /// How often each letter was chosen by `acc` (position bias).
    pub chosen_letters: BTreeMap<String, usize>,
}

/// The generative mode's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenReport {
    /// Items.
    pub total: usize,
    /// Correct replies.
    pub correct: usize,
    /// Wrong option chosen.
    pub incorrect: usize,
    /// No option could be extracted.
    pub invalid: usize,
    /// Correct / total (Invalid counts as wrong), with its breakdown.
    pub accuracy: Breakdown,
    /// Correct / (correct + incorrect): accuracy when the model does answer.
    pub accuracy_when_valid: f64,
    /// How often each letter was chosen, plus `invalid`.
    pub chosen_letters: BTreeMap<String, usize>,
}

/// One benchmark part's accuracies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartReport {
    /// Items of the part.
    pub n: usize,
    /// Clusters of items sharing a fact (items without fact keys count one each).
    pub clusters: usize,
    /// Accuracy per mode that ran on the part, keyed by the names of [`MODES`] (`chat_acc`,
    /// `chat_acc_norm`, `acc`, `acc_norm` (plain format), `circular`, `generative`). `ci95` is
    /// the cluster-bootstrap interval; `stderr` is lm-evaluation-harness's item-level figure.
    pub modes: BTreeMap<String, Accuracy>,
}

/// Every mode's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McqReport {
    /// Questions.
    pub n: usize,
    /// Chat-format answer-text mode (the primary column), if run.
    #[serde(default)]
    pub chat: Option<LlReport>,
    /// Plain `Question:/Answer:` log-likelihood mode, if run.
    pub loglikelihood: Option<LlReport>,
    /// Circular letter mode, if run.
    #[serde(default)]
    pub circular: Option<CircularReport>,
    /// Generative mode, if run.
    pub generative: Option<GenReport>,
    /// How often each letter is the right answer (a balanced benchmark has them equal).
    pub answer_letters: BTreeMap<String, usize>,
    /// Per benchmark part (`recall`, `control`, `reasoning`, ...; `all` for an unmarked file).
    #[serde(default)]
    pub by_part: BTreeMap<String, PartReport>,
}

/// The letter of option `i` (its index beyond the letters).
pub(crate) fn letter(i: usize) -> String {
    LETTERS.get(i).map_or_else(|| i.to_string(), char::to_string)
}

fn ll_report(results: &[ItemResult], outcome: fn(&ItemResult) -> Option<&LlOutcome>, acc: fn(&ItemResult) -> Option<bool>, acc_norm: fn(&ItemResult) -> Option<bool>, seed: u64) -> Option<LlReport> {
    results.iter().any(|r| outcome(r).is_some()).then(|| {
        let mut chosen = BTreeMap::new();
        for l in results.iter().filter_map(outcome) {
            *chosen.entry(letter(l.pred)).or_insert(0) += 1;
        }
        LlReport { acc: breakdown(results, acc, seed), acc_norm: breakdown(results, acc_norm, seed), chosen_letters: chosen }
    })
}

fn gen_report(results: &[ItemResult], seed: u64) -> Option<GenReport> {
    let gens: Vec<_> = results.iter().filter_map(|r| r.generative.as_ref()).collect();
    if gens.is_empty() {
        return None;
    }
    let count = |v: Verdict| gens.iter().filter(|g| g.verdict == v).count();
    let (correct, incorrect, invalid) = (count(Verdict::Correct), count(Verdict::Incorrect), count(Verdict::Invalid));
    let mut chosen = BTreeMap::new();
    for g in &gens {
        *chosen.entry(g.choice.map_or_else(|| "invalid".to_string(), letter)).or_insert(0) += 1;
    }
    Some(GenReport {
        total: gens.len(),
        correct,
        incorrect,
        invalid,
        accuracy: breakdown(results, ItemResult::gen_correct, seed),
        accuracy_when_valid: if correct + incorrect == 0 { 0.0 } else { correct as f64 / (correct + incorrect) as f64 },
        chosen_letters: chosen,
    })
}

/// Per-part accuracies with cluster-bootstrap intervals (`resamples` draws seeded with `seed`).
pub fn by_part(results: &[ItemResult], seed: u64, resamples: usize) -> BTreeMap<String, PartReport> {
    let mut parts: BTreeMap<&str, Vec<&ItemResult>> = BTreeMap::new();
    for r in results {
        parts.entry(r.part.as_str()).or_default().push(r);
    }
    parts
        .into_iter()
        .map(|(part, items)| {
            let ids = clusters(&items.iter().map(|r| r.fact_keys.clone()).collect::<Vec<_>>());
            let mut modes = BTreeMap::new();
            for (name, outcome) in MODES {
                let (oks, cl): (Vec<bool>, Vec<usize>) = items.iter().zip(&ids).filter_map(|(r, &c)| Some((outcome(r)?, c))).unzip();
                if oks.is_empty() {
                    continue;
                }
                // Lengths agree by construction, so this cannot fail; fall back to the item
                // interval rather than drop the mode if it ever did.
                let acc = cluster_accuracy(&oks, &cl, resamples, seed).unwrap_or_else(|_| accuracy(&oks, seed));
                modes.insert(name.to_string(), acc);
            }
            let n_clusters = ids.iter().max().map_or(0, |m| m + 1);
            (part.to_string(), PartReport { n: items.len(), clusters: n_clusters, modes })
        })
        .collect()
}

/// Summarize per-item results (bootstrap intervals seeded with `seed`, per-part intervals from
/// [`ACCURACY_RESAMPLES`] cluster resamples).
pub fn report(results: &[ItemResult], seed: u64) -> McqReport {
    report_resampled(results, seed, ACCURACY_RESAMPLES)
}

/// [`report`] with `resamples` cluster-bootstrap draws per part and mode (the study's
/// `bootstrap_resamples`).
pub fn report_resampled(results: &[ItemResult], seed: u64, resamples: usize) -> McqReport {
    let mut answer_letters = BTreeMap::new();
    for r in results {
        *answer_letters.entry(letter(r.answer_index)).or_insert(0) += 1;
    }
    McqReport {
        n: results.len(),
        chat: ll_report(results, |r| r.chat.as_ref(), ItemResult::chat_correct, ItemResult::chat_norm_correct, seed),
        loglikelihood: ll_report(results, |r| r.ll.as_ref(), ItemResult::ll_correct, ItemResult::ll_norm_correct, seed),
        circular: circular::report(results, seed),
        generative: gen_report(results, seed),
        answer_letters,
        by_part: by_part(results, seed, resamples),
    }
}
