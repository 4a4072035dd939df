//! Paired comparison of two variants on the same benchmark items: McNemar's test on the
//! discordant pairs and a paired bootstrap of the accuracy difference, per scoring mode. This
//! is what lets the report say whether a fine-tune beat the baseline, by how much, and with
//! what p-value.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::mcq::ItemResult;
use crate::run::read_jsonl;
use crate::stats::{mcnemar, paired_bootstrap, McNemar, PairedBootstrap};
use crate::{Error, Result};

/// One mode's comparison (b against a).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeComparison {
    /// `acc`, `acc_norm` or `generative`.
    pub mode: String,
    /// Paired items.
    pub n: usize,
    /// Accuracy of a.
    pub acc_a: f64,
    /// Accuracy of b.
    pub acc_b: f64,
    /// McNemar's test.
    pub mcnemar: McNemar,
    /// Paired bootstrap of acc_b - acc_a.
    pub bootstrap: PairedBootstrap,
}

/// Comparison of variant `b` against variant `a`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Reference variant (usually `baseline`).
    pub a: String,
    /// Compared variant.
    pub b: String,
    /// Per mode present in both.
    pub modes: Vec<ModeComparison>,
}

/// Compare two variants' per-item results, pairing items by id. Items present in only one are
/// left out (and logged); no shared item is an error.
pub fn compare(a_name: &str, a: &[ItemResult], b_name: &str, b: &[ItemResult], resamples: usize, seed: u64) -> Result<Comparison> {
    let by_id: HashMap<&str, &ItemResult> = a.iter().map(|r| (r.id.as_str(), r)).collect();
    let pairs: Vec<(&ItemResult, &ItemResult)> = b.iter().filter_map(|r| by_id.get(r.id.as_str()).map(|x| (*x, r))).collect();
    if pairs.is_empty() {
        return Err(Error::Invalid(format!("`{a_name}` and `{b_name}` share no benchmark item ids")));
    }
    if pairs.len() < a.len().max(b.len()) {
        tracing::warn!("{a_name} vs {b_name}: {} items paired of {} and {}", pairs.len(), a.len(), b.len());
    }
    let mut modes = vec![];
    let getters: [(&str, fn(&ItemResult) -> Option<bool>); 3] = [("acc", ItemResult::ll_correct), ("acc_norm", ItemResult::ll_norm_correct), ("generative", ItemResult::gen_correct)];
    for (mode, get) in getters {
        let (xa, xb): (Vec<bool>, Vec<bool>) = pairs.iter().filter_map(|(x, y)| Some((get(x)?, get(y)?))).unzip();
        if xa.is_empty() {
            continue;
        }
        let mean = |v: &[bool]| v.iter().filter(|&&c| c).count() as f64 / v.len() as f64;
        modes.push(ModeComparison {
            mode: mode.into(),
            n: xa.len(),
            acc_a: mean(&xa),
            acc_b: mean(&xb),
            mcnemar: mcnemar(&xa, &xb)?,
            bootstrap: paired_bootstrap(&xa, &xb, resamples, seed)?,
        });
    }
    Ok(Comparison { a: a_name.into(), b: b_name.into(), modes })
}

/// Compare the variants stored under `results_dir/<name>/mcq_items.jsonl`.
pub fn compare_dirs(results_dir: &Path, a: &str, b: &str, resamples: usize, seed: u64) -> Result<Comparison> {
    let read = |name: &str| read_jsonl::<ItemResult>(&results_dir.join(name).join("mcq_items.jsonl"));
    compare(a, &read(a)?, b, &read(b)?, resamples, seed)
}
