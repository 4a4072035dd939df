//! The harness's statistics against numpy, scipy and statsmodels: every deterministic quantity is
//! compared with `tests/fixtures/stats.json` (written by `tests/python/stats_fixtures.py`, whose
//! header says how to regenerate it) to 1e-9; bootstrap results, which no Rust RNG can reproduce
//! from numpy's, are checked by their properties (seeded determinism, coverage of the estimate, the
//! width the normal approximation predicts, and the paired test's behaviour on no and on a clear
//! difference).

use phase4_evaluation::stats::*;
use phase4_evaluation::Error;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    percentile: Vec<PercentileCase>,
    summarize: Vec<SummaryCase>,
    accuracy: Vec<AccuracyCase>,
    mcnemar: Vec<McNemarCase>,
    binomial_cdf: Vec<BinomialCase>,
    erfc: Vec<ScalarCase>,
    chi2_sf_df1: Vec<ScalarCase>,
    wilson: Vec<WilsonCase>,
}

#[derive(Deserialize)]
struct PercentileCase {
    values: Vec<f64>,
    q: Vec<f64>,
    expected: Vec<f64>,
}

#[derive(Deserialize)]
struct SummaryCase {
    name: String,
    samples: Vec<f64>,
    expected: Summary,
}

#[derive(Deserialize)]
struct AccuracyCase {
    name: String,
    outcomes: String,
    expected: ExpectedAccuracy,
}

#[derive(Deserialize)]
struct ExpectedAccuracy {
    correct: usize,
    n: usize,
    acc: f64,
    stderr: f64,
}

#[derive(Deserialize)]
struct McNemarCase {
    name: String,
    a: String,
    b: String,
    expected: McNemar,
    diff: f64,
}

#[derive(Deserialize)]
struct BinomialCase {
    k: usize,
    n: usize,
    p: f64,
    expected: f64,
}

#[derive(Deserialize)]
struct ScalarCase {
    x: f64,
    expected: f64,
}

#[derive(Deserialize)]
struct WilsonCase {
    k: usize,
    n: usize,
    z: f64,
    expected: (f64, f64),
}

fn fixture() -> Fixture {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/stats.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Outcomes written as a string of '0' and '1', as the fixture stores them.
fn bits(s: &str) -> Vec<bool> {
    s.chars().map(|c| c == '1').collect()
}

/// Agreement to 1e-9, relative for values above 1 in magnitude and absolute below.
fn close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{what}: got {got}, want {want}");
}

/// Relative agreement, for quantities whose interesting values are tiny (tail probabilities).
fn close_rel(got: f64, want: f64, tol: f64, what: &str) {
    let ok = if want == 0.0 { got == 0.0 } else { ((got - want) / want).abs() <= tol };
    assert!(ok, "{what}: got {got:e}, want {want:e}");
}

#[test]
fn percentile_matches_numpy_linear() {
    for case in fixture().percentile {
        for (&q, &want) in case.q.iter().zip(&case.expected) {
            close(percentile(&case.values, q), want, &format!("percentile({:?}, {q})", case.values));
        }
    }
    assert!(percentile(&[], 50.0).is_nan());
    assert!(percentile(&[1.0, f64::NAN], 50.0).is_nan());
}

#[test]
fn summarize_matches_numpy() {
    for case in fixture().summarize {
        let got = summarize(&case.samples);
        let want = &case.expected;
        assert_eq!(got.n, want.n, "{}", case.name);
        for (g, w, field) in [
            (got.mean, want.mean, "mean"),
            (got.median, want.median, "median"),
            (got.p90, want.p90, "p90"),
            (got.p99, want.p99, "p99"),
            (got.min, want.min, "min"),
            (got.max, want.max, "max"),
            (got.std, want.std, "std"),
        ] {
            close(g, w, &format!("{} {field}", case.name));
        }
    }
    let empty = summarize(&[]);
    assert_eq!(empty, Summary { n: 0, mean: 0.0, median: 0.0, p90: 0.0, p99: 0.0, min: 0.0, max: 0.0, std: 0.0 });
}

#[test]
fn accuracy_and_stderr_match_lm_eval() {
    for case in fixture().accuracy {
        let outcomes = bits(&case.outcomes);
        let got = accuracy(&outcomes, 1234);
        assert_eq!((got.correct, got.n), (case.expected.correct, case.expected.n), "{}", case.name);
        close(got.acc, case.expected.acc, &format!("{} acc", case.name));
        close(got.stderr, case.expected.stderr, &format!("{} stderr", case.name));
        let (lo, hi) = got.ci95;
        assert!(lo <= got.acc && got.acc <= hi, "{}: {:?} excludes {}", case.name, got.ci95, got.acc);
        assert!((0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi), "{}: {:?}", case.name, got.ci95);
    }
}

