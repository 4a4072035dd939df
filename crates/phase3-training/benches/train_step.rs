//! Training throughput on the real base model (run by `cargo xtask bench`): LoRA, QLoRA and
//! full fine-tuning through `phase3_training::train` itself (no special benchmark path) on a
//! synthetic chat set, reporting median training tokens/s over the steps after the first and
//! model FLOPs utilisation against an fp32 matmul peak measured in the same run
//! (6N FLOPs per token for full fine-tuning, 4N for adapters — forward plus activation
//! gradients, no weight gradients for the frozen base — plus attention). Writes
//! `results/bench/train.json`.

use std::path::PathBuf;

use phase3_training::config::{DataConfig, LoraSection, TrainSection};
use phase3_training::{train, Method, TrainConfig};

const STEPS: usize = 6;

#[path = "shared/peak.rs"]
mod peak;
use peak::matmul_peak_gflops as matmul_peak;

fn main() -> anyhow::Result<()> {
    let model = std::env::var("F1_MODEL_GGUF").map(PathBuf::from).unwrap_or_else(|_| f1_core::load::default_base_model());
    let dir = tempfile::tempdir()?;
    let teams = ["Ferrari", "McLaren", "Williams", "Red Bull", "Mercedes", "Renault"];
    let line = |i: usize| serde_json::json!({"messages": [
        {"role": "user", "content": format!("Which team won the constructors' championship in season {}?", 1960 + i)},
        {"role": "assistant", "content": format!("{} won the constructors' championship in {}, ahead of {}.", teams[i % 6], 1960 + i, teams[(i + 1) % 6])}]}).to_string();
    std::fs::write(dir.path().join("train.jsonl"), (0..64).map(line).collect::<Vec<_>>().join("\n"))?;
    std::fs::write(dir.path().join("val.jsonl"), (64..68).map(line).collect::<Vec<_>>().join("\n"))?;
    let peak = matmul_peak();
    let cfg0 = f1_core::load_model(&model.to_string_lossy(), &f1_core::ModelOptions::cpu(), None)?.model.config().clone();
    let n = cfg0.num_parameters() as f64;
    let mut rows = vec![];
    println!("fp32 matmul peak: {peak:.1} GFLOP/s");
    for method in [Method::Lora, Method::Qlora, Method::Full] {
        let name = format!("{method:?}").to_lowercase();
        let cfg = TrainConfig {
            name: name.clone(),
            method,
            model: model.to_string_lossy().into_owned(),
            output_dir: dir.path().join(&name),
            data: DataConfig { train: dir.path().join("train.jsonl"), validation: dir.path().join("val.jsonl"), max_seq_len: 256, max_train_examples: None, max_eval_examples: Some(4), packing: false, ..Default::default() },
            lora: LoraSection::default(),
            train: TrainSection { batch_size: 4, grad_accum: 1, max_steps: Some(STEPS), eval_every: 0, save_every: 0, sample_prompts: 0, lr: if method == Method::Full { 2e-5 } else { 2e-4 }, device: "cpu".into(), dtype: "f32".into(), ..Default::default() },
            sweep: Default::default(),
        };
        let summary = train(&cfg, false)?;
        let metrics = std::fs::read_to_string(cfg.output_dir.join("metrics.jsonl"))?;
        let tps: Vec<f64> = metrics.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).filter_map(|v| v["tokens_per_s"].as_f64()).skip(1).collect();
        let tps = peak::median(&tps);
        // Mean tokens per example actually trained on (attention cost grows with it).
        let seq = summary.tokens_seen as f64 / (summary.steps * cfg.train.batch_size) as f64;
        let attn = 2.0 * cfg0.num_hidden_layers as f64 * seq * cfg0.hidden_size as f64;
        let per_token = if method == Method::Full { 6.0 * n + 3.0 * attn } else { 4.0 * n + 3.0 * attn };
        let mfu = tps * per_token / (peak * 1e9);
        println!("train  {name:<5}  {tps:8.1} tokens/s  MFU {:5.1}% of measured peak  (peak RSS {:.0} MiB, trainable {:.2}%)", mfu * 100.0, summary.peak_rss_mib, summary.trainable_share * 100.0);
        rows.push(serde_json::json!({"case": format!("train_{name}"), "tokens_per_s": tps, "mfu": mfu, "flops_per_token": per_token, "peak_rss_mib": summary.peak_rss_mib, "trainable_params": summary.trainable_params, "steps": STEPS}));
    }
    let root = std::env::var_os("F1_ROOT").map(PathBuf::from).unwrap_or_default();
    std::fs::create_dir_all(root.join("results/bench"))?;
    std::fs::write(root.join("results/bench/train.json"), serde_json::to_string_pretty(&serde_json::json!({"model": model, "matmul_peak_gflops": peak, "threads": tch::get_num_threads(), "cases": rows}))?)?;
    Ok(())
}
