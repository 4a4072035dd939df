//! `phase2-baseline`: measure the pre-trained model. Subcommands: `doctor`.

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
        Command::Doctor { model } => println!("{}", phase2_baseline::doctor_report(&model)),
    }
    Ok(())
}
