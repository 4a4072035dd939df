//! The statistics of the evaluation harness: accuracy with its standard error and a bootstrap
//! interval, latency summaries, and paired comparisons between two variants scored on the same
//! items.
//!
//! Each quantity follows a named reference so the numbers can be compared with other reports:
//! the standard error is lm-evaluation-harness's `mean_stderr` (sample standard deviation, ddof 1,
//! over sqrt(n)); percentiles are numpy's default `linear` method (Hyndman & Fan's type 7);
//! McNemar's test is `statsmodels.stats.contingency_tables.mcnemar` (exact binomial form or
//! chi-square with continuity correction); the Wilson interval is statsmodels'
//! `proportion_confint(method="wilson")`; bootstrap intervals are Efron's percentile bootstrap.
//! The special functions are written here rather than pulled in as a crate: `erfc` from
//! Abramowitz & Stegun 7.1.6 (series) and 7.1.14 (Laplace's continued fraction, evaluated with the
//! modified Lentz method), the binomial probabilities from Loader's saddle-point form (C. Loader,
//! "Fast and Accurate Computation of Binomial Probabilities", 2000), so that the exact McNemar test
//! stays accurate for thousands of discordant pairs. `tests/stats.rs` checks all of it against
//! numpy, scipy and statsmodels through `tests/fixtures/stats.json`.
//!
//! Benchmark items that rest on the same fact are not independent, so per-part intervals and
//! paired comparisons also come as a cluster bootstrap: [`clusters`] joins items sharing a fact
//! key into connected components, and [`cluster_bootstrap_ci`] / [`paired_cluster_bootstrap`]
//! resample those components whole (Cameron & Miller 2015; Miller, arXiv:2411.00640).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Resamples behind [`Accuracy::ci95`]: lm-evaluation-harness's bootstrap default order of
/// magnitude, enough for a 95% interval whose ends move by well under a point between seeds.
pub const ACCURACY_RESAMPLES: usize = 1000;

/// Below this many discordant pairs [`mcnemar`] uses the exact binomial test; from it on the
/// chi-square approximation, which is the usual rule of thumb for when the latter is adequate.
pub const MCNEMAR_EXACT_BELOW: usize = 25;

/// Accuracy over a set of scored items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Items answered correctly.
    pub correct: usize,
    /// Items scored.
    pub n: usize,
    /// `correct / n` (0 when `n` is 0).
    pub acc: f64,
    /// Standard error of the mean as lm-evaluation-harness reports it (see [`mean_stderr`]).
    pub stderr: f64,
    /// 95% percentile-bootstrap interval of the accuracy ([`ACCURACY_RESAMPLES`] resamples).
    pub ci95: (f64, f64),
}

/// Accuracy of `outcomes` (one `bool` per item) with its standard error and a 95% bootstrap
/// interval drawn with `seed`, so that a report is reproducible run to run. An empty input gives
/// all zeros rather than NaN, so an empty task shows up as `0/0` instead of poisoning aggregates.
pub fn accuracy(outcomes: &[bool], seed: u64) -> Accuracy {
    let n = outcomes.len();
    if n == 0 {
        return Accuracy { correct: 0, n: 0, acc: 0.0, stderr: 0.0, ci95: (0.0, 0.0) };
    }
    let values: Vec<f64> = outcomes.iter().map(|&c| if c { 1.0 } else { 0.0 }).collect();
    let correct = outcomes.iter().filter(|&&c| c).count();
    Accuracy {
        correct,
        n,
        acc: correct as f64 / n as f64,
        stderr: mean_stderr(&values),
        ci95: bootstrap_ci(&values, ACCURACY_RESAMPLES, seed, 0.95),
    }
}

/// Standard error of the mean as lm-evaluation-harness's `mean_stderr` computes it: the sample
/// standard deviation (ddof = 1) divided by sqrt(n); 0 for fewer than two values, where the sample
/// deviation is undefined.
pub fn mean_stderr(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    sample_std(values) / (values.len() as f64).sqrt()
}

