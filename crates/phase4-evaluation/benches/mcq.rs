//! Multiple-choice scoring speed on the real base model (run by `cargo xtask bench`):
//! questions per second of the log-likelihood mode through the harness's own path (all options
//! of a question over one shared context), against scoring every (question, option) pair on its
//! own as lm-evaluation-harness does, and of the generative mode. Uses phase 1's benchmark;
//! warm-up excluded, median of 5 repetitions. Prints a table and writes
//! `results/bench/mcq.json`.

use std::time::Instant;

use anyhow::Context as _;
use f1_core::{load_model, ModelOptions};
use phase4_evaluation::mcq::{ll_request, read_mcq, score_generative, score_loglikelihood};
use phase4_evaluation::{Backend, LocalBackend};

const REPS: usize = 5;
const LL_QUESTIONS: usize = 48;
const GEN_QUESTIONS: usize = 16;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let root = std::env::var_os("F1_ROOT").map(std::path::PathBuf::from).unwrap_or_default();
    let bench_path = root.join("data/curated/benchmark.jsonl");
    let items = read_mcq(&bench_path).with_context(|| "the MCQ bench needs phase 1's benchmark (hint: `cargo xtask run-all --profile quick` writes it)")?;
    let model_path = std::env::var("F1_MODEL_GGUF").map(std::path::PathBuf::from).unwrap_or_else(|_| f1_core::load::default_base_model());
    let loaded = load_model(&model_path.to_string_lossy(), &ModelOptions::auto(), None)?;
    let mut backend = LocalBackend::new(loaded, "bench");
    let ll_items = &items[..LL_QUESTIONS.min(items.len())];
    let gen_items = &items[..GEN_QUESTIONS.min(items.len())];

    let time = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<f64> {
        f()?; // warm-up
        let mut secs = vec![];
        for _ in 0..REPS {
            let t = Instant::now();
            f()?;
            secs.push(t.elapsed().as_secs_f64());
        }
        Ok(median(secs))
    };
    let grouped = time(&mut || score_loglikelihood(&mut backend, ll_items, 16).map(|_| ()).map_err(Into::into))?;
    // The same requests split into one request per option: each option re-reads the question.
    let singles: Vec<_> = ll_items.iter().flat_map(|i| {
        let r = ll_request(i);
        r.continuations.into_iter().map(move |c| phase4_evaluation::LlRequest { context: r.context.clone(), continuations: vec![c] })
    }).collect();
    let separate = time(&mut || backend.loglikelihood(&singles).map(|_| ()).map_err(Into::into))?;
    let generative = time(&mut || score_generative(&mut backend, gen_items, None, 12, 8).map(|_| ()).map_err(Into::into))?;

    let rows = vec![
        serde_json::json!({"case": "mcq_loglikelihood_shared_context", "questions": ll_items.len(), "questions_per_s": ll_items.len() as f64 / grouped}),
        serde_json::json!({"case": "mcq_loglikelihood_per_option", "questions": ll_items.len(), "questions_per_s": ll_items.len() as f64 / separate}),
        serde_json::json!({"case": "mcq_generative", "questions": gen_items.len(), "questions_per_s": gen_items.len() as f64 / generative, "max_new_tokens": 12, "batch": 8}),
    ];
    for r in &rows {
        println!("mcq  {:<34} {:8.2} questions/s  ({} questions)", r["case"].as_str().unwrap_or("?"), r["questions_per_s"].as_f64().unwrap_or(0.0), r["questions"]);
    }
    println!("shared-context scoring is {:.2}x per-option scoring", separate / grouped);
    let out_dir = root.join("results/bench");
    std::fs::create_dir_all(&out_dir)?;
    let report = serde_json::json!({"model": model_path, "reps": REPS, "runtime": f1_core::device::RuntimeInfo::collect(), "cases": rows});
    std::fs::write(out_dir.join("mcq.json"), serde_json::to_string_pretty(&report)?)?;
    Ok(())
}
