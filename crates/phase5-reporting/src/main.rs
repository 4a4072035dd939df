//! `phase5-reporting`: the report and the demo. Subcommands: `chat` (terminal chat with
//! streaming output and the model's own chat template) and `serve` (any study variant behind an
//! OpenAI-compatible HTTP API with a web chat page; see `phase5_reporting::serve`), `run` (the
//! study report from the outputs a study config names; the last phase of `cargo xtask run-all`)
//! and `report` (the same from explicit paths; see `phase5_reporting::report`).

use std::io::{BufRead, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use f1_core::{load_model, GenerationConfig, ModelOptions};
use phase4_evaluation::{Variant, VariantKind};
use phase5_reporting::chat::ChatSession;
use phase5_reporting::report::FontChoice;
use phase5_reporting::serve::{ServeOptions, ServedModel};

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
    /// Serve one or more variants (base, adapters, full fine-tunes) side by side over an
    /// OpenAI-compatible HTTP API, with a chat page at `/`.
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
    /// A PEFT adapter directory (phase 3 output) to apply on the base model; served as --name.
    #[arg(long, conflicts_with = "full")]
    adapter: Option<PathBuf>,
    /// How the adapter was trained and is applied.
    #[arg(long, value_enum, default_value_t = Method::Lora, requires = "adapter")]
    method: Method,
    /// A full fine-tune exported as a Hugging Face model directory; served as --name.
    #[arg(long)]
    full: Option<PathBuf>,
    /// Name of the first variant (the base, or --adapter / --full when given), which also
    /// answers requests that name no model.
    #[arg(long, default_value = "f1-smollm2")]
    name: String,
    /// Name under which the base model is served too when --adapter or --full is given.
    #[arg(long, default_value = "base")]
    base_name: String,
    /// More variants side by side, as NAME=KIND:PATH (KIND: lora, lora_merged, qlora, full) or
    /// NAME=base (repeatable).
    #[arg(long = "variant", value_name = "NAME=KIND:PATH")]
    variants: Vec<String>,
    /// Also serve every variant of this study config's `evaluation.variants`.
    #[arg(long)]
    study: Option<PathBuf>,
    /// Address to listen on (loopback by default: pass 0.0.0.0 to expose the server).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 = any free port; the bound address is printed).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Bearer token required on /v1/* (default: F1_SERVE_API_KEY; unset or empty = open API).
    /// The chat page and /health stay open; the page has a field for the key.
    #[arg(long)]
    api_key: Option<String>,
    /// Largest request body, bytes (larger gets 413).
    #[arg(long, default_value_t = ServeOptions::default().max_body_bytes)]
    max_body_bytes: usize,
    /// Most prompt tokens + max_tokens per request (over it gets 400; never above the context).
    #[arg(long, default_value_t = ServeOptions::default().max_total_tokens)]
    max_total_tokens: usize,
    /// Inference threads (different variants run in parallel; one variant runs one request at
    /// a time).
    #[arg(long, default_value_t = ServeOptions::default().workers)]
    workers: usize,
    /// Requests that may wait for a worker; beyond workers + queue a request gets 429 with
    /// Retry-After.
    #[arg(long, default_value_t = ServeOptions::default().queue)]
    queue: usize,
    /// Time limit of one request, seconds (504, or an error event in a started stream).
    #[arg(long, default_value_t = ServeOptions::default().timeout.as_secs_f64())]
    timeout_secs: f64,
    /// A web origin (https://app.example:8443) whose pages may call the API from a browser
    /// (repeatable). Without it only the server's own chat page may; other pages get 403.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allow_origins: Vec<String>,
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
    let first = match (&args.full, &args.adapter) {
        (Some(dir), _) => Variant { name: args.name.clone(), kind: VariantKind::Full, path: Some(dir.clone()) },
        (None, Some(dir)) => {
            let kind = match args.method {
                Method::Lora => VariantKind::Lora,
                Method::LoraMerged => VariantKind::LoraMerged,
                Method::Qlora => VariantKind::Qlora,
            };
            Variant { name: args.name.clone(), kind, path: Some(dir.clone()) }
        }
        (None, None) => Variant { name: args.name.clone(), kind: VariantKind::Base, path: None },
    };
    // The base is always there to compare with.
    let mut variants = vec![first];
    if variants[0].kind != VariantKind::Base {
        variants.push(Variant { name: args.base_name.clone(), kind: VariantKind::Base, path: None });
    }
    for spec in &args.variants {
        variants.push(parse_variant(spec)?);
    }
    if let Some(study) = &args.study {
        let study = phase4_evaluation::config::load_study(study, "default")?;
        variants.extend(study.eval.variants);
    }
    let api_key = match args.api_key {
        Some(k) => Some(k),
        None => std::env::var("F1_SERVE_API_KEY").ok().filter(|k| !k.is_empty()),
    };
    // A day is far beyond any generation; a larger value (1e20 made Duration panic) is a typo.
    const MAX_TIMEOUT_SECS: f64 = 86_400.0;
    if !(args.timeout_secs.is_finite() && args.timeout_secs > 0.0 && args.timeout_secs <= MAX_TIMEOUT_SECS) {
        anyhow::bail!("--timeout-secs must be a number of seconds in (0, {MAX_TIMEOUT_SECS}], got {}", args.timeout_secs);
    }
    let options = ServeOptions { api_key, max_body_bytes: args.max_body_bytes, max_total_tokens: args.max_total_tokens, workers: args.workers, queue: args.queue, timeout: Duration::from_secs_f64(args.timeout_secs), allowed_origins: args.allow_origins };

    let base = args.model.to_string_lossy();
    let mut models = Vec::with_capacity(variants.len());
    for (i, variant) in variants.iter().enumerate() {
        if variants[..i].iter().any(|v| v.name == variant.name) {
            anyhow::bail!("two variants are named `{}`; give each --variant its own NAME (--name and --base-name name the first two)", variant.name);
        }
        eprintln!("[{}/{}] loading `{}` ({:?})", i + 1, variants.len(), variant.name, variant.kind);
        let (loaded, description) = variant.load(&base, &opts).with_context(|| format!("loading variant `{}` ({:?}) on {base}", variant.name, variant.kind))?;
        models.push(ServedModel { name: variant.name.clone(), description, loaded });
    }
    let addr: SocketAddr = (args.host.as_str(), args.port)
        .to_socket_addrs()
        .with_context(|| format!("resolving --host {}", args.host))?
        .next()
        .with_context(|| format!("--host {} resolves to no address", args.host))?;
    let lines: Vec<String> = models.iter().map(|m| format!("  {}: {}", m.name, m.description)).collect();
    let auth = if options.api_key.is_some() { "bearer token required on /v1/*" } else { "no API key (open API)" };
    let (workers, queue) = (options.workers, options.queue);
    let server = phase5_reporting::serve::spawn(models, options, addr)?;
    println!("serving on {} (OpenAI base URL {}/v1; chat page at /; {auth}; {workers} worker(s), queue {queue})", server.url(), server.url());
    println!("{}", lines.join("\n"));
    std::io::stdout().flush()?;
    server.wait()?;
    Ok(())
}

/// A `--variant` value: `NAME=KIND:PATH`, or `NAME=base`.
fn parse_variant(spec: &str) -> anyhow::Result<Variant> {
    let hint = "expected NAME=KIND:PATH (KIND: lora, lora_merged, qlora, full) or NAME=base";
    let (name, rest) = spec.split_once('=').with_context(|| format!("--variant {spec}: {hint}"))?;
    let (kind, path) = match rest.split_once(':') {
        Some((kind, path)) => (kind, Some(PathBuf::from(path))),
        None => (rest, None),
    };
    let kind: VariantKind = serde_json::from_value(serde_json::Value::String(kind.replace('-', "_"))).map_err(|_| anyhow::anyhow!("--variant {spec}: unknown kind `{kind}`; {hint}"))?;
    if name.is_empty() || (kind != VariantKind::Base && path.is_none()) {
        anyhow::bail!("--variant {spec}: {hint}");
    }
    Ok(Variant { name: name.to_string(), kind, path })
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
