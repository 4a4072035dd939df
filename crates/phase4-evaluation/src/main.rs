//! `phase4-evaluation`: evaluate every fine-tuned variant the same way as the baseline.
//! Subcommands: `run` (the study's variants, then paired comparisons against the baseline, per
//! benchmark part and over all items, into `results/comparison.json`), `eval` (any model,
//! adapter or OpenAI-compatible endpoint on any MCQ JSONL), `compare`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use phase4_evaluation::config::load_study;
use phase4_evaluation::remote::{RemoteBackend, RemoteConfig};
use phase4_evaluation::{compare, run, Variant, VariantKind};

#[derive(Parser)]
#[command(version, about = "Phase 4: evaluate fine-tuned variants the same way as the baseline")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate the variants listed under `evaluation.variants`, then compare each with the baseline.
    Run {
        /// Study config.
        #[arg(long, default_value = "config/study.yaml")]
        config: PathBuf,
        /// Profile of the `evaluation` section (`default`, `quick`).
        #[arg(long, default_value = "default")]
        profile: String,
        /// Evaluate only these variants (by name).
        #[arg(long)]
        only: Vec<String>,
    },
    /// Evaluate one model: a base, an adapter on it, a full model directory, or an endpoint.
    Eval {
        /// Study config supplying the evaluation settings (benchmark, modes, ...).
        #[arg(long, default_value = "config/study.yaml")]
        config: PathBuf,
        /// Profile of the `evaluation` section.
        #[arg(long, default_value = "default")]
        profile: String,
        /// Name of the result folder.
        #[arg(long)]
        name: String,
        /// Base model (GGUF, HF directory or hub id); default: the study's.
        #[arg(long)]
        model: Option<String>,
        /// PEFT adapter directory to apply.
        #[arg(long)]
        adapter: Option<PathBuf>,
        /// How to apply the adapter: lora, lora_merged or qlora.
        #[arg(long, default_value = "lora")]
        method: String,
        /// OpenAI-compatible endpoint (…/v1) instead of a local model.
        #[arg(long)]
        endpoint: Option<String>,
        /// Model name at the endpoint.
        #[arg(long, default_value = "default")]
        remote_model: String,
        /// MCQ JSONL to use instead of the study's benchmark.
        #[arg(long)]
        benchmark: Option<PathBuf>,
    },
    /// Paired comparison of two evaluated variants (McNemar, paired bootstrap).
    Compare {
        /// Results folder.
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// Reference variant.
        #[arg(long, default_value = "baseline")]
        a: String,
        /// Compared variant.
        #[arg(long)]
        b: String,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())).with_writer(std::io::stderr).init();
    match Cli::parse().command {
        Command::Run { config, profile, only } => {
            let study = load_study(&config, &profile)?;
            let variants: Vec<&Variant> = study.eval.variants.iter().filter(|v| only.is_empty() || only.contains(&v.name)).collect();
            if variants.is_empty() {
                anyhow::bail!("{}: no variant to evaluate (evaluation.variants is empty or --only matched none)", config.display());
            }
            let mut comparisons = vec![];
            for v in variants {
                let report = run::evaluate_variant(&study, v).with_context(|| format!("evaluating variant `{}`", v.name))?;
                println!("{}", run::headline(&report));
                if study.eval.results_dir.join("baseline/mcq_items.jsonl").exists() {
                    let c = compare::compare_dirs(&study.eval.results_dir, "baseline", &v.name, study.eval.bootstrap_resamples, study.eval.seed)?;
                    print_comparison(&c);
                    comparisons.push(c);
                } else {
                    tracing::warn!("no baseline results in {}; run phase 2 first for paired comparisons", study.eval.results_dir.display());
                }
            }
            let path = study.eval.results_dir.join("comparison.json");
            run::write_atomic(&path, &serde_json::to_vec_pretty(&comparisons)?)?;
            println!("results: {}", study.eval.results_dir.display());
        }
        Command::Eval { config, profile, name, model, adapter, method, endpoint, remote_model, benchmark } => {
            let mut study = load_study(&config, &profile)?;
            if let Some(b) = benchmark {
                study.eval.benchmark = b;
                study.eval.open_questions = None;
            }
            if let Some(m) = model {
                study.model.base = m;
            }
            let report = if let Some(url) = endpoint {
                let mut backend = RemoteBackend::new(RemoteConfig { endpoint: url.clone(), model: remote_model, ..RemoteConfig::default() })?;
                run::evaluate(&mut backend, &name, "remote", &study.eval, 0.0)?
            } else {
                let kind = match (adapter.is_some(), method.as_str()) {
                    (false, _) => VariantKind::Base,
                    (true, "lora") => VariantKind::Lora,
                    (true, "lora_merged") => VariantKind::LoraMerged,
                    (true, "qlora") => VariantKind::Qlora,
                    (true, other) => anyhow::bail!("--method {other}: expected lora, lora_merged or qlora"),
                };
                run::evaluate_variant(&study, &Variant { name: name.clone(), kind, path: adapter })?
            };
            println!("{}", run::headline(&report));
        }
        Command::Compare { results, a, b } => {
            let c = compare::compare_dirs(&results, &a, &b, 2000, 1234)?;
            print_comparison(&c);
        }
    }
    Ok(())
}

fn p_text(p: f64) -> String {
    if p < 0.001 { "< 0.001".to_string() } else { format!("= {p:.3}") }
}

fn print_comparison(c: &compare::Comparison) {
    // Parts first, recall leading: the taught facts are the question the study asks.
    let rank = |p: &str| ["recall", "control", "reasoning"].iter().position(|&x| x == p).unwrap_or(3);
    let mut parts: Vec<_> = c.by_part.iter().collect();
    parts.sort_by_key(|(k, _)| rank(k));
    for (part, pc) in parts {
        for m in &pc.modes {
            let b = &m.cluster_bootstrap;
            println!(
                "{} vs {} [{part} {}]: {:.1}% -> {:.1}% ({:+.1} pts, cluster 95% CI {:+.1} to {:+.1}, {} clusters, {:.1}% of resamples <= 0), McNemar p {}",
                c.b,
                c.a,
                m.mode,
                100.0 * m.acc_a,
                100.0 * m.acc_b,
                100.0 * b.diff,
                100.0 * b.ci95.0,
                100.0 * b.ci95.1,
                b.clusters,
                100.0 * b.share_at_or_below_zero,
                p_text(m.mcnemar.p_value)
            );
        }
    }
    for m in &c.modes {
        println!(
            "{} vs {} [all items {}]: {:.1}% -> {:.1}% ({:+.1} pts, 95% CI {:+.1} to {:+.1}), McNemar p {}",
            c.b,
            c.a,
            m.mode,
            100.0 * m.acc_a,
            100.0 * m.acc_b,
            100.0 * m.bootstrap.diff,
            100.0 * m.bootstrap.ci95.0,
            100.0 * m.bootstrap.ci95.1,
            p_text(m.mcnemar.p_value)
        );
    }
}
