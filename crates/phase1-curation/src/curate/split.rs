//! The 80/10/10 split: by group (so every phrasing of a fact, and every fact that a benchmark
//! question combines, lands in one split), stratified by category, seeded.
//!
//! Per category, groups are shuffled with the seed and each goes to the split furthest below
//! its target share of the pairs assigned so far (largest deficit; ties to train, then to
//! whichever of validation and test holds fewer pairs over all categories, so small datasets
//! still get a test split): the shares converge to 80/10/10 whatever the group sizes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Category, Pair, Rng};

/// A split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training.
    Train,
    /// Validation.
    Validation,
    /// Test.
    Test,
}

impl Split {
    /// All splits in file order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Validation, Split::Test];

    /// File stem: `train`, `validation`, `test`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
        }
    }
}

/// Target shares of train, validation and test.
pub const SHARES: [f64; 3] = [0.8, 0.1, 0.1];

/// Assign every group of `pairs` to a split. Deterministic for a seed.
pub fn assign(pairs: &[Pair], seed: u64) -> BTreeMap<String, Split> {
    let mut groups: BTreeMap<Category, BTreeMap<&str, usize>> = BTreeMap::new();
    for p in pairs {
        *groups.entry(p.category).or_default().entry(p.group.as_str()).or_default() += 1;
    }
    let mut out = BTreeMap::new();
    let mut global = [0usize; 3];
    for (category, sizes) in groups {
        let mut order: Vec<(&str, usize)> = sizes.into_iter().collect();
        Rng::new(seed, &format!("split:{}", category.name())).shuffle(&mut order);
        let mut assigned = [0usize; 3];
        for (group, size) in order {
            let total = (assigned.iter().sum::<usize>() + size) as f64;
            let mut best = 0;
            let mut best_deficit = f64::MIN;
            for s in 0..3 {
                let deficit = SHARES[s] * total - assigned[s] as f64;
                let tie_to_emptier = (deficit - best_deficit).abs() <= 1e-9 && s == 2 && best == 1 && global[2] < global[1];
                if deficit > best_deficit + 1e-9 || tie_to_emptier {
                    best = s;
                    best_deficit = deficit;
                }
            }
            assigned[best] += size;
            global[best] += size;
            out.insert(group.to_owned(), Split::ALL[best]);
        }
    }
    out
}