/// Percentile-bootstrap interval for the mean of `values` at confidence `level` (0.95 for a 95%
/// interval): `resamples` means of samples drawn with replacement from a `StdRng` seeded with
/// `seed`, cut at the `(1 - level) / 2` and `(1 + level) / 2` quantiles with [`percentile`]'s
/// interpolation. The same seed gives the same interval within one build (rand does not promise
/// `StdRng`'s stream across its major versions). Empty `values` give `(0, 0)` and zero resamples
/// the degenerate interval at the sample mean; `level` is clamped to `[0, 1]`.
pub fn bootstrap_ci(values: &[f64], resamples: usize, seed: u64, level: f64) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    if resamples == 0 {
        let m = mean(values);
        return (m, m);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| (0..n).map(|_| values[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let tail = (1.0 - level.clamp(0.0, 1.0)) / 2.0 * 100.0;
    (percentile_sorted(&means, tail), percentile_sorted(&means, 100.0 - tail))
}

/// The `q`-th percentile (`q` in 0..=100, clamped) of `values`, sorted or not, with numpy's
/// default `linear` method: the sorted values sit at positions 0..n-1, the percentile at position
/// `(n - 1) * q / 100`, interpolated linearly between its two neighbours. Like numpy, a NaN
/// anywhere gives NaN; an empty slice (where numpy raises) gives NaN too.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() || q.is_nan() || values.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    percentile_sorted(&sorted, q)
}

/// [`percentile`] on values already sorted ascending and known non-empty.
fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    let last = sorted.len() - 1;
    let position = last as f64 * (q.clamp(0.0, 100.0) / 100.0);
    let below = position.floor();
    // `position` lies in [0, last], so both indices are in bounds; `as` saturates on NaN.
    let lo = (below as usize).min(last);
    let hi = (lo + 1).min(last);
    lerp(sorted[lo], sorted[hi], position - below)
}

/// Linear interpolation written as numpy's `_lerp` evaluates it: from the nearer end, so that
/// `t = 1` returns `b` exactly and results agree with numpy to the last bit or so.
fn lerp(a: f64, b: f64, t: f64) -> f64 {
    let diff = b - a;
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

/// Distribution summary of a continuous measurement (latency in ms, tokens/s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// 50th percentile.
    pub median: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Sample standard deviation (ddof = 1; 0 for fewer than two samples).
    pub std: f64,
}