#[test]
fn accuracy_of_nothing_is_zero() {
    assert_eq!(accuracy(&[], 7), Accuracy { correct: 0, n: 0, acc: 0.0, stderr: 0.0, ci95: (0.0, 0.0) });
    // A single item: no spread, so no standard error and a degenerate interval.
    let one = accuracy(&[true], 7);
    assert_eq!((one.acc, one.stderr, one.ci95), (1.0, 0.0, (1.0, 1.0)));
}

/// 691 of 1500 correct (46.07%), the size of a typical multiple-choice task.
fn mmlu_like() -> Vec<bool> {
    let case = fixture().accuracy.into_iter().find(|c| c.name == "mmlu_like_691_of_1500");
    bits(&case.expect("fixture has the n = 1500 case").outcomes)
}

#[test]
fn accuracy_bootstrap_is_seeded_and_as_wide_as_theory_says() {
    let outcomes = mmlu_like();
    let a = accuracy(&outcomes, 42);
    assert_eq!(a, accuracy(&outcomes, 42), "same seed, same result");
    assert_ne!(a.ci95, accuracy(&outcomes, 43).ci95, "another seed draws other resamples");
    let p = a.acc;
    let (lo, hi) = a.ci95;
    assert!(lo < p && p < hi, "{:?} excludes {p}", a.ci95);
    let normal_width = 2.0 * 1.959963984540054 * (p * (1.0 - p) / 1500.0).sqrt();
    let ratio = (hi - lo) / normal_width;
    assert!((0.8..=1.2).contains(&ratio), "bootstrap width {} vs normal {normal_width}", hi - lo);
}

#[test]
fn bootstrap_ci_of_a_continuous_mean() {
    let fx = fixture();
    let latency = &fx.summarize.iter().find(|c| c.name == "latency_ms_lognormal_200").expect("latency case").samples;
    let mean = summarize(latency).mean;
    let ci90 = bootstrap_ci(latency, 2000, 9, 0.90);
    let ci99 = bootstrap_ci(latency, 2000, 9, 0.99);
    assert_eq!(ci90, bootstrap_ci(latency, 2000, 9, 0.90));
    assert!(ci90.0 < mean && mean < ci90.1, "{ci90:?} excludes {mean}");
    // Same seed, same resampled means: the wider level cuts further out of the same distribution.
    assert!(ci99.0 < ci90.0 && ci90.1 < ci99.1, "{ci99:?} does not contain {ci90:?}");
    assert_eq!(bootstrap_ci(&[], 100, 9, 0.95), (0.0, 0.0));
    assert_eq!(bootstrap_ci(&[2.0, 4.0], 0, 9, 0.95), (3.0, 3.0));
}

#[test]
fn mcnemar_matches_statsmodels() {
    for case in fixture().mcnemar {
        let (a, b) = (bits(&case.a), bits(&case.b));
        let got = mcnemar(&a, &b).expect("equal lengths");
        let want = &case.expected;
        assert_eq!(
            (got.n, got.both_correct, got.only_a, got.only_b, got.both_wrong, got.exact),
            (want.n, want.both_correct, want.only_a, want.only_b, want.both_wrong, want.exact),
            "{}",
            case.name
        );
        close(got.statistic, want.statistic, &format!("{} statistic", case.name));
        close(got.p_value, want.p_value, &format!("{} p", case.name));
        close_rel(got.p_value, want.p_value, 1e-9, &format!("{} p (relative)", case.name));
        // The test is symmetric in the two variants.
        let swapped = mcnemar(&b, &a).expect("equal lengths");
        assert_eq!((swapped.only_a, swapped.only_b), (got.only_b, got.only_a));
        close(swapped.p_value, got.p_value, &format!("{} swapped p", case.name));
        let boot = paired_bootstrap(&a, &b, 200, 5).expect("equal lengths");
        close(boot.diff, case.diff, &format!("{} diff", case.name));
    }
}

#[test]
fn binomial_cdf_matches_scipy_for_thousands_of_trials() {
    for case in fixture().binomial_cdf {
        let what = format!("binom.cdf({}, {}, {})", case.k, case.n, case.p);
        close_rel(binomial_cdf(case.k, case.n, case.p), case.expected, 1e-9, &what);
    }
    assert!(binomial_cdf(1, 5, 1.5).is_nan());
}

