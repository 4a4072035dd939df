//! Reading the phase outputs the report is built from. Each input is read only if it exists: a
//! missing one becomes a [`Missing`] entry that the report prints (with what it costs and which
//! phase writes it), while one that exists but does not parse is an error naming the file, so a
//! corrupt result is never silently left out of a study's conclusions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use phase4_evaluation::compare::Comparison;
use phase4_evaluation::mcq::ItemResult;
use phase4_evaluation::run::{read_jsonl, read_report, EvalReport, LatencySample};
use phase4_evaluation::variant::VariantKind;
use serde::Deserialize;

use super::training::{self, TrainingRun};
use super::ReportPaths;
use crate::{Error, Result};

/// An input that was not there.
#[derive(Debug, Clone, PartialEq)]
pub struct Missing {
    /// The path looked at.
    pub path: PathBuf,
    /// What the report lacks because of it.
    pub consequence: String,
    /// Which phase or command writes it.
    pub producer: String,
}

/// One evaluated (or expected) model variant.
#[derive(Debug, Clone)]
pub struct VariantData {
    /// Name (`baseline`, `lora`, ...).
    pub name: String,
    /// How it was built, from the evaluation config.
    pub kind: Option<VariantKind>,
    /// Its adapter or model folder, from the evaluation config.
    pub path: Option<PathBuf>,
    /// `results/<name>/eval.json`.
    pub eval: Option<EvalReport>,
    /// `results/<name>/latency.jsonl`.
    pub latency: Option<Vec<LatencySample>>,
    /// `results/<name>/mcq_items.jsonl`.
    pub items: Option<Vec<ItemResult>>,
}

/// A data card source's license.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct License {
    /// Source.
    pub source: String,
    /// License.
    pub license: String,
    /// Attribution or conditions.
    pub attribution: String,
}

/// A file the curation read or wrote.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct FileHash {
    /// Path.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// sha256.
    pub sha256: String,
}

/// The leakage gate's measurements.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Leakage {
    /// Near-duplicate threshold (word 3-shingle Jaccard).
    pub threshold: f64,
    /// Benchmark questions checked.
    pub benchmark_questions: usize,
    /// Training questions indexed.
    pub training_questions: usize,
    /// Highest similarity found.
    pub max_similarity: f64,
    /// Benchmark questions sharing a word 8-gram with the training text.
    pub questions_with_shared_8gram: usize,
    /// Questions over the threshold.
    pub leaks: Vec<serde_json::Value>,
}

/// A curation stage's accounting.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Stage {
    /// Name.
    pub name: String,
    /// Unit.
    pub unit: String,
    /// Records in.
    pub inputs: usize,
    /// Records out.
    pub outputs: usize,
    /// Records rejected.
    pub rejects: usize,
}

/// Phase 1's `data_card.json`, the parts the report summarizes (every field optional).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct DataCard {
    /// The command that wrote it.
    pub command: Option<String>,
    /// The curation config (years, seed, ...).
    pub config: Option<serde_json::Value>,
    /// Why the period is what it is.
    pub period_note: Option<String>,
    /// Terms of each source.
    pub licenses: Vec<License>,
    /// Files written.
    pub outputs: Vec<FileHash>,
    /// Pairs per source.
    pub pairs_by_source: BTreeMap<String, usize>,
    /// Pairs per category.
    pub pairs_by_category: BTreeMap<String, usize>,
    /// Pairs per split.
    pub pairs_by_split: BTreeMap<String, usize>,
    /// Benchmark questions per category.
    pub benchmark_by_category: BTreeMap<String, usize>,
    /// Benchmark questions per difficulty.
    pub benchmark_by_difficulty: BTreeMap<String, usize>,
    /// Control and taught counts.
    pub benchmark_by_control: BTreeMap<String, usize>,
    /// Leakage gate.
    pub leakage: Option<Leakage>,
    /// Accounting per stage.
    pub stages: Vec<Stage>,
    /// Every reject.
    pub rejects: Vec<serde_json::Value>,
}

/// One phase of `results/manifest.json` (written by `cargo xtask run-all`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ManifestPhase {
    /// Profile it ran under.
    pub profile: Option<String>,
    /// Input path -> sha256 (or `absent`).
    pub inputs: BTreeMap<String, String>,
    /// Output path -> sha256.
    pub outputs: BTreeMap<String, String>,
    /// Wall time.
    pub seconds: Option<f64>,
    /// Seconds since the Unix epoch when it finished.
    pub finished_at: Option<u64>,
}

/// `results/manifest.json`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Manifest {
    /// Layout version.
    pub version: Option<u64>,
    /// Per phase.
    pub phases: BTreeMap<String, ManifestPhase>,
}

