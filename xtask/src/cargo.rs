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
const BENCHES: &[(&str, &str)] = &[("f1-core", "decode"), ("phase3-training", "train_step"), ("phase4-evaluation", "mcq"), ("phase1-curation", "curate"), ("phase5-reporting", "serve_load"), ("phase3-training", "peer")];

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

/// Build the binaries of `packages` in one cargo invocation (one feature resolution, so the
/// crates they share compile once) and return each executable by name, as cargo reports it.
pub fn build_bins(paths: &Paths, packages: &[&str]) -> Result<std::collections::HashMap<String, PathBuf>> {
    let mut cmd = cargo(paths);
    cmd.args(["build", "--release", "--bins", "--message-format=json-render-diagnostics"]).stdout(std::process::Stdio::piped());
    for p in packages {
        cmd.args(["-p", p]);
    }
    let out = cmd.spawn().context("could not start cargo build; is cargo on PATH?")?.wait_with_output()?;
    if !out.status.success() {
        bail!("building {} failed (see the compiler output above)", packages.join(", "));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter_map(|m| Some((m["target"]["name"].as_str()?.to_owned(), PathBuf::from(m["executable"].as_str()?))))
        .collect())
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
    /// Folder the study resolves its config's relative paths against and writes `data/`,
    /// `models/`, `results/` under [default: the workspace root].
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Fetch the F1 sources from this server, which holds them in the mirror's layout, into
    /// `<root>/data/sources` (without it they are fetched from their real upstreams, and only
    /// when no mirror is configured with F1_DATA or found at ../shared/f1data).
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// Least time between two requests to one host while fetching sources, milliseconds
    /// [default: the fetcher's polite 1000].
    #[arg(long, value_name = "MS")]
    fetch_interval_ms: Option<u64>,
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

/// Run each phase binary in order, one line per phase, stopping at the first failure. A phase
/// whose inputs and outputs match the run manifest is skipped unless forced; a forced or
/// rerun phase makes every later phase whose inputs it changes run again.
pub fn run_all(paths: &Paths, opts: &RunAll) -> Result<()> {
    let config = match &opts.config {
        Some(path) => std::path::absolute(path)?,
        None => paths.root.join("config").join("study.yaml"),
    };
    if !config.is_file() {
        bail!("config file {} not found; pass --config FILE", config.display());
    }
    let paths = &match &opts.root {
        Some(dir) => paths.with_study_root(dir)?,
        None => paths.with_study_root(&paths.root)?,
    };
    let layout = crate::manifest::StudyLayout::read(paths, &config)?;
    let profile = opts.profile.as_str();
    let mut manifest = crate::manifest::Manifest::load(paths)?;
    let started = Instant::now();
    // Every phase binary from one build: per-phase `cargo run -p` would resolve features per
    // package and compile the shared crates up to five times on a fresh checkout.
    let bins = build_bins(paths, PHASES)?;
    // A fresh machine has no mirror: the sources come from upstream into the study root first.
    let fetched;
    let paths = if layout.import.is_none() && (opts.upstream.is_some() || !crate::manifest::mirror_available(paths)) {
        fetched = fetch_sources(paths, &bins, opts)?;
        &fetched
    } else {
        paths
    };
    let total = PHASES.len();
    for (i, phase) in PHASES.iter().enumerate() {
        let files = crate::manifest::phase_files(paths, phase, &config, &layout);
        let bin = bins.get(*phase).with_context(|| format!("cargo built no {phase} executable"))?;
        let mut inputs = crate::manifest::hashes(paths, &files.inputs)?;
        // The phase's own program is an input too: a code change reruns the phase (and, through
        // its outputs, every phase after it).
        inputs.insert(format!("program:{phase}"), crate::manifest::hash_path(bin)?);
        let forced = opts.force.iter().any(|f| f == phase);
        if !forced && manifest.up_to_date(paths, phase, profile, &inputs, &files.outputs)? {
            println!("[{}/{total}] {phase}: up to date (inputs and outputs unchanged; --force {phase} reruns it)", i + 1);
            continue;
        }
        let eta = manifest.last_seconds(phase).map(|s| format!(", took {s:.0} s last time")).unwrap_or_default();
        println!("[{}/{total}] {phase}: running{}{eta}", i + 1, if forced { " (forced)" } else { "" });
        manifest.invalidate(phase)?;
        let t = Instant::now();
        // Phases resolve the config's relative paths against their working directory (and
        // `F1_ROOT`): the study root, which is the workspace unless `--root` says otherwise.
        let mut cmd = Command::new(bin);
        cmd.current_dir(&paths.study_root).envs(paths.cargo_env());
        cmd.args(["run", "--config"]).arg(&config).args(["--profile", profile]);
        let ok = status(cmd, phase)?;
        let secs = t.elapsed().as_secs_f64();
        if !ok {
            bail!("{phase} failed after {secs:.1} s (see its output above); later phases were not run. Rerun `cargo xtask run-all` to continue from here");
        }
        manifest.record(phase, profile, inputs, crate::manifest::hashes(paths, &files.outputs)?, secs)?;
        println!("[{}/{total}] {phase}: ok ({secs:.1} s, {:.1} s elapsed)", i + 1, started.elapsed().as_secs_f64());
    }
    println!("run-all: done in {:.1} s\n", started.elapsed().as_secs_f64());
    print!("{}", crate::headline::table(&layout));
    let report = layout.results.join("reports").join("report.html");
    if report.is_file() {
        println!("report: {}", paths.show(&report));
    }
    println!("manifest: {}", paths.show(&paths.study_root.join("results").join("manifest.json")));
    Ok(())
}

/// `phase1-curation fetch` into `<study root>/data/sources` (raw pages cached in
/// `data/cache/http`, so a rerun or an interrupted fetch asks only for what is missing), then
/// the paths reading those sources.
fn fetch_sources(paths: &Paths, bins: &std::collections::HashMap<String, PathBuf>, opts: &RunAll) -> Result<Paths> {
    let data = paths.study_root.join("data");
    let (dest, cache) = (data.join("sources"), data.join("cache").join("http"));
    match &opts.upstream {
        Some(url) => println!("sources: fetching from {url} into {}", paths.show(&dest)),
        None => println!(
            "sources: no F1 data mirror here (F1_DATA is unset and {} does not exist): fetching F1DB, the Ergast CSVs, 25 Wikipedia pages and 30 live-timing streams from upstream into {} (about 23 MB, 1 s between requests to a host; cached, so an interrupted fetch resumes)",
            paths.root.join("..").join("shared").join("f1data").display(),
            paths.show(&dest)
        ),
    }
    let bin = bins.get("phase1-curation").context("cargo built no phase1-curation executable")?;
    let mut cmd = Command::new(bin);
    cmd.current_dir(&paths.study_root).envs(paths.cargo_env()).arg("fetch").arg("--dest").arg(&dest).arg("--cache").arg(&cache);
    if let Some(url) = &opts.upstream {
        cmd.args(["--upstream", url]);
    }
    if let Some(ms) = opts.fetch_interval_ms {
        cmd.args(["--min-interval-ms", &ms.to_string()]);
    }
    if !status(cmd, "phase1-curation fetch")? {
        bail!("fetching the F1 sources failed (see above); rerun `cargo xtask run-all` to retry (fetched files come from the cache), or point F1_DATA at a copy of the mirror");
    }
    Ok(paths.with_fetched_sources(dest))
}

/// The side-by-side comparison with Hugging Face (issue #8), the one `--quick` runs.
const PEER_BENCH: (&str, &str) = ("phase3-training", "peer");

/// Run every benchmark in [`BENCHES`] whose source exists; `quick` runs only the Hugging Face
/// comparison, as a smoke run (`F1_BENCH_QUICK=1`: one repetition of small work).
pub fn bench(paths: &Paths, quick: bool) -> Result<()> {
    let selected: Vec<&(&str, &str)> = BENCHES.iter().filter(|b| !quick || **b == PEER_BENCH).collect();
    for (package, bench) in selected {
        let source = paths.root.join("crates").join(package).join("benches").join(format!("{bench}.rs"));
        if !source.is_file() {
            println!("bench {package}/{bench}: not written yet ({})", paths.show(&source));
            continue;
        }
        // `cargo bench` takes no `--release`; naming the release profile shares its artifacts
        // with `test` and `run-all` instead of building everything again under `bench`.
        let mut cmd = cargo(paths);
        cmd.args(["bench", "--profile", "release", "-p", package, "--bench", bench]);
        if quick {
            cmd.env("F1_BENCH_QUICK", "1");
        }
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
