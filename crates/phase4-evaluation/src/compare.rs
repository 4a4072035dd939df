//! Paired comparison of two variants on the same benchmark items, per scoring mode: McNemar's
//! test on the discordant pairs and a paired bootstrap of the accuracy difference, over the whole
//! benchmark and per benchmark part (`recall`, `control`, `reasoning`, ...). Within a part the
//! bootstrap resamples clusters of items that share a fact ([`crate::stats::clusters`]), since
//! questions on one fact are not independent. This is what lets the report say whether a
//! fine-tune beat the baseline on what it was taught, by how much, and with what p-value.
//!
//! `results/comparison.json` is a list of [`Comparison`]s, each stamped with
//! [`COMPARISON_SCHEMA_VERSION`] (files without the stamp are version 1: no `by_part`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::mcq::{ItemResult, MODES};
use crate::run::read_jsonl;
use crate::stats::{clusters, mcnemar, paired_bootstrap, paired_cluster_bootstrap, ClusterBootstrap, McNemar, PairedBootstrap};
use crate::{Error, Result};

/// Version of a [`Comparison`]'s layout in `comparison.json`; bumped on any incompatible change.
pub const COMPARISON_SCHEMA_VERSION: u32 = 2;

fn schema_v1() -> u32 {
    1
}

/// One mode's comparison (b against a) over the whole benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeComparison {
    /// A name of [`MODES`]: `chat_acc`, `chat_acc_norm`, `acc`, `acc_norm` (plain format),
    /// `circular` or `generative`.
    pub mode: String,
    /// Paired items.
    pub n: usize,
    /// Accuracy of a.
    pub acc_a: f64,
    /// Accuracy of b.
    pub acc_b: f64,
    /// McNemar's test.
    pub mcnemar: McNemar,
    /// Paired (item) bootstrap of acc_b - acc_a.
    pub bootstrap: PairedBootstrap,
}

/// One mode's comparison within a benchmark part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartModeComparison {
    /// A name of [`MODES`].
    pub mode: String,
    /// Paired items scored in this mode.
    pub n: usize,
    /// Accuracy of a.
    pub acc_a: f64,
    /// Accuracy of b.
    pub acc_b: f64,
    /// McNemar's test (items as the unit; see the cluster bootstrap for the honest interval).
    pub mcnemar: McNemar,
    /// Paired cluster bootstrap of acc_b - acc_a.
    pub cluster_bootstrap: ClusterBootstrap,
}

/// One benchmark part's comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartComparison {
    /// Paired items in the part.
    pub n: usize,
    /// Clusters of items sharing a fact.
    pub clusters: usize,
    /// Per mode present in both variants, in [`MODES`] order.
    pub modes: Vec<PartModeComparison>,
}

/// Comparison of variant `b` against variant `a`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// [`COMPARISON_SCHEMA_VERSION`] (1 for files written before the field existed).
    #[serde(default = "schema_v1")]
    pub schema_version: u32,
    /// Reference variant (usually `baseline`).
    pub a: String,
    /// Compared variant.
    pub b: String,
    /// Per mode present in both, over the whole benchmark.
    pub modes: Vec<ModeComparison>,
    /// Per benchmark part (`recall`, `control`, `reasoning`, ...; `all` for an unmarked file).
    #[serde(default)]
    pub by_part: BTreeMap<String, PartComparison>,
}

fn mean(v: &[bool]) -> f64 {
    v.iter().filter(|&&c| c).count() as f64 / v.len().max(1) as f64
}

/// Compare two variants' per-item results, pairing items by id. Items present in only one are
/// left out (and logged); no shared item is an error. The part and fact keys of an item are
/// taken from `a` (both were scored on the same benchmark).
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
    for (mode, get) in MODES {
        let (xa, xb): (Vec<bool>, Vec<bool>) = pairs.iter().filter_map(|(x, y)| Some((get(x)?, get(y)?))).unzip();
        if xa.is_empty() {
            continue;
        }
        modes.push(ModeComparison {
            mode: mode.into(),
            n: xa.len(),
            acc_a: mean(&xa),
            acc_b: mean(&xb),
            mcnemar: mcnemar(&xa, &xb)?,
            bootstrap: paired_bootstrap(&xa, &xb, resamples, seed)?,
        });
    }
    let mut parts: BTreeMap<&str, Vec<(&ItemResult, &ItemResult)>> = BTreeMap::new();
    for &(x, y) in &pairs {
        parts.entry(x.part.as_str()).or_default().push((x, y));
    }
    let mut by_part = BTreeMap::new();
    for (part, pairs) in parts {
        let ids = clusters(&pairs.iter().map(|(x, _)| x.fact_keys.clone()).collect::<Vec<_>>());
        let mut part_modes = vec![];
        for (mode, get) in MODES {
            let mut xa = vec![];
            let mut xb = vec![];
            let mut cl = vec![];
            for ((x, y), &c) in pairs.iter().zip(&ids) {
                if let (Some(p), Some(q)) = (get(x), get(y)) {
                    xa.push(p);
                    xb.push(q);
                    cl.push(c);
                }
            }
            if xa.is_empty() {
                continue;
            }
            part_modes.push(PartModeComparison {
                mode: mode.into(),
                n: xa.len(),
                acc_a: mean(&xa),
                acc_b: mean(&xb),
                mcnemar: mcnemar(&xa, &xb)?,
                cluster_bootstrap: paired_cluster_bootstrap(&xa, &xb, &cl, resamples, seed)?,
            });
        }
        let n_clusters = ids.iter().max().map_or(0, |m| m + 1);
        by_part.insert(part.to_string(), PartComparison { n: pairs.len(), clusters: n_clusters, modes: part_modes });
    }
    Ok(Comparison { schema_version: COMPARISON_SCHEMA_VERSION, a: a_name.into(), b: b_name.into(), modes, by_part })
}

/// Compare the variants stored under `results_dir/<name>/mcq_items.jsonl`.
pub fn compare_dirs(results_dir: &Path, a: &str, b: &str, resamples: usize, seed: u64) -> Result<Comparison> {
    let read = |name: &str| read_jsonl::<ItemResult>(&results_dir.join(name).join("mcq_items.jsonl"));
    compare(a, &read(a)?, b, &read(b)?, resamples, seed)
}
