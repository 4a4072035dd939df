//! Project automation, in the `cargo xtask` style (matklad, "cargo xtask"): bootstrap the
//! Python venv, the `.libtorch` link and the base model (`setup`), then build and run the
//! workspace with the environment every phase expects (`test`, `run-all`, `bench`, `chat`),
//! or explain what is missing (`doctor`). It spawns processes but does no ML itself and never
//! links libtorch, so it compiles in seconds.

mod cargo;
mod doctor;
mod e2e;
mod headline;
mod manifest;
mod model;
mod setup;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Where everything lives. All paths are absolute so spawned processes may run from anywhere.
#[derive(Clone)]
pub struct Paths {
    /// Workspace root (the directory holding the root `Cargo.toml`).
    pub root: PathBuf,
    /// Python venv: `$F1_VENV`, else `<root>/.venv`.
    pub venv: PathBuf,
    /// The venv's interpreter.
    pub python: PathBuf,
    /// `<root>/.libtorch`, the link `.cargo/config.toml` names in `LIBTORCH`.
    pub libtorch: PathBuf,
    /// The base model every phase starts from.
    pub model: PathBuf,
    /// Where a study resolves the relative paths of its config and writes `data/`, `models/`
    /// and `results/`: the workspace root unless `run-all --root` names another folder.
    pub study_root: PathBuf,
    /// Sources `run-all` fetched into the study root, read instead of a mirror.
    pub fetched_sources: Option<PathBuf>,
}

impl Paths {
    fn discover() -> Result<Self> {
        // xtask lives one level below the root. `cargo run` sets CARGO_MANIFEST_DIR at run time
        // too; that value wins over the compiled-in one, because a binary built in one checkout
        // is reused unchanged from a shared CARGO_TARGET_DIR by another checkout elsewhere.
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        let root = manifest_dir.parent().expect("xtask has a parent directory").to_path_buf();
        let venv = match std::env::var_os("F1_VENV").filter(|v| !v.is_empty()) {
            Some(v) => std::path::absolute(PathBuf::from(v))?,
            None => root.join(".venv"),
        };
        Ok(Self {
            python: venv.join("bin").join("python"),
            libtorch: root.join(".libtorch"),
            model: root.join("models").join("base").join(model::MODEL_FILE),
            venv,
            study_root: root.clone(),
            root,
            fetched_sources: None,
        })
    }

    /// The environment every cargo invocation gets: the same `LIBTORCH` as
    /// `.cargo/config.toml` (so plain cargo and xtask share build artifacts), plus what the
    /// gated real-model and Python-parity tests and the phase binaries read. `F1_DATA` is the
    /// mirror the run manifest hashes, also for a study rooted elsewhere (`run-all --root`).
    pub fn cargo_env(&self) -> Vec<(&'static str, OsString)> {
        vec![
            ("LIBTORCH", self.libtorch.clone().into_os_string()),
            ("F1_MODEL_GGUF", self.model.clone().into_os_string()),
            ("F1_PYTHON", self.python.clone().into_os_string()),
            ("F1_ROOT", self.study_root.clone().into_os_string()),
            ("F1_DATA", manifest::data_dir(self).into_os_string()),
        ]
    }

    /// `path` relative to the root when it lies inside it, for shorter messages.
    pub fn show(&self, path: &Path) -> String {
        path.strip_prefix(&self.study_root).or_else(|_| path.strip_prefix(&self.root)).unwrap_or(path).display().to_string()
    }

    /// The same paths with studies rooted at `dir` (created when missing).
    pub fn with_study_root(&self, dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create the study root {}: {e}", dir.display()))?;
        let study_root = std::path::absolute(dir)?;
        Ok(Paths { study_root, ..self.clone() })
    }

    /// The same paths reading the sources fetched into `dir`.
    pub fn with_fetched_sources(&self, dir: PathBuf) -> Self {
        Paths { fetched_sources: Some(dir), ..self.clone() }
    }
}

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Automation for the F1 domain-adaptation pipeline")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the venv with pinned packages, link `.libtorch`, fetch and verify the base model.
    Setup,
    /// Setup, then `cargo test --workspace --release -- --include-ignored [HARNESS_ARGS]`.
    Test {
        /// Test only these packages instead of the whole workspace.
        #[arg(short, long = "package")]
        package: Vec<String>,
        /// Arguments for the test harness, e.g. `-- gguf --nocapture`.
        #[arg(last = true)]
        harness: Vec<String>,
    },
    /// Diagnose the set-up without changing anything.
    Doctor,
    /// Setup, then run the phase binaries in order.
    RunAll(cargo::RunAll),
    /// Setup, then run the benchmarks (results under `results/`, `results/bench.json` side by
    /// side with Hugging Face).
    Bench {
        /// Only the Hugging Face comparison, small and with one repetition (a smoke run).
        #[arg(long)]
        quick: bool,
    },
    /// Setup, then test the chat page end to end in headless Chromium (installed with apt-get
    /// when missing): type a question, wait for the streamed answer, compare with the API.
    E2e,
    /// Setup, then chat with the model in the terminal (arguments go to the chat command).
    Chat {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    // Print the error chain ourselves: anyhow's `Debug` adds a backtrace whenever
    // RUST_BACKTRACE is set, which buries the message and its hint.
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let paths = Paths::discover()?;
    match cli.command {
        Command::Setup => setup::run(&paths),
        Command::Test { package, harness } => {
            setup::run(&paths)?;
            cargo::test(&paths, &package, &harness)
        }
        Command::Doctor => doctor::run(&paths),
        Command::RunAll(opts) => {
            setup::run(&paths)?;
            cargo::run_all(&paths, &opts)
        }
        Command::Bench { quick } => {
            setup::run(&paths)?;
            cargo::bench(&paths, quick)
        }
        Command::E2e => {
            setup::run(&paths)?;
            e2e::run(&paths)
        }
        Command::Chat { args } => {
            setup::run(&paths)?;
            cargo::chat(&paths, &args)
        }
    }
}