/// Everything read, plus what was missing.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Variants in report order: baseline, the configured ones, then any other found.
    pub variants: Vec<VariantData>,
    /// `results/comparison.json`.
    pub comparisons: Option<Vec<Comparison>>,
    /// Training runs found.
    pub runs: Vec<TrainingRun>,
    /// `data_card.json`.
    pub data_card: Option<DataCard>,
    /// `results/manifest.json` and its path.
    pub manifest: Option<(PathBuf, Manifest)>,
    /// Inputs not found.
    pub missing: Vec<Missing>,
    /// What the study adapts the model to.
    pub domain: String,
}

fn bad(path: &Path, reason: impl Into<String>, hint: &str) -> Error {
    Error::ReportInput { path: path.to_path_buf(), reason: reason.into(), hint: hint.into() }
}

/// A phase-4 error on `path` as this crate's, keeping its reason but naming the file once.
fn from_eval(path: &Path, e: phase4_evaluation::Error, hint: &str) -> Error {
    let reason = match e {
        phase4_evaluation::Error::Data { line: 0, reason, .. } => reason,
        phase4_evaluation::Error::Data { line, reason, .. } => format!("line {line}: {reason}"),
        phase4_evaluation::Error::Io { source, .. } => source.to_string(),
        other => other.to_string(),
    };
    bad(path, reason, hint)
}

const RERUN_EVAL: &str = "rerun the evaluation of this variant (`cargo xtask run-all --force phase4-evaluation`, or `--force phase2-baseline` for the baseline), or delete its results folder";

