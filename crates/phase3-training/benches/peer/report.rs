//! The report: one row per case with both sides, issue #8's targets, the printed table and
//! the JSON written to `results/bench.json` (schema version 1).

use serde::Serialize;
use serde_json::{json, Value};

use super::{median, Sample};

/// One side of a case.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    /// Seconds per repetition.
    pub samples_s: Vec<f64>,
    /// Median seconds.
    pub median_s: f64,
    /// Work per repetition (tokens or questions).
    pub work_per_rep: f64,
    /// Median of work / seconds.
    pub throughput: f64,
    /// Model FLOPs utilisation against the measured matmul peak.
    pub mfu: Option<f64>,
    /// Decode tokens/s over the bandwidth ceiling.
    pub bandwidth_utilisation: Option<f64>,
    /// Peak resident memory of the case (MiB).
    pub peak_rss_mib: Option<f64>,
}

/// One case: ours against the peer.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `tiny` or `smollm2-135m`.
    pub model: String,
    /// Case name (`train_lora`, `decode_b1`, `ttft`, ...).
    pub case: String,
    /// Unit of `throughput`.
    pub unit: String,
    /// What the peer runs.
    pub peer_kind: String,
    /// Our measurement.
    pub ours: Side,
    /// The peer's, when it ran.
    pub peer: Option<Side>,
    /// Why the peer did not run.
    pub peer_error: Option<String>,
    /// Median over pairs of (our time per unit / the peer's); below 1 we are faster.
    pub ratio: Option<f64>,
}

/// A target of issue #8 and whether this run met it.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// What is compared.
    pub name: String,
    /// The measured value.
    pub value: Option<f64>,
    /// `<=` or `>=`.
    pub op: String,
    /// The threshold.
    pub threshold: f64,
    /// Met, not met, or not measured (null).
    pub met: Option<bool>,
}

/// The report written to `results/bench.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Bumped when a field changes meaning.
    pub schema_version: u32,
    /// When the run ended (UTC, from the peer's clock).
    pub date_utc: String,
    /// Cores, CPU model, threads.
    pub machine: Value,
    /// libtorch, torch, transformers, peft, bitsandbytes.
    pub versions: Value,
    /// Mode and sizes.
    pub settings: Value,
    /// fp32 matmul peak (GFLOP/s) and memory bandwidth (GB/s), measured in this run.
    pub calibration: Value,
    /// Per model: parameters, fp32 weight bytes.
    pub models: Vec<Value>,
    /// Every case.
    pub cases: Vec<Row>,
    /// Issue #8's targets.
    pub targets: Vec<Target>,
}

pub fn side(
    samples: &[Sample],
    rss: Option<f64>,
    flops: impl Fn(&Sample) -> Option<f64>,
    peak_gflops: f64,
    ceiling: Option<f64>,
) -> Side {
    let secs: Vec<f64> = samples.iter().map(|x| x.seconds).collect();
    let rates: Vec<f64> = samples.iter().map(|x| x.work / x.seconds).collect();
    let throughput = median(&rates);
    let mfu = samples
        .first()
        .and_then(&flops)
        .map(|f| f / median(&secs) / (peak_gflops * 1e9));
    Side {
        samples_s: secs.clone(),
        median_s: median(&secs),
        work_per_rep: samples.first().map_or(0.0, |x| x.work),
        throughput,
        mfu,
        bandwidth_utilisation: ceiling.map(|c| throughput / c),
        peak_rss_mib: rss,
    }
}

/// Median over pairs of (ours time per unit / peer's).
pub fn pair_ratio(
    ours: &[Sample],
    peer: &[Sample],
    time: impl Fn(&Sample) -> Option<f64>,
) -> Option<f64> {
    let r: Vec<f64> = ours
        .iter()
        .zip(peer)
        .filter_map(|(o, q)| Some(time(o)? / time(q)?))
        .filter(|x| x.is_finite())
        .collect();
    (!r.is_empty()).then(|| median(&r))
}

pub fn utc_date_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    // Days to a proleptic Gregorian date (H. Hinnant's `civil_from_days`).
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let rem = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

pub fn machine(threads: i32) -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|t| {
        t.lines().find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
    });
    json!({"cores": std::thread::available_parallelism().map_or(0, |n| n.get()), "cpu": cpu, "torch_threads": threads, "os": std::env::consts::OS})
}