/// Summary of `samples` with numpy's definitions (`mean`, `median`, `percentile` linear,
/// `min`, `max`, `std(ddof=1)`). No samples gives all zeros, so that a variant that produced
/// nothing still serializes to a valid report.
pub fn summarize(samples: &[f64]) -> Summary {
    if samples.is_empty() {
        return Summary { n: 0, mean: 0.0, median: 0.0, p90: 0.0, p99: 0.0, min: 0.0, max: 0.0, std: 0.0 };
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    Summary {
        n: samples.len(),
        mean: mean(samples),
        median: percentile_sorted(&sorted, 50.0),
        p90: percentile_sorted(&sorted, 90.0),
        p99: percentile_sorted(&sorted, 99.0),
        min: sorted[0],
        max: sorted[sorted.len() - 1],
        std: if samples.len() < 2 { 0.0 } else { sample_std(samples) },
    }
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// Two-pass sample standard deviation (ddof = 1), as numpy computes it, to avoid the cancellation
/// of the one-pass sum-of-squares formula on latencies with a large mean. Needs two values.
fn sample_std(values: &[f64]) -> f64 {
    let m = mean(values);
    let ss: f64 = values.iter().map(|x| (x - m) * (x - m)).sum();
    (ss / (values.len() - 1) as f64).sqrt()
}

/// McNemar's test on two variants scored on the same items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McNemar {
    /// Items compared.
    pub n: usize,
    /// Items both variants got right.
    pub both_correct: usize,
    /// Items only variant A got right.
    pub only_a: usize,
    /// Items only variant B got right.
    pub only_b: usize,
    /// Items both variants got wrong.
    pub both_wrong: usize,
    /// `min(only_a, only_b)` for the exact test, the corrected chi-square otherwise.
    pub statistic: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// Whether the exact binomial test was used.
    pub exact: bool,
}

/// McNemar's test of whether variants A and B differ in accuracy, from their outcomes on the same
/// items in the same order, as `statsmodels.stats.contingency_tables.mcnemar` computes it. Only the
/// discordant items carry information. With fewer than [`MCNEMAR_EXACT_BELOW`] of them the test is
/// exact: statistic `min(only_a, only_b)` and p = min(1, 2 * BinomCDF(statistic; only_a + only_b,
/// 1/2)). Otherwise statistic `(|only_a - only_b| - 1)^2 / (only_a + only_b)` with p from the
/// chi-square distribution with one degree of freedom. Like statsmodels, the correction is not
/// clamped at zero, so equal discordant counts give statistic `1 / (only_a + only_b)` and a p just
/// under 1. No discordant items give p = 1.
pub fn mcnemar(a: &[bool], b: &[bool]) -> Result<McNemar> {
    check_paired(a, b)?;
    let (mut both_correct, mut only_a, mut only_b, mut both_wrong) = (0, 0, 0, 0);
    for (&x, &y) in a.iter().zip(b) {
        match (x, y) {
            (true, true) => both_correct += 1,
            (true, false) => only_a += 1,
            (false, true) => only_b += 1,
            (false, false) => both_wrong += 1,
        }
    }
    let discordant = only_a + only_b;
    let exact = discordant < MCNEMAR_EXACT_BELOW;
    let (statistic, p_value) = if exact {
        let k = only_a.min(only_b);
        (k as f64, (2.0 * binomial_cdf(k, discordant, 0.5)).min(1.0))
    } else {
        let excess = only_a.abs_diff(only_b) as f64 - 1.0;
        let statistic = excess * excess / discordant as f64;
        (statistic, chi2_sf_df1(statistic))
    };
    Ok(McNemar { n: a.len(), both_correct, only_a, only_b, both_wrong, statistic, p_value, exact })
}

/// Paired bootstrap comparison of two variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedBootstrap {
    /// `mean(b) - mean(a)`: positive when B is more accurate.
    pub diff: f64,
    /// 95% percentile-bootstrap interval of `diff`.
    pub ci95: (f64, f64),
    /// Two-sided bootstrap p-value (see [`paired_bootstrap`]).
    pub p_value: f64,
    /// Resamples drawn.
    pub resamples: usize,
}

/// Paired bootstrap of the accuracy difference `mean(b) - mean(a)` between two variants scored on
/// the same items: each of `resamples` rounds draws item indices with replacement (from a
/// `StdRng` seeded with `seed`) and takes both variants' outcomes on those items together, so the
/// correlation between the variants is kept. `ci95` is the percentile interval of the resampled
/// differences. The p-value is the two-sided share of the bootstrap distribution on the far side
/// of zero:
///
/// p = min(1, 2 * min(#{diff* <= 0}, #{diff* >= 0}) / resamples)
///
/// so identical variants get p = 1 and a difference no resample erases gets p = 0, which reads
/// as p < 1 / resamples. Empty inputs give diff 0, interval (0, 0) and p = 1; lengths that differ
/// or zero resamples are an [`Error::Invalid`].
pub fn paired_bootstrap(a: &[bool], b: &[bool], resamples: usize, seed: u64) -> Result<PairedBootstrap> {
    check_paired(a, b)?;
    if resamples == 0 {
        return Err(Error::Invalid("paired bootstrap needs at least one resample".into()));
    }
    let n = a.len();
    if n == 0 {
        return Ok(PairedBootstrap { diff: 0.0, ci95: (0.0, 0.0), p_value: 1.0, resamples });
    }
    // Per-item difference in {-1, 0, 1}; resampled sums stay integers so "<= 0" is exact.
    let item_diff: Vec<i64> = a.iter().zip(b).map(|(&x, &y)| i64::from(y) - i64::from(x)).collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let sums: Vec<i64> = (0..resamples)
        .map(|_| (0..n).map(|_| item_diff[rng.random_range(0..n)]).sum())
        .collect();
    let at_or_below = sums.iter().filter(|&&s| s <= 0).count();
    let at_or_above = sums.iter().filter(|&&s| s >= 0).count();
    let p_value = (2.0 * at_or_below.min(at_or_above) as f64 / resamples as f64).min(1.0);
    let mut diffs: Vec<f64> = sums.iter().map(|&s| s as f64 / n as f64).collect();
    diffs.sort_by(f64::total_cmp);
    Ok(PairedBootstrap {
        diff: item_diff.iter().sum::<i64>() as f64 / n as f64,
        ci95: (percentile_sorted(&diffs, 2.5), percentile_sorted(&diffs, 97.5)),
        p_value,
        resamples,
    })
}

