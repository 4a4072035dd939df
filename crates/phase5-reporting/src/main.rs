//! `phase5-reporting`: the report and the demo. Subcommands: `chat` (terminal chat with
//! streaming output and the model's own chat template) and `serve` (any study variant behind an
//! OpenAI-compatible HTTP API with a web chat page; see `phase5_reporting::serve`), `run` (the
//! study report from the outputs a study config names; the last phase of `cargo xtask run-all`)
//! and `report` (the same from explicit paths; see `phase5_reporting::report`).

use std::io::{BufRead, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use f1_core::{load_model, GenerationConfig, ModelOptions};
use phase4_evaluation::{Variant, VariantKind};
use phase5_reporting::chat::ChatSession;
use phase5_reporting::report::FontChoice;

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
    /// Serve a model (base, adapter or full fine-tune) over an OpenAI-compatible HTTP API, with a
    /// chat page at `/`.
    Serve(ServeArgs),
    /// Build the study report from the phase outputs named by a study config (what
    /// `cargo xtask run-all` runs as the last phase).
    Run(RunArgs),
    /// Build the study report from explicit paths.
    Report(ReportArgs),
}

#[derive(Args)]
struct RunArgs {
    /// Study config.
    #[arg(long, default_value = "config/study.yaml")]
    config: PathBuf,
    /// Profile of the config's `evaluation` section (default, quick, ...).
    #[arg(long, default_value = "default")]
    profile: String,
    /// TrueType font for the PNG plots (default: F1_REPORT_FONT, else a system font).
    #[arg(long)]
    font: Option<PathBuf>,
}

#[derive(Args)]
struct ReportArgs {
    /// Results folder: `<variant>/eval.json`, `comparison.json`, `manifest.json`.
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Output folder for the plots, report.md and report.html.
    #[arg(long, default_value = "results/reports")]
    out: PathBuf,
    /// Folder of training runs (`<run>/summary.json`, `<run>/metrics.jsonl`; sweeps one deeper).
    #[arg(long, default_value = "models/adapters")]
    runs: PathBuf,
    /// Phase 1's data card.
    #[arg(long, default_value = "data/curated/data_card.json")]
    data_card: PathBuf,
    /// Run manifest [default: <results>/manifest.json].
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// TrueType font for the PNG plots (default: F1_REPORT_FONT, else a system font).
    #[arg(long)]
    font: Option<PathBuf>,
    /// Write SVG plots only.
    #[arg(long, conflicts_with = "font")]
    no_png: bool,
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

#[derive(Args)]
struct ServeArgs {
    /// Base model: a .gguf file, a Hugging Face model directory, or a hub id (org/name).
    #[arg(long, default_value_os_t = f1_core::load::default_base_model())]
    model: PathBuf,
    /// A PEFT adapter directory (phase 3 output) to apply on the base model.
    #[arg(long, conflicts_with = "full")]
    adapter: Option<PathBuf>,
    /// How the adapter was trained and is applied.
    #[arg(long, value_enum, default_value_t = Method::Lora, requires = "adapter")]
    method: Method,
    /// A full fine-tune exported as a Hugging Face model directory (replaces --model).
    #[arg(long)]
    full: Option<PathBuf>,
    /// Model name clients use (`model` in requests, `/v1/models`).
    #[arg(long, default_value = "f1-smollm2")]
    name: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 = any free port; the bound address is printed).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Device: auto, cpu, cuda, cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Dtype: auto, f32, bf16, f16.
    #[arg(long, default_value = "auto")]
    dtype: String,
}

/// How an adapter is put on the base model (as `phase4_evaluation::VariantKind` names them).
#[derive(Clone, Copy, ValueEnum)]
enum Method {
    /// LoRA applied on the fly on the full-precision base.
    Lora,
    /// LoRA folded into the base weights (same outputs, faster).
    LoraMerged,
    /// QLoRA: the adapter on the NF4-quantized base, as it was trained.
    Qlora,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into())).with_writer(std::io::stderr).init();
    match Cli::parse().command {
        Command::Chat(args) => chat(args),
        Command::Serve(args) => serve(args),
        Command::Run(args) => {
            let paths = phase5_reporting::report::ReportPaths::from_study(&args.config, &args.profile)?;
            report(&paths, args.font.map_or(FontChoice::Auto, FontChoice::File))
        }
        Command::Report(args) => {
            let mut paths = phase5_reporting::report::ReportPaths::new(&args.results, &args.out);
            paths.runs = args.runs;
            paths.data_card = args.data_card;
            if let Some(m) = args.manifest {
                paths.manifest = m;
            }
            let font = match (args.no_png, args.font) {
                (true, _) => FontChoice::Off,
                (false, Some(f)) => FontChoice::File(f),
                (false, None) => FontChoice::Auto,
            };
            report(&paths, font)
        }
    }
}

/// Build the report and print the files written, one per line.
fn report(paths: &phase5_reporting::report::ReportPaths, font: FontChoice) -> anyhow::Result<()> {
    let opts = phase5_reporting::report::ReportOptions { font };
    let produced = phase5_reporting::report::build(paths, &opts).with_context(|| format!("building the report in {}", paths.out.display()))?;
    for f in &produced.files {
        println!("{}", f.display());
    }
    if !produced.missing.is_empty() {
        eprintln!("report: {} expected inputs were missing (listed at the end of the report)", produced.missing.len());
    }
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let opts = ModelOptions::parse(&args.device, &args.dtype)?;
    let (kind, path) = match (&args.full, &args.adapter) {
        (Some(dir), _) => (VariantKind::Full, Some(dir.clone())),
        (None, Some(dir)) => (
            match args.method {
                Method::Lora => VariantKind::Lora,
                Method::LoraMerged => VariantKind::LoraMerged,
                Method::Qlora => VariantKind::Qlora,
            },
            Some(dir.clone()),
        ),
        (None, None) => (VariantKind::Base, None),
    };
    let variant = Variant { name: args.name.clone(), kind, path };
    let base = args.model.to_string_lossy();
    let (loaded, description) = variant.load(&base, &opts).with_context(|| format!("loading {kind:?} variant on {base}"))?;
    let addr: SocketAddr = (args.host.as_str(), args.port)
        .to_socket_addrs()
        .with_context(|| format!("resolving --host {}", args.host))?
        .next()
        .with_context(|| format!("--host {} resolves to no address", args.host))?;
    let server = phase5_reporting::serve::spawn(loaded, args.name.clone(), addr)?;
    println!("serving {description} as `{}` on {} (OpenAI base URL {}/v1; chat page at /)", args.name, server.url(), server.url());
    server.wait()?;
    Ok(())
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
