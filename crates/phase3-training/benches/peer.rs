//! `cargo xtask bench`: our phase code side by side with Hugging Face transformers + PEFT on
//! the same machine, in one run (issue #8). The driver lives in `peer/mod.rs`, the peer in
//! `peer/hf_bench.py`. Writes `results/bench.json` and prints a table with the targets.
//!
//! Environment: `F1_PYTHON` (the venv interpreter, set by xtask), `F1_MODEL_GGUF`, `F1_ROOT`;
//! `F1_BENCH_QUICK=1` for a smoke run of a few minutes (1 repetition, small work);
//! `F1_BENCH_REPS=N` to override the repetitions (5 by default); `F1_BENCH_MODELS=tiny,smollm2`
//! to choose the models.

#[path = "peer/mod.rs"]
mod driver;

use std::path::PathBuf;

use anyhow::{bail, Context};

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,peer=info".into()),
        )
        .with_target(false)
        .init();
    let quick = std::env::var("F1_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let reps = match std::env::var("F1_BENCH_REPS") {
        Ok(v) => v
            .parse()
            .with_context(|| format!("F1_BENCH_REPS={v:?} is not a number of repetitions"))?,
        Err(_) if quick => 1,
        Err(_) => 5,
    };
    let gguf = std::env::var("F1_MODEL_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|_| f1_core::load::default_base_model());
    let mut models = vec![];
    for name in std::env::var("F1_BENCH_MODELS")
        .unwrap_or_else(|_| "tiny,smollm2".into())
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        models.push(match name {
            "tiny" => driver::ModelChoice::Tiny,
            "smollm2" => driver::ModelChoice::Gguf(gguf.clone()),
            other => bail!("F1_BENCH_MODELS: unknown model {other:?}; use tiny and/or smollm2, comma-separated"),
        });
    }
    let Some(python) = std::env::var_os("F1_PYTHON").map(PathBuf::from) else {
        bail!("F1_PYTHON is not set; run through `cargo xtask bench`, which points it at the project venv");
    };
    let root = std::env::var_os("F1_ROOT")
        .map(PathBuf::from)
        .unwrap_or_default();
    driver::run(&driver::Options {
        reps,
        quick,
        models,
        python,
        out: root.join("results").join("bench.json"),
    })?;
    Ok(())
}