fn check_paired(a: &[bool], b: &[bool]) -> Result<()> {
    if a.len() != b.len() {
        return Err(Error::Invalid(format!(
            "paired outcomes differ in length ({} vs {}): score both variants on the same items in the same order",
            a.len(),
            b.len()
        )));
    }
    Ok(())
}

/// Clusters of items that rest on shared facts: items `i` and `j` fall in one cluster when their
/// key lists share a key, directly or through a chain of other items (the connected components of
/// the item-fact graph, by union-find with path halving). Returns one cluster id per item,
/// numbered from 0 in order of first appearance; an item without keys is a cluster of its own.
///
/// Questions about the same fact are not independent draws (a model that knows the fact tends to
/// get all of them right), so resampling them one by one understates the uncertainty; resampling
/// whole clusters does not (Cameron & Miller, "A Practitioner's Guide to Cluster-Robust
/// Inference", 2015; Miller, "Adding Error Bars to Evals", arXiv:2411.00640, section 2.2).
pub fn clusters(keys: &[Vec<String>]) -> Vec<usize> {
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut parent: Vec<usize> = (0..keys.len()).collect();
    let mut first_with: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, ks) in keys.iter().enumerate() {
        for k in ks {
            match first_with.get(k.as_str()) {
                Some(&j) => {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    // The smaller index stays the root, so ids follow file order.
                    parent[a.max(b)] = a.min(b);
                }
                None => {
                    first_with.insert(k.as_str(), i);
                }
            }
        }
    }
    let mut ids = std::collections::HashMap::new();
    (0..keys.len())
        .map(|i| {
            let r = root(&mut parent, i);
            let next = ids.len();
            *ids.entry(r).or_insert(next)
        })
        .collect()
}

/// Per-cluster sums of `values` and cluster sizes, for cluster ids as [`clusters`] numbers them.
fn cluster_totals<T: Copy + std::ops::AddAssign + Default>(values: &[T], cluster: &[usize]) -> Result<(Vec<T>, Vec<usize>)> {
    if values.len() != cluster.len() {
        return Err(Error::Invalid(format!("{} values but {} cluster ids: give every item its cluster", values.len(), cluster.len())));
    }
    let g = cluster.iter().map(|&c| c + 1).max().unwrap_or(0);
    let (mut sums, mut sizes) = (vec![T::default(); g], vec![0usize; g]);
    for (&v, &c) in values.iter().zip(cluster) {
        sums[c] += v;
        sizes[c] += 1;
    }
    // Ids that no item carries would be empty clusters; drop them so every draw holds items.
    let kept: Vec<(T, usize)> = sums.into_iter().zip(sizes).filter(|(_, n)| *n > 0).collect();
    Ok(kept.into_iter().unzip())
}

/// `resamples` cluster-bootstrap draws: each picks as many clusters as there are, with
/// replacement, and returns the summed values and the number of items drawn.
fn draw_clusters<T: Copy + std::ops::AddAssign + Default>(sums: &[T], sizes: &[usize], resamples: usize, seed: u64) -> Vec<(T, usize)> {
    let g = sums.len();
    let mut rng = StdRng::seed_from_u64(seed);
    (0..resamples)
        .map(|_| {
            let (mut s, mut n) = (T::default(), 0);
            for _ in 0..g {
                let c = rng.random_range(0..g);
                s += sums[c];
                n += sizes[c];
            }
            (s, n)
        })
        .collect()
}