/// Read every input named by `paths`.
pub fn read(paths: &ReportPaths) -> Result<Inputs> {
    let mut inputs = Inputs { domain: paths.domain.clone(), ..Inputs::default() };
    let results = &paths.results;

    // Variants: folders of results/ holding eval.json, plus the ones the config expects.
    let mut found: Vec<String> = vec![];
    if results.is_dir() {
        let entries = std::fs::read_dir(results).map_err(|e| bad(results, e.to_string(), "check the folder's permissions"))?;
        for entry in entries.flatten() {
            if entry.path().join("eval.json").is_file() {
                found.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
    } else {
        inputs.missing.push(Missing { path: results.clone(), consequence: "no evaluation results at all".into(), producer: "phases 2 and 4 (`cargo xtask run-all`)".into() });
    }
    found.sort();
    let mut evals: BTreeMap<String, EvalReport> = BTreeMap::new();
    for name in &found {
        let path = results.join(name).join("eval.json");
        let report = read_report(&path).map_err(|e| from_eval(&path, e, RERUN_EVAL))?;
        evals.insert(name.clone(), report);
    }
    // The configured variants (with kind and path), from the caller or from any eval.json.
    let mut configured: Vec<(String, Option<VariantKind>, Option<PathBuf>)> = vec![("baseline".into(), Some(VariantKind::Base), None)];
    let from_evals = evals.values().flat_map(|r| r.config.variants.iter().map(|v| (v.name.clone(), Some(v.kind), v.path.clone())));
    for (name, kind, path) in paths.expected_variants.iter().map(|v| (v.name.clone(), Some(v.kind), v.path.clone())).chain(from_evals) {
        if !configured.iter().any(|(n, ..)| *n == name) {
            configured.push((name, kind, path));
        }
    }
    for name in &found {
        if !configured.iter().any(|(n, ..)| n == name) {
            configured.push((name.clone(), None, None));
        }
    }
    for (name, kind, path) in configured {
        let dir = results.join(&name);
        let eval = evals.remove(&name);
        if eval.is_none() {
            let producer = if name == "baseline" { "phase 2 (`phase2-baseline run`)" } else { "phase 4 (`phase4-evaluation run`)" };
            inputs.missing.push(Missing { path: dir.join("eval.json"), consequence: format!("variant `{name}` has no evaluation results"), producer: producer.into() });
        }
        let latency_path = dir.join("latency.jsonl");
        let latency = if latency_path.is_file() {
            Some(read_jsonl::<LatencySample>(&latency_path).map_err(|e| from_eval(&latency_path, e, RERUN_EVAL))?)
        } else {
            if eval.is_some() {
                inputs.missing.push(Missing { path: latency_path, consequence: format!("no latency plots for `{name}`"), producer: "the latency probe of phases 2 and 4 (`evaluation.latency_samples` > 0)".into() });
            }
            None
        };
        let items_path = dir.join("mcq_items.jsonl");
        let items = if items_path.is_file() {
            Some(read_jsonl::<ItemResult>(&items_path).map_err(|e| from_eval(&items_path, e, RERUN_EVAL))?)
        } else {
            if eval.is_some() {
                inputs.missing.push(Missing { path: items_path, consequence: format!("no taught-vs-control significance test for `{name}`"), producer: "phases 2 and 4".into() });
            }
            None
        };
        inputs.variants.push(VariantData { name, kind, path, eval, latency, items });
    }

    let cmp_path = results.join("comparison.json");
    if cmp_path.is_file() {
        let text = std::fs::read_to_string(&cmp_path).map_err(|e| bad(&cmp_path, e.to_string(), "check the file's permissions"))?;
        let cmps: Vec<Comparison> = serde_json::from_str(&text).map_err(|e| bad(&cmp_path, format!("not a list of phase-4 comparisons: {e}"), "rerun phase 4 (`cargo xtask run-all --force phase4-evaluation`)"))?;
        inputs.comparisons = Some(cmps);
    } else {
        inputs.missing.push(Missing { path: cmp_path, consequence: "no paired significance tests against the baseline".into(), producer: "phase 4 (`phase4-evaluation run`)".into() });
    }

    // Training runs: the adapters folder, plus the folders the configured variants point into.
    let extra: Vec<PathBuf> = inputs.variants.iter().filter_map(|v| v.path.as_ref().and_then(|p| p.parent()).map(Path::to_path_buf)).collect();
    let run_dirs = training::discover(&paths.runs, &extra)?;
    if run_dirs.is_empty() {
        inputs.missing.push(Missing { path: paths.runs.join("*").join("summary.json"), consequence: "no training runs: no loss curves, training columns or experiment log".into(), producer: "phase 3 (`phase3-training run`)".into() });
    }
    for dir in run_dirs {
        let run = training::read_run(&dir)?;
        if run.summary.is_none() {
            inputs.missing.push(Missing { path: dir.join("summary.json"), consequence: format!("run `{}` has curves but no summary (it has not finished)", run.name), producer: "phase 3, at the end of the run".into() });
        }
        if run.train.is_empty() {
            inputs.missing.push(Missing { path: dir.join("metrics.jsonl"), consequence: format!("no loss curve for run `{}`", run.name), producer: "phase 3".into() });
        }
        inputs.runs.push(run);
    }
    // Runs of evaluated variants first, in variant order, then the others by name and rank.
    let position = |r: &TrainingRun| inputs.variants.iter().position(|v| v.name == r.name).unwrap_or(usize::MAX);
    let mut keyed: Vec<((usize, String, u64), TrainingRun)> = std::mem::take(&mut inputs.runs)
        .into_iter()
        .map(|r| {
            let (base, rank) = r.sweep_rank().unwrap_or_else(|| (r.name.clone(), 0));
            ((position(&r), base, rank), r)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    inputs.runs = keyed.into_iter().map(|(_, r)| r).collect();
    // Expected runs (the configured variants' folders) that were not found at all.
    for v in &inputs.variants {
        if let Some(dir) = v.path.as_ref().and_then(|p| p.parent()) {
            if v.kind != Some(VariantKind::Base) && !inputs.runs.iter().any(|r| r.dir == dir || r.name == v.name) {
                inputs.missing.push(Missing { path: dir.join("summary.json"), consequence: format!("no training record for variant `{}`", v.name), producer: "phase 3 (`phase3-training run`)".into() });
            }
        }
    }

    if paths.data_card.is_file() {
        let p = &paths.data_card;
        let text = std::fs::read_to_string(p).map_err(|e| bad(p, e.to_string(), "check the file's permissions"))?;
        inputs.data_card = Some(serde_json::from_str(&text).map_err(|e| bad(p, format!("not a phase-1 data card: {e}"), "rerun phase 1 (`cargo xtask run-all --force phase1-curation`)"))?);
    } else {
        inputs.missing.push(Missing { path: paths.data_card.clone(), consequence: "no data card summary".into(), producer: "phase 1 (`phase1-curation run`)".into() });
    }

    if paths.manifest.is_file() {
        let p = &paths.manifest;
        let text = std::fs::read_to_string(p).map_err(|e| bad(p, e.to_string(), "check the file's permissions"))?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| bad(p, format!("not a run manifest: {e}"), "delete it; `cargo xtask run-all` writes a fresh one"))?;
        inputs.manifest = Some((p.clone(), m));
    } else {
        inputs.missing.push(Missing { path: paths.manifest.clone(), consequence: "no input/output hashes of the phases".into(), producer: "`cargo xtask run-all`".into() });
    }
    Ok(inputs)
}
