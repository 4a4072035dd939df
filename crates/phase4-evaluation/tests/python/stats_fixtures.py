"""Reference values for tests/stats.rs, computed with numpy, scipy and statsmodels.

Regenerate (these packages are not in the project venv, so use a throwaway one):

    python3 -m venv /tmp/statsvenv
    /tmp/statsvenv/bin/pip install numpy scipy statsmodels
    /tmp/statsvenv/bin/python crates/phase4-evaluation/tests/python/stats_fixtures.py \
        > crates/phase4-evaluation/tests/fixtures/stats.json

Every input is written into the JSON next to its expected values (outcome vectors as strings of
'0'/'1'), so the Rust test needs nothing from numpy's random generator; the generator below only
decides the inputs once. Bootstrap intervals are not here: no Rust RNG reproduces numpy's, so
tests/stats.rs checks their properties instead.

Conventions the Rust side adds where the references give NaN or raise (and that are stored here
as such): the sample standard deviation of fewer than two values is 0 (numpy: NaN); McNemar's
test uses the exact binomial form when the discordant pairs number fewer than 25 and the
continuity-corrected chi-square otherwise (statsmodels leaves that choice to the caller).
"""
import json
import math
import sys

import numpy as np
import scipy
import scipy.special
import scipy.stats
import statsmodels
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

RNG = np.random.default_rng(20240607)


def bits(xs):
    return "".join("1" if x else "0" for x in xs)


def lm_eval_mean_stderr(arr):
    """lm-evaluation-harness's `mean_stderr` (lm_eval/api/metrics.py): the sample standard
    deviation (ddof=1) over sqrt(n). Restated here so the fixture does not need lm-eval (and its
    torch) installed; checked against numpy below."""
    n = len(arr)
    if n < 2:
        return 0.0
    mu = sum(arr) / n
    sample_std = math.sqrt(sum((x - mu) ** 2 for x in arr) / (n - 1))
    return sample_std / math.sqrt(n)


def std1(values):
    return float(np.std(values, ddof=1)) if len(values) >= 2 else 0.0


# --- percentile -------------------------------------------------------------------------------
percentile_inputs = [
    [3.0, 1.0, 2.0],
    [7.5],
    [10.0, 10.0, 10.0, 10.0],
    [5.0, -1.0, 2.5, 9.0, 9.0, 0.0, 3.25, 100.0],
    [float(x) for x in RNG.normal(250.0, 40.0, size=37).round(3)],
]
qs = [0.0, 2.5, 10.0, 25.0, 33.3, 50.0, 66.7, 90.0, 97.5, 99.0, 100.0]
percentile_cases = [
    {"values": values, "q": qs, "expected": [float(np.percentile(values, q)) for q in qs]}
    for values in percentile_inputs
]

# --- summarize (latency in ms, tokens/s) -----------------------------------------------------
summary_inputs = {
    "latency_ms_lognormal_200": [float(x) for x in RNG.lognormal(math.log(850.0), 0.35, size=200).round(3)],
    "tokens_per_s_50": [float(x) for x in RNG.normal(42.0, 6.0, size=50).round(2)],
    "two_values": [120.0, 80.0],
    "single_value": [333.0],
    "with_outlier": [12.0, 11.5, 13.0, 12.2, 11.9, 250.0, 12.1, 12.4, 11.8, 12.0],
}
summary_cases = []
for name, s in summary_inputs.items():
    a = np.asarray(s)
    summary_cases.append(
        {
            "name": name,
            "samples": s,
            "expected": {
                "n": len(s),
                "mean": float(np.mean(a)),
                "median": float(np.median(a)),
                "p90": float(np.percentile(a, 90)),
                "p99": float(np.percentile(a, 99)),
                "min": float(np.min(a)),
                "max": float(np.max(a)),
                "std": std1(a),
            },
        }
    )

# --- accuracy (point estimate and lm-eval stderr) --------------------------------------------
def shuffled_outcomes(correct, n):
    xs = np.array([True] * correct + [False] * (n - correct))
    RNG.shuffle(xs)
    return xs


accuracy_inputs = {
    "one_correct": np.array([True]),
    "one_wrong": np.array([False]),
    "two_mixed": np.array([True, False]),
    "five_of_seven": shuffled_outcomes(5, 7),
    "all_correct_20": np.array([True] * 20),
    "mmlu_like_691_of_1500": shuffled_outcomes(691, 1500),
}
accuracy_cases = []
for name, xs in accuracy_inputs.items():
    floats = [1.0 if x else 0.0 for x in xs]
    stderr = lm_eval_mean_stderr(floats)
    if len(floats) >= 2:
        assert abs(stderr - np.std(floats, ddof=1) / math.sqrt(len(floats))) < 1e-15
    accuracy_cases.append(
        {
            "name": name,
            "outcomes": bits(xs),
            "expected": {
                "correct": int(xs.sum()),
                "n": len(xs),
                "acc": float(np.mean(floats)),
                "stderr": stderr,
            },
        }
    )