/// Cluster (block) bootstrap interval for the mean of `values`, where `cluster[i]` is item `i`'s
/// cluster id ([`clusters`]): each of `resamples` rounds draws whole clusters with replacement
/// (as many as there are) from a `StdRng` seeded with `seed`, and the statistic is the mean over
/// the items drawn (the ratio estimator, as clusters differ in size). The interval is the
/// percentile interval at confidence `level`. With every item its own cluster this is exactly
/// [`bootstrap_ci`] (same draws, same sums). Empty `values` give `(0, 0)`, zero resamples the
/// degenerate interval at the mean; lengths that differ are an [`Error::Invalid`].
pub fn cluster_bootstrap_ci(values: &[f64], cluster: &[usize], resamples: usize, seed: u64, level: f64) -> Result<(f64, f64)> {
    let (sums, sizes) = cluster_totals(values, cluster)?;
    if values.is_empty() {
        return Ok((0.0, 0.0));
    }
    if resamples == 0 {
        let m = mean(values);
        return Ok((m, m));
    }
    let mut means: Vec<f64> = draw_clusters(&sums, &sizes, resamples, seed).into_iter().map(|(s, n)| s / n as f64).collect();
    means.sort_by(f64::total_cmp);
    let tail = (1.0 - level.clamp(0.0, 1.0)) / 2.0 * 100.0;
    Ok((percentile_sorted(&means, tail), percentile_sorted(&means, 100.0 - tail)))
}

/// [`accuracy`] whose 95% interval is the [`cluster_bootstrap_ci`] over `cluster` with
/// `resamples` draws; `stderr` stays lm-evaluation-harness's item-level figure, comparable with
/// other reports (the interval is the honest one when items share facts).
pub fn cluster_accuracy(outcomes: &[bool], cluster: &[usize], resamples: usize, seed: u64) -> Result<Accuracy> {
    let values: Vec<f64> = outcomes.iter().map(|&c| if c { 1.0 } else { 0.0 }).collect();
    let ci95 = cluster_bootstrap_ci(&values, cluster, resamples, seed, 0.95)?;
    Ok(Accuracy { ci95, ..accuracy(outcomes, seed) })
}

/// Paired cluster bootstrap of two variants on the same items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterBootstrap {
    /// `mean(b) - mean(a)`: positive when B is more accurate.
    pub diff: f64,
    /// 95% percentile interval of the resampled differences.
    pub ci95: (f64, f64),
    /// Share of resampled differences at or below zero (a one-sided bootstrap p-value for
    /// "B is better").
    pub share_at_or_below_zero: f64,
    /// Two-sided bootstrap p-value, as [`paired_bootstrap`] defines it.
    pub p_value: f64,
    /// Clusters resampled.
    pub clusters: usize,
    /// Resamples drawn.
    pub resamples: usize,
}

/// Paired bootstrap of `mean(b) - mean(a)` that resamples whole clusters (`cluster[i]` is item
/// `i`'s id from [`clusters`]) instead of items, keeping both variants' outcomes on a drawn
/// cluster together; otherwise as [`paired_bootstrap`] (percentile interval, two-sided p). With
/// every item its own cluster it draws exactly what [`paired_bootstrap`] draws. Empty inputs give
/// diff 0, interval (0, 0), share 1 and p = 1; lengths that differ or zero resamples are an
/// [`Error::Invalid`].
pub fn paired_cluster_bootstrap(a: &[bool], b: &[bool], cluster: &[usize], resamples: usize, seed: u64) -> Result<ClusterBootstrap> {
    check_paired(a, b)?;
    if resamples == 0 {
        return Err(Error::Invalid("paired cluster bootstrap needs at least one resample".into()));
    }
    let item_diff: Vec<i64> = a.iter().zip(b).map(|(&x, &y)| i64::from(y) - i64::from(x)).collect();
    let (sums, sizes) = cluster_totals(&item_diff, cluster)?;
    if a.is_empty() {
        return Ok(ClusterBootstrap { diff: 0.0, ci95: (0.0, 0.0), share_at_or_below_zero: 1.0, p_value: 1.0, clusters: 0, resamples });
    }
    let draws = draw_clusters(&sums, &sizes, resamples, seed);
    // Sums stay integers, so "<= 0" is exact.
    let at_or_below = draws.iter().filter(|(s, _)| *s <= 0).count();
    let at_or_above = draws.iter().filter(|(s, _)| *s >= 0).count();
    let mut diffs: Vec<f64> = draws.iter().map(|&(s, n)| s as f64 / n as f64).collect();
    diffs.sort_by(f64::total_cmp);
    Ok(ClusterBootstrap {
        diff: item_diff.iter().sum::<i64>() as f64 / a.len() as f64,
        ci95: (percentile_sorted(&diffs, 2.5), percentile_sorted(&diffs, 97.5)),
        share_at_or_below_zero: at_or_below as f64 / resamples as f64,
        p_value: (2.0 * at_or_below.min(at_or_above) as f64 / resamples as f64).min(1.0),
        clusters: sums.len(),
        resamples,
    })
}

