//! Load a model by path (a .gguf file, a Hugging Face directory or a hub id) and answer one
//! question with its chat template, streaming the answer:
//!
//! `cargo run --release -p f1-core --example generate -- models/base/SmolLM2-135M-Instruct.Q4_1.gguf "What is DRS in Formula 1?"`

use std::io::Write;

use f1_core::generate::{generate, GenerationConfig};
use f1_core::{load_model, ChatMessage, ModelOptions};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(model), Some(question)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: generate MODEL QUESTION");
    };
    let m = load_model(&model, &ModelOptions::auto(), None)?;
    let prompt = m.chat_template.render(&[ChatMessage { role: "user".into(), content: question }], true)?;
    generate(&m.model, &m.tokenizer, &[prompt], &GenerationConfig::greedy(128), |_, text| {
        print!("{text}");
        let _ = std::io::stdout().flush();
    })?;
    println!();
    Ok(())
}
