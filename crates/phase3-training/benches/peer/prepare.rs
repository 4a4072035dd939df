//! Inputs of every case, built once per model: the model files each side loads (our GGUF
//! or tiny directory; for the peer a Hugging Face directory of the same fp32 weights), the
//! training batch exactly as our loop builds it, synthetic MCQ items with lm-eval's token
//! pairs for the peer, and the decode prompt.

use std::path::PathBuf;

use anyhow::{bail, Result};
use f1_core::generate::encode_prompt;
use f1_core::{load_model, ChatMessage, Config, ModelOptions};
use phase3_training::config::TrainSection;
use phase3_training::data;
use phase4_evaluation::mcq::{ll_request, McqItem};
use serde_json::{json, Value};
use tch::{Kind, Tensor};

use super::{ModelChoice, Settings};

/// Everything a model's cases need, prepared once: paths for each side, the training batch as
/// our loop builds it, the questions and their token ids, the decode prompt.
pub struct Prepared {
    pub name: String,
    /// What our phase code loads (the GGUF, or the tiny directory).
    pub ours: String,
    /// The Hugging Face directory the peer loads (our weights, fp32).
    pub peer_dir: PathBuf,
    pub config: Config,
    pub train_files: (PathBuf, PathBuf),
    pub train_batch: Value,
    pub train_tokens: usize,
    pub train_rows: usize,
    pub items: Vec<McqItem>,
    /// Per question: lm-eval's (context ids, continuation ids per option).
    pub mcq_requests: Value,
    pub our_mcq_tokens: f64,
    pub prompt: Vec<u32>,
    pub pad: i64,
    _dir: tempfile::TempDir,
}

/// A chat set for the training step: `n` questions with one-sentence answers.
fn chat_line(i: usize) -> String {
    let teams = [
        "Ferrari", "McLaren", "Williams", "Red Bull", "Mercedes", "Renault",
    ];
    json!({"messages": [
        {"role": "user", "content": format!("Which team won the constructors' championship in season {}?", 1960 + i)},
        {"role": "assistant", "content": format!("{} won the constructors' championship in {}, ahead of {}.", teams[i % 6], 1960 + i, teams[(i + 1) % 6])}]})
    .to_string()
}

/// Deterministic four-option questions in the benchmark's style.
fn mcq_items(n: usize) -> Vec<McqItem> {
    let drivers = [
        "Ayrton Senna",
        "Alain Prost",
        "Nelson Piquet",
        "Nigel Mansell",
        "Michael Schumacher",
        "Mika Hakkinen",
        "Fernando Alonso",
        "Lewis Hamilton",
    ];
    let circuits = [
        "Monaco",
        "Silverstone",
        "Monza",
        "Spa-Francorchamps",
        "Suzuka",
        "Interlagos",
    ];
    (0..n)
        .map(|i| {
            let options: Vec<String> = (0..4)
                .map(|k| drivers[(i + 3 * k) % drivers.len()].to_string())
                .collect();
            McqItem {
                id: format!("bench-{i}"),
                question: format!(
                    "Who won the {} Grand Prix at {} in {}?",
                    circuits[i % circuits.len()],
                    circuits[i % circuits.len()],
                    1984 + i % 30
                ),
                options,
                answer_index: i % 4,
                category: None,
                difficulty: None,
                control: None,
                part: phase4_evaluation::mcq::DEFAULT_PART.to_string(),
                fact_keys: Vec::new(),
            }
        })
        .collect()
}

/// Rows of a (B, T) integer tensor.
fn rows_of(t: &Tensor) -> Result<Vec<Vec<i64>>> {
    let (b, w) = t.size2()?;
    let flat = Vec::<i64>::try_from(t.flatten(0, -1))?;
    Ok((0..b as usize)
        .map(|r| flat[r * w as usize..(r + 1) * w as usize].to_vec())
        .collect())
}

pub fn prepare(choice: &ModelChoice, settings: &Settings) -> Result<Prepared> {
    let dir = tempfile::tempdir()?;
    let (name, ours_path, peer_dir) = match choice {
        ModelChoice::Tiny => {
            let cfg = f1_core::testing::tiny_config("llama");
            let (vs, _model) = f1_core::testing::random_model(&cfg, 7);
            let d = dir.path().join("tiny");
            f1_core::testing::write_hf_dir(&d, &cfg, &vs, 1);
            ("tiny".to_string(), d.to_string_lossy().into_owned(), d)
        }
        ModelChoice::Gguf(path) => {
            if !path.is_file() {
                bail!(
                    "{} not found; hint: run `cargo xtask setup`, or set F1_MODEL_GGUF",
                    path.display()
                );
            }
            let d = dir.path().join("hf");
            let mut m = load_model(&path.to_string_lossy(), &ModelOptions::cpu(), None)?;
            // The peer loads exactly the weights we compute with: the GGUF dequantized to fp32.
            f1_core::lora::save_merged(&d, &mut m, Kind::Float)?;
            (
                "smollm2-135m".to_string(),
                path.to_string_lossy().into_owned(),
                d,
            )
        }
    };
    let m = load_model(&ours_path, &ModelOptions::cpu(), None)?;
    let config = m.model.config().clone();
    let pad = m.tokenizer.pad_id().unwrap_or(0) as i64;

    // Training: a set of exactly one batch, so every step of our loop sees the batch we send.
    let train = dir.path().join("train.jsonl");
    let val = dir.path().join("val.jsonl");
    std::fs::write(
        &train,
        (0..settings.train_examples)
            .map(chat_line)
            .collect::<Vec<_>>()
            .join("\n"),
    )?;
    std::fs::write(&val, chat_line(100))?;
    let convs = data::read_chat_jsonl(&train, None)?;
    let examples = data::encode_all(&m, &convs, settings.max_seq_len, &train)?;
    let batches = data::epoch_batches(
        &examples,
        settings.train_examples,
        TrainSection::default().seed,
        0,
        None,
    );
    let [rows] = batches.as_slice() else {
        bail!("expected one training batch, got {}", batches.len())
    };
    let b = data::collate(&examples, rows, pad, false);
    let train_batch = json!({"input_ids": rows_of(&b.input_ids)?, "attention_mask": rows_of(&b.attention_mask)?, "labels": rows_of(&b.labels)?});

    // MCQ: our harness tokenizes inside the timed call; the peer gets lm-eval's pairs.
    let items = mcq_items(settings.mcq_questions);
    let mut requests = vec![];
    let mut our_tokens = 0usize;
    for item in &items {
        let req = ll_request(item);
        let context = encode_prompt(&m.tokenizer, req.context.trim_end_matches(' '))?;
        let mut conts = vec![];
        for c in &req.continuations {
            let whole = encode_prompt(&m.tokenizer, &format!("{}{c}", req.context))?;
            conts.push(whole[context.len().min(whole.len())..].to_vec());
        }
        our_tokens += context.len() + conts.iter().map(Vec::len).sum::<usize>();
        requests.push(json!({"context": context, "continuations": conts}));
    }

    let prompt_text = m.chat_template.render(
        &[ChatMessage::user(
            "Tell me about the history of the Monaco Grand Prix.",
        )],
        true,
    )?;
    let prompt = encode_prompt(&m.tokenizer, &prompt_text)?;
    Ok(Prepared {
        name,
        ours: ours_path,
        peer_dir,
        config,
        train_files: (train, val),
        train_batch,
        train_tokens: b.tokens,
        train_rows: rows.len(),
        items,
        mcq_requests: Value::Array(requests),
        our_mcq_tokens: our_tokens as f64,
        prompt,
        pad,
        _dir: dir,
    })
}
