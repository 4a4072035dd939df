//! The study report (issue #6): everything the phases wrote, turned into plots, one table per
//! question and plain-language conclusions, as `report.md` and a self-contained `report.html`
//! in `results/reports/`.
//!
//! [`build`] reads the inputs ([`inputs`]: evaluation results and per-item files of every
//! variant, the paired comparisons, the training runs' summaries and curves, the data card and
//! the run manifest — each only if present), composes the document ([`compose`], led by what
//! fine-tuning taught per benchmark part, [`taught`]), draws the
//! plots ([`charts`]: SVG always, PNG when a font is found) and writes every file atomically.
//! The report follows the shape of the reference study's write-up (hypothesis, methodology,
//! results with Correct/Incorrect/Invalid counts, latency) and its experiment-log template
//! (hypothesis, config, training observations, eval results, learnings), with every number and
//! conclusion computed from the inputs.

pub mod charts;
pub mod compose;
pub mod doc;
pub mod findings;
pub mod format;
pub mod inputs;
pub mod taught;
pub mod training;

use std::path::{Path, PathBuf};

use phase4_evaluation::variant::Variant;

use crate::{Error, Result};
pub use charts::FontChoice;
pub use inputs::Missing;

/// Where the report's inputs are and where it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportPaths {
    /// `results/`: `<variant>/eval.json`, `latency.jsonl`, `mcq_items.jsonl`, `comparison.json`.
    pub results: PathBuf,
    /// Output folder (`results/reports`).
    pub out: PathBuf,
    /// Folder of training runs (`models/adapters`), scanned two levels deep.
    pub runs: PathBuf,
    /// Phase 1's `data_card.json`.
    pub data_card: PathBuf,
    /// `cargo xtask run-all`'s `manifest.json`.
    pub manifest: PathBuf,
    /// Variants the study config expects besides `baseline` (missing ones are reported).
    pub expected_variants: Vec<Variant>,
    /// What the study adapts the model to (the config's top-level `domain`, else Formula 1).
    pub domain: String,
}

impl ReportPaths {
    /// The usual layout around `results` (relative to the workspace root): runs in
    /// `models/adapters`, the data card in `data/curated`, the manifest in `results`.
    pub fn new(results: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        let results = results.into();
        ReportPaths { manifest: results.join("manifest.json"), results, out: out.into(), runs: "models/adapters".into(), data_card: "data/curated/data_card.json".into(), expected_variants: vec![], domain: DEFAULT_DOMAIN.into() }
    }

    /// The paths a study config names: `evaluation.results_dir` (after `profile`), its
    /// `reports` sub-folder, the variants under `evaluation.variants`, and the data card beside
    /// the benchmark.
    pub fn from_study(config: &Path, profile: &str) -> Result<Self> {
        let study = phase4_evaluation::config::load_study(config, profile).map_err(|e| {
            let reason = match e {
                phase4_evaluation::Error::Config { reason, .. } => reason,
                phase4_evaluation::Error::Io { source, .. } => source.to_string(),
                other => other.to_string(),
            };
            Error::ReportInput { path: config.to_path_buf(), reason, hint: "fix the study config or pass another with --config".into() }
        })?;
        let results = study.eval.results_dir.clone();
        let mut paths = ReportPaths::new(&results, results.join("reports"));
        // The data card sits beside the curated files: the benchmark's folder for ours, the
        // open questions' folder when the benchmark is a user's file elsewhere.
        let beside = [Some(study.eval.benchmark.as_path()), study.eval.open_questions.as_deref()];
        if let Some(card) = beside.into_iter().flatten().filter_map(Path::parent).map(|d| d.join("data_card.json")).find(|c| c.is_file()) {
            paths.data_card = card;
        }
        paths.expected_variants = study.eval.variants;
        if let Some(domain) = study.domain {
            paths.domain = domain;
        }
        Ok(paths)
    }
}

/// The domain of the flagship study.
pub const DEFAULT_DOMAIN: &str = "Formula 1";

/// How the report is drawn.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportOptions {
    /// Font for the PNG plots.
    pub font: FontChoice,
}

/// What [`build`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Produced {
    /// Every file written, plots first, then `report.md` and `report.html`.
    pub files: Vec<PathBuf>,
    /// Inputs that were not found.
    pub missing: Vec<Missing>,
    /// Why PNG plots were not written, when they were not.
    pub png_skipped: Option<String>,
}

