//! Cargo invocations: the test suite, the phase pipeline, benchmarks and the chat front-end.
//! Every one goes through [`cargo`], which uses `$CARGO`, runs from the workspace root and sets
//! the environment in [`Paths::cargo_env`], so xtask and plain `cargo` share build artifacts.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

use crate::Paths;

/// The pipeline, in the order it runs; each is a crate under `crates/` with a binary.
pub const PHASES: &[&str] = &[
    "phase1-curation",
    "phase2-baseline",
    "phase3-training",
    "phase4-evaluation",
    "phase5-reporting",
];

/// Benchmarks run by `cargo xtask bench`, as (package, bench target).
const BENCHES: &[(&str, &str)] = &[("f1-core", "decode"), ("phase3-training", "train_step")];

/// A cargo command with the project environment, run from the root.
pub fn cargo(paths: &Paths) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(&paths.root).envs(paths.cargo_env());
    cmd
}

/// Run `cmd` to completion with inherited output; `Ok(false)` when it exits non-zero.
pub fn status(mut cmd: Command, what: &str) -> Result<bool> {
    let status = cmd
        .status()
        .with_context(|| format!("could not start {what} ({:?}); is cargo on PATH?", cmd.get_program()))?;
    Ok(status.success())
}

/// Whether the crate directory of a phase (or any workspace crate) exists yet.
pub fn crate_exists(paths: &Paths, name: &str) -> bool {
    paths.root.join("crates").join(name).join("Cargo.toml").is_file()
}

/// `cargo test --release` over the workspace (or `packages`), ignored tests included: those
/// are the real-model and Python-parity tests, which find their inputs through the env.
pub fn test(paths: &Paths, packages: &[String], harness: &[String]) -> Result<()> {
    let mut cmd = cargo(paths);
    cmd.args(["test", "--release"]);
    if packages.is_empty() {
        cmd.arg("--workspace");
    }
    for package in packages {
        cmd.args(["-p", package]);
    }
    cmd.args(["--", "--include-ignored"]).args(harness);
    if !status(cmd, "cargo test")? {
        bail!("tests failed (see the output above)");
    }
    Ok(())
}

/// Options of `cargo xtask run-all`.
#[derive(Args)]
pub struct RunAll {
    /// Which profile section of the config the phases use.
    #[arg(long, value_enum, default_value_t = Profile::Default)]
    profile: Profile,
    /// Study config [default: config/study.yaml]
    #[arg(long)]
    config: Option<PathBuf>,
    /// Rerun this phase even when its outputs are up to date (repeatable).
    #[arg(long = "force", value_name = "PHASE", value_parser = clap::builder::PossibleValuesParser::new(PHASES))]
    force: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Profile {
    Default,
    Quick,
    Gpu,
}

impl Profile {
    fn as_str(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Quick => "quick",
            Profile::Gpu => "gpu",
        }
    }
}

/// Run each phase binary in order, one line per phase, stopping at the first failure.
pub fn run_all(paths: &Paths, opts: &RunAll) -> Result<()> {
    let config = match &opts.config {
        Some(path) => std::path::absolute(path)?,
        None => paths.root.join("config").join("study.yaml"),
    };
    let built: Vec<&str> = PHASES.iter().copied().filter(|p| crate_exists(paths, p)).collect();
    if !built.is_empty() && !config.is_file() {
        bail!("config file {} not found; pass --config FILE", config.display());
    }
    let started = Instant::now();
    for phase in PHASES {
        if !built.contains(phase) {
            println!("{phase}: not built yet (no crates/{phase})");
            continue;
        }
        // Up-to-date checks against each phase's manifest go here; `--force` will bypass them.
        let forced = if opts.force.iter().any(|f| f == phase) { " (forced)" } else { "" };
        println!("{phase}: running{forced}");
        let t = Instant::now();
        let mut cmd = cargo(paths);
        cmd.args(["run", "--release", "-q", "-p", phase, "--", "run", "--config"])
            .arg(&config)
            .args(["--profile", opts.profile.as_str()]);
        let ok = status(cmd, phase)?;
        let secs = t.elapsed().as_secs_f64();
        if !ok {
            bail!("{phase} failed after {secs:.1} s (see its output above); later phases were not run");
        }
        println!("{phase}: ok ({secs:.1} s)");
    }
    println!("run-all: done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Run every benchmark in [`BENCHES`] whose source exists.
pub fn bench(paths: &Paths) -> Result<()> {
    for (package, bench) in BENCHES {
        let source = paths.root.join("crates").join(package).join("benches").join(format!("{bench}.rs"));
        if !source.is_file() {
            println!("bench {package}/{bench}: not written yet ({})", paths.show(&source));
            continue;
        }
        // `cargo bench` takes no `--release`; naming the release profile shares its artifacts
        // with `test` and `run-all` instead of building everything again under `bench`.
        let mut cmd = cargo(paths);
        cmd.args(["bench", "--profile", "release", "-p", package, "--bench", bench]);
        if !status(cmd, "cargo bench")? {
            bail!("benchmark {package}/{bench} failed (see the output above)");
        }
    }
    Ok(())
}

/// The terminal chat of `phase5-reporting`, with the user's arguments passed through.
pub fn chat(paths: &Paths, args: &[String]) -> Result<()> {
    if !crate_exists(paths, "phase5-reporting") {
        bail!("chat lives in phase5-reporting, which is not built yet (no crates/phase5-reporting)");
    }
    let mut cmd = cargo(paths);
    cmd.args(["run", "--release", "-q", "-p", "phase5-reporting", "--", "chat"]).args(args);
    if !status(cmd, "chat")? {
        bail!("chat exited with an error (see the output above)");
    }
    Ok(())
}
