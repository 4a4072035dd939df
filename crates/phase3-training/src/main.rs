//! `phase3-training`: fine-tune the base model with LoRA, QLoRA or full-parameter training.
//!
//! `phase3-training train --config config/lora.yaml [--resume] [--max-steps N]` runs one config
//! (or every run of its `sweep`); `--resume` continues from the newest checkpoint.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use phase3_training::{config, train, train_with, Resume, TrainConfig};

#[derive(Parser)]
#[command(version, about = "Phase 3: LoRA, QLoRA and full-parameter fine-tuning")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train every run of the study config's `training:` section (resuming interrupted runs).
    Run {
        /// Study config.
        #[arg(long, default_value = "config/study.yaml")]
        config: PathBuf,
        /// Profile of the `training` section (`default`, `quick`, `gpu`).
        #[arg(long, default_value = "default")]
        profile: String,
    },
    /// Train one config (every run of its sweep, if it has one).
    Train {
        /// YAML config (config/lora.yaml, config/qlora.yaml, config/full.yaml).
        #[arg(long)]
        config: PathBuf,
        /// Continue from the newest checkpoint in the output directory.
        #[arg(long)]
        resume: bool,
        /// Stop after this many optimizer steps (overrides the config).
        #[arg(long)]
        max_steps: Option<usize>,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())).with_writer(std::io::stderr).init();
    let root = std::env::var_os("F1_ROOT").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    match Cli::parse().command {
        Command::Run { config, profile } => {
            for run in phase3_training::study::study_runs(&config, &profile, &root)? {
                // A finished run is reported as it is, an interrupted one continues from its
                // newest checkpoint, and one whose config, data or model changed starts over
                // (checkpoints and summaries carry the run key).
                let s = train_with(&run, Resume::ContinueOrRestart).with_context(|| format!("training run {}", run.name))?;
                println!("{}", one_line(&s));
            }
        }
        Command::Train { config: path, resume, max_steps } => {
            let mut cfg = TrainConfig::from_file(&path).with_context(|| format!("reading {}", path.display()))?;
            cfg.resolve_paths(&root);
            if max_steps.is_some() {
                cfg.train.max_steps = max_steps;
            }
            for run in config::expand(&cfg)? {
                let s = train(&run, resume).with_context(|| format!("training run {}", run.name))?;
                println!("{}", one_line(&s));
            }
        }
    }
    Ok(())
}

fn one_line(s: &phase3_training::TrainSummary) -> String {
    let probe = s.probe.as_ref().map_or(String::new(), |p| format!(", probe acc {:.3} -> best {:.3} at step {}", p.initial_acc.unwrap_or(f64::NAN), p.best_acc.unwrap_or(f64::NAN), p.best_step.map_or("-".into(), |s| s.to_string())));
    format!("{}: {} steps, train loss {:.4}, val loss {:.4}{probe}, {:.0} s, artifacts {}", s.name, s.steps, s.final_train_loss.unwrap_or(f64::NAN), s.final_eval.as_ref().map_or(f64::NAN, |e| e.loss), s.train_seconds, s.artifacts.display())
}
