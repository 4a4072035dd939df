//! Phase 2: measure the pre-trained model before adaptation.
//!
//! The pre-trained model is measured with the same harness as every fine-tuned variant
//! (`phase4_evaluation`): this crate only names it `baseline` and writes its results to
//! `results/baseline/`. It also holds the environment check every measurement depends on:
//! which libtorch the binaries run on, whether CUDA is usable, and whether the base model is
//! present and readable.

use std::fmt::Write as _;
use std::path::Path;

use f1_core::device::RuntimeInfo;
use f1_core::gguf::GgufFile;
use phase4_evaluation::run::EvalReport;
use phase4_evaluation::Variant;

/// Evaluate the study's base model as `baseline` (profile of the `evaluation` section).
pub fn run(config: &Path, profile: &str) -> phase4_evaluation::Result<EvalReport> {
    let study = phase4_evaluation::config::load_study(config, profile)?;
    phase4_evaluation::run::evaluate_variant(&study, &Variant::baseline())
}

/// A human-readable report of the runtime and of the model file at `model`.
pub fn doctor_report(model: &Path) -> String {
    let mut out = RuntimeInfo::collect().to_string();
    let _ = write!(out, "\nmodel:          {}", model.display());
    if !model.exists() {
        let _ = write!(out, "\n                missing (hint: run `cargo xtask setup`)");
        return out;
    }
    if model.extension().is_some_and(|e| e == "gguf") {
        match GgufFile::open(model) {
            Ok(g) => {
                let arch = g.get("general.architecture").and_then(|v| v.as_str()).unwrap_or("?");
                let name = g.get("general.name").and_then(|v| v.as_str()).unwrap_or("?");
                let mut types: Vec<&str> = g.tensors.iter().map(|t| t.dtype.name()).collect();
                types.sort_unstable();
                types.dedup();
                let _ = write!(out, "\n                {name} ({arch}), {} tensors of types {}", g.tensors.len(), types.join(", "));
            }
            Err(e) => {
                let _ = write!(out, "\n                unreadable: {e}");
            }
        }
    }
    out
}
