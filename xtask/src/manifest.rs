//! The run manifest, `results/manifest.json`: for every phase of `run-all`, the content hash of
//! each input (sources, model file, configs, earlier phases' outputs, and the phase's own
//! executable as `program:<phase>`) and output, the profile, and how long it took. A rerun skips a phase whose recorded inputs and outputs still hash the
//! same; a phase that failed or was interrupted has no entry and runs again (training then
//! resumes from its checkpoint). Later phases read earlier outputs as inputs, so a change
//! anywhere reruns exactly what depends on it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::Paths;

/// What one phase reads and writes, as paths relative to the root (files or folders).
pub struct PhaseFiles {
    /// Inputs.
    pub inputs: Vec<PathBuf>,
    /// Outputs.
    pub outputs: Vec<PathBuf>,
}

/// The F1 sources the study reads: those `run-all` fetched into the study root, else the mirror
/// `$F1_DATA`, else `../shared/f1data` next to the workspace.
pub fn data_dir(paths: &Paths) -> PathBuf {
    if let Some(dir) = &paths.fetched_sources {
        return dir.clone();
    }
    std::env::var_os("F1_DATA").filter(|d| !d.is_empty()).map(PathBuf::from).unwrap_or_else(|| shared_mirror(paths))
}

/// `../shared/f1data` next to the workspace.
fn shared_mirror(paths: &Paths) -> PathBuf {
    paths.root.join("..").join("shared").join("f1data")
}

/// Whether a mirror is configured (`F1_DATA`) or found next to the workspace; without one,
/// `run-all` fetches the sources from upstream.
pub fn mirror_available(paths: &Paths) -> bool {
    std::env::var_os("F1_DATA").is_some_and(|d| !d.is_empty()) || shared_mirror(paths).is_dir()
}

/// The paths a study config names, with the phases' defaults for keys it leaves out (the
/// same defaults the phase crates use), relative paths resolved against the study root.
pub struct StudyLayout {
    /// `model.base` (a hub id resolves to a path that does not exist: the config's hash covers it).
    pub model: PathBuf,
    /// `curation.import`: a user's JSONL instead of the F1 sources.
    pub import: Option<PathBuf>,
    /// `training.runs`.
    pub runs: Vec<PathBuf>,
    /// `evaluation.benchmark`, `open_questions`, `unanswerable` (those set).
    pub eval_inputs: Vec<PathBuf>,
    /// `evaluation.results_dir`.
    pub results: PathBuf,
    /// `evaluation.variants`: (name, trained model or adapter folder).
    pub variants: Vec<(String, PathBuf)>,
}

impl StudyLayout {
    /// Read the layout from `config` (a missing or unreadable file fails naming it).
    pub fn read(paths: &Paths, config: &Path) -> Result<Self> {
        let doc = f1_study::study::read_document(config)?;
        let r = |p: &str| paths.study_root.join(p);
        let at = |section: &str, key: &str| doc.get(section).and_then(|s| s.get(key));
        let path_at = |section: &str, key: &str, default: Option<&str>| -> Option<PathBuf> {
            match at(section, key) {
                Some(serde_yaml::Value::Null) => None,
                Some(v) => v.as_str().map(r),
                None => default.map(r),
            }
        };
        let model = path_at("model", "base", None).unwrap_or_else(|| paths.model.clone());
        let runs = match at("training", "runs").and_then(|v| v.as_sequence()) {
            Some(list) => list.iter().filter_map(|v| v.as_str()).map(r).collect(),
            None => ["lora", "qlora", "full"].iter().map(|n| r(&format!("config/{n}.yaml"))).collect(),
        };
        let eval_inputs = [
            path_at("evaluation", "benchmark", Some("data/curated/benchmark.jsonl")),
            path_at("evaluation", "open_questions", Some("data/curated/test.jsonl")),
            path_at("evaluation", "unanswerable", Some("config/unanswerable.jsonl")),
        ]
        .into_iter()
        .flatten()
        .collect();
        let variants = match at("evaluation", "variants").and_then(|v| v.as_sequence()) {
            Some(list) => list
                .iter()
                .filter_map(|v| Some((v.get("name")?.as_str()?.to_string(), v.get("path").and_then(|p| p.as_str()).map(r).unwrap_or_default())))
                .collect(),
            None => [("lora", "adapter"), ("qlora", "adapter"), ("full", "model")].iter().map(|(n, leaf)| (n.to_string(), r(&format!("models/adapters/{n}/{leaf}")))).collect(),
        };
        Ok(StudyLayout {
            model,
            import: path_at("curation", "import", None),
            runs,
            eval_inputs,
            results: path_at("evaluation", "results_dir", Some("results")).unwrap_or_else(|| r("results")),
            variants,
        })
    }

    /// What training leaves for each variant: its model or adapter folder and the run summary.
    fn trained(&self) -> Vec<PathBuf> {
        self.variants.iter().flat_map(|(_, p)| [p.clone(), p.parent().map(|d| d.join("summary.json")).unwrap_or_default()]).collect()
    }
}

