//! `phase1-curation`: curate F1 sources into instruction pairs, splits, a multiple-choice
//! benchmark and a data card (issue #3), or import a user's JSONL into the same layout.
//!
//! `run --config config/study.yaml [--profile default|quick] [--out data/]` writes
//! `<out>/curated/`; `import --input FILE.jsonl --out DIR` writes `DIR/`. Relative paths are
//! resolved against `$F1_ROOT` when set (as `cargo xtask run-all` does), else the current folder.
//! `fetch --dest DIR [--source NAME]...` downloads the sources from upstream in the mirror's layout.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::ProgressBar;
use phase1_curation::curate::{config::CurationConfig, import, pipeline};
use phase1_curation::fetch::{self, FetchConfig};

#[derive(Parser)]
#[command(name = "phase1-curation", about = "Phase 1: curate F1 sources into pairs, splits, a benchmark and a data card")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Curate the sources of the mirror per the `curation:` section of the study config.
    Run {
        /// The study config.
        #[arg(long, default_value = "config/study.yaml")]
        config: PathBuf,
        /// `default` or a profile under `curation.profiles` (`quick`).
        #[arg(long, default_value = "default")]
        profile: String,
        /// Output root; files go to `<out>/curated/`.
        #[arg(long, default_value = "data")]
        out: PathBuf,
    },
    /// Turn a JSONL of chat, Alpaca or prompt/completion records into splits and a data card.
    Import {
        /// The JSONL file.
        #[arg(long)]
        input: PathBuf,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Seed of the split.
        #[arg(long, default_value_t = 20_240_601)]
        seed: u64,
    },
    /// Download sources from their upstream URLs into DEST in the mirror's layout, so that
    /// `F1_DATA=DEST` reads them (needs network; robots.txt obeyed, raw pages cached).
    Fetch {
        /// A source to fetch (repeatable); all when absent.
        #[arg(long = "source", value_parser = clap::builder::PossibleValuesParser::new(fetch::SOURCES))]
        sources: Vec<String>,
        /// Destination folder.
        #[arg(long)]
        dest: PathBuf,
        /// Cache of raw pages.
        #[arg(long, default_value = "data/cache/http")]
        cache: PathBuf,
        /// Fetch from this server, which holds the files in the mirror's layout
        /// (`<URL>/f1db-main.tar.gz`, `<URL>/wikipedia/...`), instead of the real upstreams.
        #[arg(long, value_name = "URL")]
        upstream: Option<String>,
        /// Least time between two requests to one host, milliseconds.
        #[arg(long, default_value_t = FetchConfig::default().min_interval_ms)]
        min_interval_ms: u64,
    },
}

