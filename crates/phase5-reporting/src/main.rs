//! `phase5-reporting`: the report and the demo. Subcommands: `chat` (terminal chat with
//! streaming output and the model's own chat template).

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use f1_core::{load_model, GenerationConfig, ModelOptions};
use phase5_reporting::chat::ChatSession;

#[derive(Parser)]
#[command(version, about = "Phase 5: the report and the demo")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Chat with a model in the terminal (type /reset to clear the history, /exit to quit).
    Chat(ChatArgs),
}

#[derive(Args)]
struct ChatArgs {
    /// Model: a .gguf file, a Hugging Face model directory, or a hub id (org/name).
    #[arg(long, default_value_os_t = f1_core::load::default_base_model())]
    model: PathBuf,
    /// Override the model's chat template with a named one (chatml, llama2, llama3, mistral, alpaca).
    #[arg(long)]
    template: Option<String>,
    /// System prompt.
    #[arg(long)]
    system: Option<String>,
    /// Ask one question, print the answer and exit (no interactive loop).
    #[arg(long)]
    prompt: Option<String>,
    /// Most tokens per answer.
    #[arg(long, default_value_t = 256)]
    max_new_tokens: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Nucleus sampling threshold.
    #[arg(long)]
    top_p: Option<f64>,
    /// Repetition penalty (1 = none).
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f64,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Device: auto, cpu, cuda, cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Dtype: auto, f32, bf16, f16.
    #[arg(long, default_value = "auto")]
    dtype: String,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into())).with_writer(std::io::stderr).init();
    match Cli::parse().command {
        Command::Chat(args) => chat(args),
    }
}

fn chat(args: ChatArgs) -> anyhow::Result<()> {
    let opts = ModelOptions::parse(&args.device, &args.dtype)?;
    let spec = args.model.to_string_lossy();
    let model = load_model(&spec, &opts, args.template.as_deref()).with_context(|| format!("loading model {spec}"))?;
    let generation = GenerationConfig { max_new_tokens: args.max_new_tokens, temperature: args.temperature, top_p: args.top_p, repetition_penalty: args.repetition_penalty, seed: args.seed, ..Default::default() };
    let mut session = ChatSession::new(&model, args.system, generation);
    let mut stdout = std::io::stdout();
    let answer = |session: &mut ChatSession, question: &str| -> anyhow::Result<()> {
        let out = session.reply(question, |t| {
            print!("{t}");
            let _ = std::io::stdout().flush();
        })?;
        println!();
        tracing::info!(tokens = out.completion_tokens, ms = out.elapsed.as_millis() as u64, "answer");
        Ok(())
    };
    if let Some(q) = args.prompt {
        return answer(&mut session, &q);
    }
    eprintln!("chatting with {spec} (template: {}); /reset clears the history, /exit quits", model.chat_template.name());
    let stdin = std::io::stdin();
    loop {
        print!("> ");
        stdout.flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        match line.trim() {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                session.reset();
                eprintln!("(history cleared)");
            }
            q => answer(&mut session, q)?,
        }
    }
    Ok(())
}
