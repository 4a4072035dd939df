//! `phase2-baseline`: measure the pre-trained model. Subcommands: `run` (the study's baseline
//! evaluation, written to `results/baseline/`), `doctor`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Phase 2: measure the pre-trained model before adaptation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate the study's base model with the harness every variant is measured with.
    Run {
        /// Study config (`model:` and `evaluation:` sections).
        #[arg(long, default_value = "config/study.yaml")]
        config: PathBuf,
        /// Profile of the `evaluation` section (`default`, `quick`).
        #[arg(long, default_value = "default")]
        profile: String,
    },
    /// Print libtorch version, CUDA availability, threads and the base model's status.
    Doctor {
        /// Model file to check.
        #[arg(long, default_value_os_t = f1_core::load::default_base_model())]
        model: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())).with_writer(std::io::stderr).init();
    match Cli::parse().command {
        Command::Run { config, profile } => {
            let report = phase2_baseline::run(&config, &profile)?;
            println!("{}", phase4_evaluation::run::headline(&report));
        }
        Command::Doctor { model } => println!("{}", phase2_baseline::doctor_report(&model)),
    }
    Ok(())
}