/// A relative path against `$F1_ROOT` when set.
fn resolve(p: &Path) -> PathBuf {
    match std::env::var_os("F1_ROOT") {
        Some(root) if p.is_relative() => PathBuf::from(root).join(p),
        _ => p.to_path_buf(),
    }
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let started = Instant::now();
    match Cli::parse().command {
        Command::Run { config, profile, out } => {
            let config = resolve(&config);
            let mut cfg = CurationConfig::load(&config, &profile)
                .with_context(|| format!("reading the `curation:` section of {}; hint: see config/study.yaml for the keys", config.display()))?;
            let out = resolve(&out);
            cfg.sources.crawl.fetch.cache_dir = resolve(&cfg.sources.crawl.fetch.cache_dir);
            if let Some(input) = &cfg.import {
                let input = resolve(input);
                let dir = out.join("curated");
                let curated = import::import(&input, &dir, cfg.seed, cfg.near_duplicate).with_context(|| {
                    format!("importing {} (`curation.import` of {}); hint: one JSON object per line (messages, instruction/output or prompt/completion)", input.display(), config.display())
                })?;
                tracing::info!(pairs = curated.pairs.len(), rejects = curated.card.rejects.len(), splits = ?curated.card.pairs_by_split, "imported {} into {}", input.display(), dir.display());
                return Ok(());
            }
            let mirror = phase1_curation::data_dir();
            let spinner = ProgressBar::new_spinner();
            spinner.enable_steady_tick(std::time::Duration::from_millis(120));
            spinner.set_message(format!("loading sources from {}", mirror.display()));
            let inputs = pipeline::load_inputs(&mirror, &cfg.sources).with_context(|| {
                format!("loading sources from {}; hint: set F1_DATA to a mirror, or fetch the sources with `phase1-curation fetch --dest data/sources` and set F1_DATA=data/sources (`cargo xtask run-all` does both when no mirror is found), or fix `curation.sources`", mirror.display())
            })?;
            spinner.set_message("curating pairs and benchmark");
            let mut curated = pipeline::curate(&inputs, &cfg).context("curating")?;
            let dir = out.join("curated");
            spinner.set_message(format!("writing {}", dir.display()));
            pipeline::write(&mut curated, &dir).with_context(|| format!("writing {}", dir.display()))?;
            spinner.finish_and_clear();
            let card = &curated.card;
            tracing::info!(
                pairs = curated.pairs.len(),
                benchmark = curated.questions.len(),
                splits = ?card.pairs_by_split,
                categories = ?card.pairs_by_category,
                control = ?card.benchmark_by_control,
                seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
                "wrote {}",
                dir.display()
            );
        }
        Command::Import { input, out, seed } => {
            let (input, out) = (resolve(&input), resolve(&out));
            let curated = import::import(&input, &out, seed, CurationConfig::default().near_duplicate)
                .with_context(|| format!("importing {}; hint: one JSON object per line (messages, instruction/output or prompt/completion)", input.display()))?;
            tracing::info!(
                pairs = curated.pairs.len(),
                rejects = curated.card.rejects.len(),
                splits = ?curated.card.pairs_by_split,
                "wrote {}",
                out.display()
            );
        }
        Command::Fetch { sources, dest, cache, upstream, min_interval_ms } => {
            let (dest, cache) = (resolve(&dest), resolve(&cache));
            let names: Vec<&str> = if sources.is_empty() { fetch::SOURCES.to_vec() } else { sources.iter().map(String::as_str).collect() };
            let mut fetcher = fetch::Fetcher::new(FetchConfig { cache_dir: cache, min_interval_ms, ..FetchConfig::default() })?;
            let mut failed = 0;
            let mut bytes = 0u64;
            let mut files_written = 0usize;
            for name in names {
                let files = fetch::source_files(name)?;
                let files = match &upstream {
                    Some(base) => fetch::rebase(files, base),
                    None => files,
                };
                let bar = ProgressBar::new(files.len() as u64).with_message(name.to_owned());
                let (mut written, mut rejects) = (0, Vec::new());
                for file in &files {
                    let (w, r) = fetch::fetch_files(&mut fetcher, std::slice::from_ref(file), &dest)?;
                    bytes += w.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum::<u64>();
                    written += w.len();
                    rejects.extend(r);
                    bar.inc(1);
                }
                if name == "wikipedia" {
                    fetch::write_pages_index(&dest)?;
                }
                files_written += written;
                bar.finish_and_clear();
                // Not every session publishes every stream (a shootout has no LapCount): the
                // live-timing server answers those with 403 or 404, which is no failure.
                let unpublished = |r: &phase1_curation::Reject| name == "livetiming" && (r.reason.contains("HTTP 403") || r.reason.contains("HTTP 404"));
                let (absent, rejects): (Vec<_>, Vec<_>) = rejects.into_iter().partition(|r| unpublished(r));
                for r in &absent {
                    tracing::info!("{name}: not published for this session: {r}");
                }
                for r in &rejects {
                    tracing::warn!("{name}: {r}");
                }
                tracing::info!(written, failed = rejects.len(), "{name} -> {}", dest.display());
                failed += rejects.len();
            }
            if failed > 0 {
                anyhow::bail!("{failed} file(s) could not be fetched (listed above); rerun to retry them, fetched pages come from the cache");
            }
            println!(
                "sources: {files_written} files, {:.1} MB in {}, in {:.0} s ({} requests; the rest came from the cache {})",
                bytes as f64 / 1e6,
                dest.display(),
                started.elapsed().as_secs_f64(),
                fetcher.requests,
                fetcher.config().cache_dir.display()
            );
        }
    }
    Ok(())
}