/// Wilson score interval for `k` successes out of `n` at normal quantile `z` (1.959963984540054
/// for 95%), as statsmodels' `proportion_confint(method="wilson")`. Unlike the normal
/// approximation it stays inside [0, 1] and is not degenerate at k = 0 or k = n, which is why it
/// suits the small per-category counts of a report. `k` is capped at `n`; `n = 0` gives the
/// uninformative interval (0, 1).
pub fn wilson_interval(k: usize, n: usize, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let nf = n as f64;
    let p = k.min(n) as f64 / nf;
    let z2 = z * z;
    let denom = 1.0 + z2 / nf;
    let center = (p + z2 / (2.0 * nf)) / denom;
    let half = z * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt() / denom;
    ((center - half).clamp(0.0, 1.0), (center + half).clamp(0.0, 1.0))
}

/// P(X <= k) for X ~ Binomial(n, p); agrees with scipy to about 1e-12 relative, tails included,
/// for n up to the hundreds of thousands.
///
/// The tail is summed from its largest term outwards in ratios of consecutive terms, so nothing
/// overflows; the anchoring term comes from Loader's saddle-point form, which avoids the
/// cancellation of `ln n! - ln k! - ln (n-k)!` for large n. When `k` lies below the mean the lower
/// tail is summed; otherwise the upper tail, and the result is its complement (then at least
/// about one half, so the subtraction loses nothing). `p` outside [0, 1] gives NaN.
pub fn binomial_cdf(k: usize, n: usize, p: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if k >= n {
        return 1.0;
    }
    if p == 0.0 {
        return 1.0;
    }
    if p == 1.0 {
        return 0.0;
    }
    let q = 1.0 - p;
    let nf = n as f64;
    if (k as f64) < nf * p {
        // Lower tail: terms fall monotonically from i = k down to 0.
        let mut term = 1.0;
        let mut sum = 1.0;
        for i in (1..=k).rev() {
            term *= i as f64 / (n - i + 1) as f64 * (q / p);
            sum += term;
            if term < sum * 1e-17 {
                break;
            }
        }
        (ln_binomial_pmf(k, n, p) + sum.ln()).exp()
    } else {
        // Upper tail from k + 1: terms fall monotonically towards n.
        let mut term = 1.0;
        let mut sum = 1.0;
        for i in (k + 1)..n {
            term *= (n - i) as f64 / (i + 1) as f64 * (p / q);
            sum += term;
            if term < sum * 1e-17 {
                break;
            }
        }
        1.0 - (ln_binomial_pmf(k + 1, n, p) + sum.ln()).exp()
    }
}

/// ln P(X = k) for X ~ Binomial(n, p), 0 < p < 1, after Loader (2000): the saddle-point
/// expansion `stirlerr(n) - stirlerr(k) - stirlerr(n-k) - bd0(k, np) - bd0(n-k, nq)
/// - ln(2 pi k (n-k) / n) / 2`, every piece of which is small, so the result keeps full relative
/// accuracy where `ln C(n, k)` alone would lose digits to cancellation.
fn ln_binomial_pmf(k: usize, n: usize, p: f64) -> f64 {
    let q = 1.0 - p;
    if k == 0 {
        return n as f64 * (-p).ln_1p();
    }
    if k == n {
        return n as f64 * p.ln();
    }
    let (kf, nf) = (k as f64, n as f64);
    let lc = stirlerr(n) - stirlerr(k) - stirlerr(n - k) - bd0(kf, nf * p) - bd0(nf - kf, nf * q);
    let lf = (2.0 * std::f64::consts::PI).ln() + kf.ln() + (-kf / nf).ln_1p();
    lc - 0.5 * lf
}