/// Issue #8's targets, judged on SmolLM2 (null where this run did not measure it).
pub fn targets(cases: &[Row]) -> Vec<Target> {
    let row = |case: &str| {
        cases
            .iter()
            .find(|r| r.model == "smollm2-135m" && r.case == case)
    };
    let t = |name: &str, value: Option<f64>, op: &str, threshold: f64| Target {
        name: name.into(),
        value,
        op: op.into(),
        threshold,
        met: value.map(|v| {
            if op == "<=" {
                v <= threshold
            } else {
                v >= threshold
            }
        }),
    };
    let ours_median = |case: &str| row(case).map(|r| r.ours.median_s);
    let mut out = vec![
        t(
            "LoRA step time, ours / peer",
            row("train_lora").and_then(|r| r.ratio),
            "<=",
            0.8,
        ),
        t(
            "full fine-tuning step time, ours / peer",
            row("train_full").and_then(|r| r.ratio),
            "<=",
            0.8,
        ),
        t(
            "QLoRA step / our LoRA step",
            ours_median("train_qlora")
                .zip(ours_median("train_lora"))
                .map(|(q, l)| q / l),
            "<=",
            1.3,
        ),
    ];
    for case in ["train_lora", "train_qlora", "train_full"] {
        out.push(t(
            &format!("{case} MFU (share of measured peak)"),
            row(case).and_then(|r| r.ours.mfu),
            ">=",
            0.6,
        ));
    }
    out.push(t(
        "batch-1 decode speed-up over transformers generate",
        row("decode_b1").and_then(|r| r.ratio).map(|r| 1.0 / r),
        ">=",
        2.5,
    ));
    out.push(t(
        "batch-1 decode share of the bandwidth ceiling",
        row("decode_b1").and_then(|r| r.ours.bandwidth_utilisation),
        ">=",
        0.7,
    ));
    out
}

/// The printed table: one line per case, then the targets.
pub fn table(r: &Report) -> String {
    let f = |x: Option<f64>, d: usize| {
        x.filter(|v| v.is_finite())
            .map_or("-".to_string(), |v| format!("{v:.d$}"))
    };
    let pct = |x: Option<f64>| {
        x.filter(|v| v.is_finite())
            .map_or("-".to_string(), |v| format!("{:.1}%", 100.0 * v))
    };
    let mut out = format!(
        "\nfp32 matmul peak {:.1} GFLOP/s, read bandwidth {:.1} GB/s, {} threads, {} cores\n",
        r.calibration["matmul_peak_gflops"]
            .as_f64()
            .unwrap_or(f64::NAN),
        r.calibration["memory_read_bandwidth_gbs"]
            .as_f64()
            .unwrap_or(f64::NAN),
        r.machine["torch_threads"],
        r.machine["cores"]
    );
    out += &format!(
        "{:<13} {:<18} {:>10} {:>10} {:>13} {:>9} {:>9} {:>8} {:>17}  unit\n",
        "model",
        "case",
        "ours",
        "peer",
        "ours/peer t",
        "MFU ours",
        "MFU peer",
        "BW util",
        "peak RSS MiB o/p"
    );
    for c in &r.cases {
        let p = c.peer.as_ref();
        let rss = format!(
            "{}/{}",
            f(c.ours.peak_rss_mib, 0),
            f(p.and_then(|p| p.peak_rss_mib), 0)
        );
        out += &format!(
            "{:<13} {:<18} {:>10} {:>10} {:>13} {:>9} {:>9} {:>8} {:>17}  {}{}\n",
            c.model,
            c.case,
            f(Some(c.ours.throughput), 2),
            f(p.map(|p| p.throughput), 2),
            f(c.ratio, 2),
            pct(c.ours.mfu),
            pct(p.and_then(|p| p.mfu)),
            pct(c.ours.bandwidth_utilisation),
            rss,
            c.unit,
            c.peer_error.as_ref().map_or(String::new(), |e| format!(
                "  (peer: {})",
                e.lines().next().unwrap_or("")
            )),
        );
    }
    out += "\ntargets (issue #8, on SmolLM2-135M):\n";
    for t in &r.targets {
        let state = match t.met {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "not measured",
        };
        out += &format!(
            "  {:<55} {:>8} {} {:<5} {state}\n",
            t.name,
            f(t.value, 3),
            t.op,
            t.threshold
        );
    }
    out
}
