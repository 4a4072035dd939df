//! Decode speed on the real base model (run by `cargo xtask bench`): greedy generation at
//! batch 1 and batch 8 through the same `generate` the phases use, after a warm-up, median of
//! 5 repetitions. Prints a table and writes `results/bench/decode.json`.

use std::time::Instant;

use f1_core::generate::{encode_prompt, generate_ids, GenerationConfig};
use f1_core::{load_model, ChatMessage, ModelOptions};

const REPS: usize = 5;
const NEW_TOKENS: usize = 64;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let model_path = std::env::var("F1_MODEL_GGUF").map(std::path::PathBuf::from).unwrap_or_else(|_| f1_core::load::default_base_model());
    let started = Instant::now();
    let m = load_model(&model_path.to_string_lossy(), &ModelOptions::auto(), None)?;
    let load_s = started.elapsed().as_secs_f64();
    let prompt = m.chat_template.render(&[ChatMessage { role: "user".into(), content: "Tell me about the history of the Monaco Grand Prix.".into() }], true)?;
    let ids = encode_prompt(&m.tokenizer, &prompt)?;
    // Never stop early: every repetition decodes exactly NEW_TOKENS tokens.
    let cfg = GenerationConfig { stop_token_ids: vec![], ..GenerationConfig::greedy(NEW_TOKENS) };
    let mut rows = vec![];
    for batch in [1usize, 8] {
        let prompts = vec![ids.clone(); batch];
        let run = || -> anyhow::Result<(f64, f64)> {
            let t = Instant::now();
            let out = generate_ids(&m.model, &m.tokenizer, &prompts, &GenerationConfig { max_new_tokens: NEW_TOKENS, ..cfg.clone() }, |_, _| {})?;
            let secs = t.elapsed().as_secs_f64();
            let tokens: usize = out.iter().map(|o| o.completion_tokens).sum();
            Ok((tokens as f64 / secs, out[0].time_to_first_token.as_secs_f64()))
        };
        run()?; // warm-up
        let samples: Vec<(f64, f64)> = (0..REPS).map(|_| run()).collect::<anyhow::Result<_>>()?;
        let tps = median(samples.iter().map(|s| s.0).collect());
        let ttft = median(samples.iter().map(|s| s.1).collect());
        println!("decode  batch {batch:>2}  {tps:8.1} tokens/s  (time to first token {:.0} ms, prompt {} tokens, {NEW_TOKENS} new)", ttft * 1e3, ids.len());
        rows.push(serde_json::json!({"case": "greedy_decode", "batch": batch, "tokens_per_s": tps, "ttft_ms": ttft * 1e3, "prompt_tokens": ids.len(), "new_tokens": NEW_TOKENS, "reps": REPS}));
    }
    let info = f1_core::device::RuntimeInfo::collect();
    println!("model load {load_s:.2} s; {} threads; device {} / {}", info.threads, info.default_device, info.default_dtype);
    let root = std::env::var_os("F1_ROOT").map(std::path::PathBuf::from).unwrap_or_default();
    let out_dir = root.join("results/bench");
    std::fs::create_dir_all(&out_dir)?;
    let report = serde_json::json!({"model": model_path, "load_s": load_s, "runtime": info, "cases": rows});
    std::fs::write(out_dir.join("decode.json"), serde_json::to_string_pretty(&report)?)?;
    Ok(())
}