/// Inputs and outputs of `phase` under the study config `config`.
pub fn phase_files(paths: &Paths, phase: &str, config: &Path, layout: &StudyLayout) -> PhaseFiles {
    let r = |p: &str| paths.study_root.join(p);
    let curated = ["train.jsonl", "validation.jsonl", "test.jsonl"].map(|f| r("data/curated").join(f));
    let trained = layout.trained();
    let mut inputs = vec![config.to_path_buf()];
    let outputs = match phase {
        "phase1-curation" => {
            match &layout.import {
                Some(file) => inputs.push(file.clone()),
                None => {
                    let d = data_dir(paths);
                    inputs.extend([d.join("f1db-main.tar.gz"), d.join("wikipedia"), d.join("livetiming")]);
                }
            }
            vec![r("data/curated")]
        }
        "phase2-baseline" => {
            inputs.push(layout.model.clone());
            inputs.extend(layout.eval_inputs.iter().cloned());
            vec![layout.results.join("baseline")]
        }
        "phase3-training" => {
            inputs.push(layout.model.clone());
            inputs.extend(layout.runs.iter().cloned());
            inputs.extend(curated[..2].iter().cloned());
            // The early-stopping probe (absent for imported studies: hashed as `absent`).
            inputs.push(r("data/curated/probe.jsonl"));
            trained
        }
        "phase4-evaluation" => {
            inputs.push(layout.model.clone());
            inputs.extend(layout.eval_inputs.iter().cloned());
            inputs.extend(trained);
            inputs.push(layout.results.join("baseline").join("mcq_items.jsonl"));
            let mut out: Vec<PathBuf> = layout.variants.iter().map(|(n, _)| layout.results.join(n)).collect();
            out.push(layout.results.join("comparison.json"));
            out
        }
        _ => {
            inputs.push(layout.results.join("baseline").join("eval.json"));
            inputs.extend(layout.variants.iter().map(|(n, _)| layout.results.join(n).join("eval.json")));
            inputs.push(layout.results.join("comparison.json"));
            inputs.extend(trained);
            inputs.push(r("data/curated/data_card.json"));
            vec![layout.results.join("reports")]
        }
    };
    PhaseFiles { inputs, outputs }
}

/// sha256 of a file or folder (`f1_study::hash::sha256_tree`); `absent` for a path that does
/// not exist (so its appearance later changes the hash).
pub fn hash_path(path: &Path) -> Result<String> {
    Ok(f1_study::hash::sha256_tree(path)?)
}

/// Hashes of `files`, keyed by path relative to the root (absolute outside it).
pub fn hashes(paths: &Paths, files: &[PathBuf]) -> Result<BTreeMap<String, String>> {
    files.iter().map(|f| Ok((paths.show(f), hash_path(f)?))).collect()
}

/// The manifest on disk.
pub struct Manifest {
    path: PathBuf,
    doc: Value,
}

impl Manifest {
    /// Read `results/manifest.json` (empty when absent; an unreadable one is set aside, not lost).
    pub fn load(paths: &Paths) -> Result<Self> {
        let path = paths.study_root.join("results").join("manifest.json");
        let doc = match std::fs::read_to_string(&path) {
            Ok(text) => match serde_json::from_str::<Value>(&text) {
                Ok(v) if v.get("phases").is_some_and(Value::is_object) => v,
                _ => {
                    let aside = path.with_extension("json.corrupt");
                    std::fs::rename(&path, &aside).with_context(|| format!("moving the unreadable {} aside", path.display()))?;
                    eprintln!("run-all: {} was unreadable; moved to {} and starting a fresh manifest", paths.show(&path), paths.show(&aside));
                    json!({"version": 1, "phases": {}})
                }
            },
            Err(_) => json!({"version": 1, "phases": {}}),
        };
        Ok(Manifest { path, doc })
    }

    /// Whether `phase` ran to completion with these inputs under `profile`, and its outputs are
    /// unchanged since.
    pub fn up_to_date(&self, paths: &Paths, phase: &str, profile: &str, inputs: &BTreeMap<String, String>, outputs: &[PathBuf]) -> Result<bool> {
        let Some(entry) = self.doc["phases"].get(phase) else { return Ok(false) };
        if entry["profile"] != profile || entry["inputs"] != json!(inputs) {
            return Ok(false);
        }
        Ok(entry["outputs"] == json!(hashes(paths, outputs)?))
    }

    /// Seconds the phase took last time (for an ETA).
    pub fn last_seconds(&self, phase: &str) -> Option<f64> {
        self.doc["phases"].get(phase)?.get("seconds")?.as_f64()
    }

    /// Forget a phase (it is about to run).
    pub fn invalidate(&mut self, phase: &str) -> Result<()> {
        if let Some(p) = self.doc["phases"].as_object_mut() {
            p.remove(phase);
        }
        self.save()
    }

    /// Record a completed phase.
    pub fn record(&mut self, phase: &str, profile: &str, inputs: BTreeMap<String, String>, outputs: BTreeMap<String, String>, seconds: f64) -> Result<()> {
        let finished = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.doc["phases"][phase] = json!({"profile": profile, "inputs": inputs, "outputs": outputs, "seconds": seconds, "finished_at": finished});
        self.save()
    }

    fn save(&self) -> Result<()> {
        Ok(f1_study::fs::write_json_atomic(&self.path, &self.doc)?)
    }
}