/// File stems of every plot the report can draw (stale copies of plots not drawn this time are
/// removed so the folder matches the report).
const PLOT_STEMS: [&str; 11] = ["part_accuracy", "loss", "probe", "mcq_accuracy", "mcq_outcomes", "latency_histogram", "latency_box", "category_accuracy_chat_acc", "category_accuracy_acc", "category_accuracy_generative", "rank_sweep"];

/// Write `bytes` atomically with the harness's writer (temporary sibling, then a rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    phase4_evaluation::run::write_atomic(path, bytes).map_err(|e| match e {
        phase4_evaluation::Error::Io { path, source } => Error::ReportOutput { path, source },
        other => Error::ReportOutput { path: path.to_path_buf(), source: std::io::Error::other(other.to_string()) },
    })
}

/// Decide whether PNGs can be drawn: `Ok(None)` with a registered font, `Ok(Some(reason))`
/// when there is none (SVG only), an error when a font asked for by name cannot be used.
fn png_font(choice: &FontChoice) -> Result<Option<String>> {
    match charts::find_font(choice) {
        None if *choice == FontChoice::Off => Ok(Some("PNG output was turned off".into())),
        None => Ok(Some("no TrueType font was found (set F1_REPORT_FONT or --font to a .ttf file, or install fonts-dejavu-core)".into())),
        Some(path) => match charts::register_font(&path) {
            Ok(used) => {
                tracing::debug!(font = %used.display(), "PNG text font");
                Ok(None)
            }
            Err(e) if matches!(choice, FontChoice::File(_)) => Err(e),
            Err(e) => Ok(Some(e.to_string())),
        },
    }
}

/// Build the report: read the inputs named by `paths`, draw the plots and write `report.md`
/// and `report.html` to `paths.out`. A missing input is reported in the document; an input
/// that exists but cannot be parsed is an error naming the file.
pub fn build(paths: &ReportPaths, opts: &ReportOptions) -> Result<Produced> {
    let inputs = inputs::read(paths)?;
    for m in &inputs.missing {
        // The report lists these (and the binary counts them), so they are not warnings.
        tracing::info!(path = %m.path.display(), "missing input: {}", m.consequence);
    }
    let composed = compose::compose(&inputs);
    let png_skipped = png_font(&opts.font)?;
    if let Some(why) = &png_skipped {
        tracing::warn!("PNG plots skipped (SVG written): {why}");
    }
    let mut document = composed.doc;
    let mut files = vec![];
    for (stem, plot) in &composed.plots {
        let svg = charts::svg(plot)?;
        let svg_path = paths.out.join(format!("{stem}.svg"));
        write_atomic(&svg_path, svg.as_bytes())?;
        files.push(svg_path);
        let png = if png_skipped.is_none() {
            let bytes = charts::png(plot)?;
            let png_path = paths.out.join(format!("{stem}.png"));
            write_atomic(&png_path, &bytes)?;
            files.push(png_path);
            true
        } else {
            false
        };
        for block in &mut document.blocks {
            if let doc::Block::Figure(fig) = block {
                if fig.stem == *stem {
                    fig.svg = svg.clone();
                    fig.png = png;
                }
            }
        }
        tracing::info!(plot = %stem, "drawn");
    }
    if let Some(why) = &png_skipped {
        document.p(vec![doc::b("Plots. "), doc::t(format!("Only SVG plots were written: {why}."))]);
    }
    remove_stale(&paths.out, &files);
    let md = paths.out.join("report.md");
    write_atomic(&md, document.markdown().as_bytes())?;
    let html = paths.out.join("report.html");
    write_atomic(&html, document.html().as_bytes())?;
    files.extend([md, html]);
    Ok(Produced { files, missing: inputs.missing, png_skipped })
}

fn remove_stale(out: &Path, written: &[PathBuf]) {
    for stem in PLOT_STEMS {
        for ext in ["svg", "png"] {
            let p = out.join(format!("{stem}.{ext}"));
            if p.is_file() && !written.contains(&p) {
                match std::fs::remove_file(&p) {
                    Ok(()) => tracing::info!(path = %p.display(), "removed a plot this report no longer draws"),
                    Err(e) => tracing::warn!(path = %p.display(), "could not remove a stale plot: {e}"),
                }
            }
        }
    }
}