#[test]
fn erfc_and_chi2_match_scipy() {
    let fx = fixture();
    for case in fx.erfc {
        close_rel(erfc(case.x), case.expected, 1e-12, &format!("erfc({})", case.x));
    }
    for case in fx.chi2_sf_df1 {
        close_rel(chi2_sf_df1(case.x), case.expected, 1e-12, &format!("chi2.sf({}, 1)", case.x));
    }
}

#[test]
fn wilson_matches_statsmodels() {
    for case in fixture().wilson {
        let (lo, hi) = wilson_interval(case.k, case.n, case.z);
        close(lo, case.expected.0, &format!("wilson({}, {}) low", case.k, case.n));
        close(hi, case.expected.1, &format!("wilson({}, {}) high", case.k, case.n));
    }
    assert_eq!(wilson_interval(0, 0, 1.96), (0.0, 1.0));
}

#[test]
fn paired_bootstrap_of_identical_variants_finds_nothing() {
    let outcomes = mmlu_like();
    let got = paired_bootstrap(&outcomes, &outcomes, 1000, 3).expect("equal lengths");
    assert_eq!(got, PairedBootstrap { diff: 0.0, ci95: (0.0, 0.0), p_value: 1.0, resamples: 1000 });
}

#[test]
fn paired_bootstrap_detects_a_clear_improvement() {
    // 300 items: B fixes 80 of A's errors and breaks 10 of its successes, 70 more correct in all.
    let mut a = vec![false; 300];
    let mut b = vec![false; 300];
    for i in 0..300 {
        let (x, y) = match i % 30 {
            0..=11 => (true, true),
            12..=19 => (false, true),
            20 => (true, false),
            _ => (false, false),
        };
        a[i] = x;
        b[i] = y;
    }
    let counts = mcnemar(&a, &b).expect("equal lengths");
    assert_eq!((counts.only_a, counts.only_b), (10, 80));
    let got = paired_bootstrap(&a, &b, 2000, 11).expect("equal lengths");
    assert_eq!(got, paired_bootstrap(&a, &b, 2000, 11).expect("equal lengths"), "same seed, same result");
    close(got.diff, 70.0 / 300.0, "diff");
    assert!(got.p_value < 0.01, "p = {}", got.p_value);
    assert!(got.ci95.0 > 0.0 && got.ci95.0 < got.diff && got.diff < got.ci95.1, "{:?}", got.ci95);
    assert!(counts.p_value < 0.01 && !counts.exact);
}

#[test]
fn mismatched_and_empty_pairs() {
    let short = [true, false];
    let long = [true, false, true];
    assert!(matches!(mcnemar(&short, &long), Err(Error::Invalid(_))));
    assert!(matches!(paired_bootstrap(&short, &long, 100, 1), Err(Error::Invalid(_))));
    assert!(matches!(paired_bootstrap(&short, &short, 0, 1), Err(Error::Invalid(_))));

    let none = mcnemar(&[], &[]).expect("empty pairs are valid");
    assert_eq!((none.n, none.statistic, none.p_value, none.exact), (0, 0.0, 1.0, true));
    let none = paired_bootstrap(&[], &[], 100, 1).expect("empty pairs are valid");
    assert_eq!(none, PairedBootstrap { diff: 0.0, ci95: (0.0, 0.0), p_value: 1.0, resamples: 100 });
}

#[test]
fn results_round_trip_through_json() {
    // serde_json's default float parsing may differ from the printed value in the last bit, so
    // floats are compared with the tolerance, counts exactly.
    let acc = accuracy(&mmlu_like(), 1);
    let back: Accuracy = serde_json::from_str(&serde_json::to_string(&acc).expect("serialize")).expect("deserialize");
    assert_eq!((back.correct, back.n), (acc.correct, acc.n));
    for (g, w) in [(back.acc, acc.acc), (back.stderr, acc.stderr), (back.ci95.0, acc.ci95.0), (back.ci95.1, acc.ci95.1)] {
        close(g, w, "accuracy round trip");
    }
    let test = mcnemar(&[true, false, true], &[false, false, true]).expect("equal lengths");
    let back: McNemar = serde_json::from_str(&serde_json::to_string(&test).expect("serialize")).expect("deserialize");
    assert_eq!((back.only_a, back.only_b, back.exact), (test.only_a, test.only_b, test.exact));
    close(back.p_value, test.p_value, "mcnemar round trip");
}