# --- McNemar on paired outcomes --------------------------------------------------------------
def paired(both_correct, only_a, only_b, both_wrong):
    pairs = (
        [(True, True)] * both_correct
        + [(True, False)] * only_a
        + [(False, True)] * only_b
        + [(False, False)] * both_wrong
    )
    order = RNG.permutation(len(pairs))
    a = [pairs[i][0] for i in order]
    b = [pairs[i][1] for i in order]
    return a, b


mcnemar_inputs = {
    "discordant_3_9": (30, 3, 9, 8),
    "discordant_12_12_exact_edge": (50, 12, 12, 26),
    "discordant_13_12_chi2_edge": (50, 13, 12, 25),
    "discordant_40_70": (200, 40, 70, 190),
    "discordant_0_0": (15, 0, 0, 5),
    "discordant_100_100": (500, 100, 100, 300),
    "discordant_0_7": (10, 0, 7, 3),
    "discordant_20_300_tiny_p": (400, 20, 300, 280),
}
mcnemar_cases = []
for name, (cc, oa, ob, ww) in mcnemar_inputs.items():
    a, b = paired(cc, oa, ob, ww)
    exact = oa + ob < 25
    # Rows: a correct / wrong; columns: b correct / wrong. statsmodels reads table[0][1] and
    # table[1][0] as the discordant cells.
    table = [[cc, oa], [ob, ww]]
    res = mcnemar(table, exact=exact, correction=True)
    mcnemar_cases.append(
        {
            "name": name,
            "a": bits(a),
            "b": bits(b),
            "expected": {
                "n": len(a),
                "both_correct": cc,
                "only_a": oa,
                "only_b": ob,
                "both_wrong": ww,
                "statistic": float(res.statistic),
                "p_value": float(res.pvalue),
                "exact": exact,
            },
            "diff": float(np.mean(b) - np.mean(a)),
        }
    )

# --- binomial CDF (the exact McNemar's building block), incl. n in the thousands ----------------
binomial_inputs = [
    (0, 0, 0.5), (0, 1, 0.5), (3, 12, 0.5), (12, 24, 0.5), (40, 110, 0.5), (480, 1000, 0.5),
    (1200, 2500, 0.5), (900, 2500, 0.5), (2499, 5000, 0.5), (10, 50, 0.3), (0, 30, 0.1),
    (7, 7, 0.9),
]
binomial_cases = [
    {"k": k, "n": n, "p": p, "expected": float(scipy.stats.binom.cdf(k, n, p))}
    for (k, n, p) in binomial_inputs
]

# --- erfc and the chi-square survival function with one degree of freedom --------------------
erfc_inputs = [-3.0, -1.0, -0.25, 0.0, 1e-8, 0.1, 0.5, 1.0, 1.5, 1.99, 2.0, 2.5, 2.51, 3.0, 4.0, 5.5, 8.0, 12.0, 20.0, 26.0]
erfc_cases = [{"x": x, "expected": float(scipy.special.erfc(x))} for x in erfc_inputs]
chi2_inputs = [0.0, 0.005, 0.5, 1.0, 3.841458820694124, 6.635, 10.0, 25.0, 60.0, 200.0]
chi2_cases = [{"x": x, "expected": float(scipy.stats.chi2.sf(x, 1))} for x in chi2_inputs]

# --- Wilson score interval --------------------------------------------------------------------
wilson_inputs = [(0, 10, 0.05), (10, 10, 0.05), (3, 12, 0.05), (1, 1, 0.05), (691, 1500, 0.05), (7, 20, 0.10), (50, 60, 0.01)]
wilson_cases = []
for k, n, alpha in wilson_inputs:
    lo, hi = proportion_confint(k, n, alpha=alpha, method="wilson")
    wilson_cases.append(
        {"k": k, "n": n, "z": float(scipy.stats.norm.isf(alpha / 2)), "alpha": alpha, "expected": [float(lo), float(hi)]}
    )

fixture = {
    "generated_by": "tests/python/stats_fixtures.py",
    "versions": {
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "statsmodels": statsmodels.__version__,
    },
    "percentile": percentile_cases,
    "summarize": summary_cases,
    "accuracy": accuracy_cases,
    "mcnemar": mcnemar_cases,
    "binomial_cdf": binomial_cases,
    "erfc": erfc_cases,
    "chi2_sf_df1": chi2_cases,
    "wilson": wilson_cases,
}


def dump(value, indent=0):
    """JSON with one key per line but arrays of scalars on one line, so the file stays short and
    diffs stay readable. Keys keep the insertion order above, so the output is stable."""
    pad = "  " * indent
    if isinstance(value, dict):
        items = [f'{pad}  {json.dumps(k)}: {dump(v, indent + 1)}' for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        items = [f"{pad}  {dump(v, indent + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(value, allow_nan=False)


sys.stdout.write(dump(fixture) + "\n")