/// Stirling's error `ln n! - (n + 1/2) ln n + n - ln sqrt(2 pi)`: directly from the exact
/// factorial for small n (where the asymptotic series is not yet accurate), from the series
/// 1/(12n) - 1/(360n^3) + 1/(1260n^5) - 1/(1680n^7) + 1/(1188n^9) above, whose next term is
/// below 1e-16 from n = 16 on.
fn stirlerr(n: usize) -> f64 {
    let nf = n as f64;
    if n <= 15 {
        // n! is exact in f64 up to 22!.
        let factorial: f64 = (1..=n).map(|i| i as f64).product();
        let ln_sqrt_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
        return factorial.ln() - (nf + 0.5) * nf.ln() + nf - ln_sqrt_2pi;
    }
    let nn = nf * nf;
    (1.0 / 12.0 - (1.0 / 360.0 - (1.0 / 1260.0 - (1.0 / 1680.0 - 1.0 / (1188.0 * nn)) / nn) / nn) / nn) / nf
}

/// The deviance term `x ln(x / m) + m - x` of Loader (2000), by its series in
/// `v = (x - m) / (x + m)` when x is near m, where the direct form cancels.
fn bd0(x: f64, m: f64) -> f64 {
    if (x - m).abs() < 0.1 * (x + m) {
        let v = (x - m) / (x + m);
        let v2 = v * v;
        let mut sum = (x - m) * v;
        let mut ej = 2.0 * x * v;
        for j in 1..1000 {
            ej *= v2;
            let next = sum + ej / (2 * j + 1) as f64;
            if next == sum {
                break;
            }
            sum = next;
        }
        sum
    } else {
        x * (x / m).ln() + m - x
    }
}

/// Survival function of the chi-square distribution with one degree of freedom,
/// P(X > x) = erfc(sqrt(x / 2)), since X is the square of a standard normal.
pub fn chi2_sf_df1(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    erfc((x / 2.0).sqrt())
}

/// The complementary error function; agrees with scipy to about 1e-13 relative down to 1e-300.
///
/// Below x = 1.2 it is 1 - erf(x) with erf from the all-positive series of Abramowitz & Stegun
/// 7.1.6, `erf x = 2/sqrt(pi) e^(-x^2) sum 2^j x^(2j+1) / (1*3*...*(2j+1))`, which has no
/// cancellation; there erfc(x) > 0.08, so the subtraction costs at most one digit. From 1.2 on it
/// is Laplace's continued fraction (A&S 7.1.14), `erfc x = e^(-x^2)/sqrt(pi) / (x + (1/2)/(x +
/// 1/(x + (3/2)/(x + ...))))`, evaluated with the modified Lentz method, which keeps full
/// relative accuracy in the far tail. Negative arguments use erfc(-x) = 2 - erfc(x).
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    let frac_1_sqrt_pi = std::f64::consts::FRAC_2_SQRT_PI / 2.0;
    if x < 1.2 {
        let two_x2 = 2.0 * x * x;
        let mut term = x;
        let mut sum = x;
        for j in 1..200 {
            term *= two_x2 / (2 * j + 1) as f64;
            sum += term;
            if term < sum * 1e-17 {
                break;
            }
        }
        return 1.0 - 2.0 * frac_1_sqrt_pi * exp_minus_square(x) * sum;
    }
    if x > 27.3 {
        // e^(-x^2) is below the smallest subnormal double here.
        return 0.0;
    }
    // Modified Lentz for b0 + a1/(b1 + a2/(b2 + ...)) with b_j = x, a_j = j/2.
    const TINY: f64 = 1e-300;
    let mut f = x;
    let mut c = f;
    let mut d = 0.0;
    for j in 1..5000 {
        let a = j as f64 / 2.0;
        d = x + a * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = x + a / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() <= f64::EPSILON {
            break;
        }
    }
    frac_1_sqrt_pi * exp_minus_square(x) / f
}

/// e^(-x^2) without the rounding error of squaring x, which the exponent would amplify by x^2 in
/// the tail: x is split into a part with few bits (whose square is exact) and a small remainder.
fn exp_minus_square(x: f64) -> f64 {
    let hi = (x * 16.0).trunc() / 16.0;
    (-hi * hi).exp() * (-(x - hi) * (x + hi)).exp()
}
