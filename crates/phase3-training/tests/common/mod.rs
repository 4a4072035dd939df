//! What the training tests share: a tiny random model written as GGUF, a tiny chat dataset
//! ("Who won race i?"), the run config over both, and the lock that keeps seeded tests apart.

#![allow(dead_code)] // Each test binary uses its own subset.

use std::path::Path;

use f1_core::gguf::GgmlType;
use f1_core::testing::{random_model, tiny_config, write_gguf};
use phase3_training::config::{DataConfig, LoraSection, TrainSection};
use phase3_training::{Method, TrainConfig};

/// libtorch's RNG is process-global: tests that seed it must not interleave, or the golden
/// curve and the resume comparison would depend on thread scheduling.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Hold this for the whole of a test that trains or seeds libtorch.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The answers of the dataset, race i won by `DRIVERS[i % 6]`.
pub const DRIVERS: [&str; 6] = ["Hamilton", "Verstappen", "Alonso", "Vettel", "Button", "Raikkonen"];

fn write_data(dir: &Path) {
    let line = |i: usize| {
        let d = DRIVERS[i % DRIVERS.len()];
        serde_json::json!({"messages": [{"role": "user", "content": format!("Who won race {i}?")}, {"role": "assistant", "content": format!("{d} won race {i}.")}]}).to_string()
    };
    let train: Vec<String> = (0..24).map(line).collect();
    let val: Vec<String> = (24..30).map(line).collect();
    std::fs::write(dir.join("train.jsonl"), train.join("\n")).expect("train");
    std::fs::write(dir.join("validation.jsonl"), val.join("\n")).expect("val");
}

/// A run named `name` in `dir` (model and data written on first use): 24 examples, batch 4
/// x 2, two epochs = 6 optimizer steps, evaluation every 3, checkpoints every 2, no probe.
pub fn setup(dir: &Path, method: Method, name: &str) -> TrainConfig {
    let c = tiny_config("llama");
    let (vs, _) = random_model(&c, 11);
    let model = dir.join("tiny.gguf");
    if !model.exists() {
        write_gguf(&model, &c, &vs, GgmlType::F32);
        write_data(dir);
    }
    TrainConfig {
        name: name.into(),
        method,
        model: model.to_string_lossy().into_owned(),
        output_dir: dir.join(name),
        data: DataConfig { train: dir.join("train.jsonl"), validation: dir.join("validation.jsonl"), max_seq_len: 128, max_train_examples: None, max_eval_examples: None, packing: false, ..Default::default() },
        lora: LoraSection { r: 4, lora_alpha: 8.0, lora_dropout: 0.1, target_modules: vec!["all-linear".into()], use_rslora: false },
        train: TrainSection { epochs: 2, batch_size: 4, grad_accum: 2, lr: 5e-3, warmup_ratio: 0.1, eval_every: 3, save_every: 2, early_stopping_patience: 0, sample_prompts: 2, device: "cpu".into(), dtype: "f32".into(), ..Default::default() },
        sweep: Default::default(),
    }
}

/// The training losses of a run's `metrics.jsonl`, one per optimizer step.
pub fn losses(dir: &Path) -> Vec<f64> {
    metric_lines(dir).iter().filter_map(|v| v["loss"].as_f64()).collect()
}

/// Every line of a run's `metrics.jsonl`.
pub fn metric_lines(dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).expect("metrics");
    text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).collect()
}
