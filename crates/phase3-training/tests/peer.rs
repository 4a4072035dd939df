//! The Hugging Face side-by-side benchmark end to end on the tiny random model (gated: needs
//! `F1_PYTHON`, a venv with transformers and peft, which `cargo xtask test` provides): one
//! repetition per case, the report parses back and every ratio is finite and positive.

#[allow(dead_code)] // the test drives only part of the bench driver
#[path = "../benches/peer/mod.rs"]
mod driver;

#[test]
#[ignore = "needs F1_PYTHON, a venv with transformers and peft: run `cargo xtask test`"]
fn peer_benchmark_runs_on_the_tiny_model() {
    let Some(python) = std::env::var_os("F1_PYTHON").map(std::path::PathBuf::from) else {
        eprintln!("skipped: F1_PYTHON is not set (run `cargo xtask test`)");
        return;
    };
    if let Err(why) = driver::check_python(&python) {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("bench.json");
    let opts = driver::Options {
        reps: 1,
        quick: true,
        models: vec![driver::ModelChoice::Tiny],
        python,
        out: out.clone(),
    };
    driver::run(&opts).expect("the benchmark runs");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("bench.json"))
            .expect("bench.json is JSON");
    assert_eq!(report["schema_version"], 1);
    assert!(report["calibration"]["matmul_peak_gflops"]
        .as_f64()
        .is_some_and(|g| g > 0.0));
    assert!(report["calibration"]["memory_read_bandwidth_gbs"]
        .as_f64()
        .is_some_and(|g| g > 0.0));
    assert!(report["versions"]["peer"]["torch"].is_string() && report["date_utc"].is_string());
    let cases = report["cases"].as_array().expect("cases");
    let names: Vec<&str> = cases.iter().filter_map(|c| c["case"].as_str()).collect();
    for want in [
        "train_lora",
        "train_qlora",
        "train_qlora_bnb",
        "train_full",
        "mcq_loglikelihood",
        "decode_b1",
        "decode_b8",
        "ttft",
    ] {
        assert!(names.contains(&want), "no {want} case in {names:?}");
    }
    for c in cases {
        let name = format!("{} {}", c["model"], c["case"]);
        assert!(
            c["ours"]["throughput"]
                .as_f64()
                .is_some_and(|x| x.is_finite() && x > 0.0),
            "{name}: our throughput {}",
            c["ours"]["throughput"]
        );
        if c["case"] == "train_qlora_bnb" && c["peer"].is_null() {
            // bitsandbytes may have no CPU path; the report then says why instead of a number.
            assert!(c["peer_error"].is_string(), "{name}: no peer and no reason");
            continue;
        }
        let ratio = c["ratio"].as_f64();
        assert!(
            ratio.is_some_and(|r| r.is_finite() && r > 0.0),
            "{name}: ratio {:?} (peer error {})",
            ratio,
            c["peer_error"]
        );
        assert!(
            c["peer"]["peak_rss_mib"].as_f64().is_some_and(|m| m > 0.0),
            "{name}: peer peak RSS"
        );
    }
    for c in cases
        .iter()
        .filter(|c| c["case"].as_str().is_some_and(|n| n.starts_with("train_")))
    {
        assert!(
            c["ours"]["mfu"]
                .as_f64()
                .is_some_and(|m| m > 0.0 && m.is_finite()),
            "{} MFU",
            c["case"]
        );
    }
    // The tiny model is not SmolLM2: its targets are reported as not measured.
    assert!(report["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .all(|t| t["met"].is_null()));
}
