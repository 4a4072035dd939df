//! The `training:` section of `config/study.yaml`: which run configs the study trains (LoRA,
//! QLoRA, full by default), overrides merged into every one of them, overrides for one run by
//! its `name` (`run_overrides`, merged after those), and named profiles (`quick`, `gpu`) merged
//! over the section. Every run trains the study's base model on the study's device, and renders
//! its probe after the study's top-level `system_prompt` (the one the training pairs carry), so
//! the variants differ only in method.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;

use crate::{config, Error, Result, TrainConfig};

/// The section as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Section {
    runs: Vec<PathBuf>,
    overrides: Value,
    run_overrides: serde_yaml::Mapping,
    profiles: serde_yaml::Mapping,
}

impl Default for Section {
    fn default() -> Self {
        Section { runs: ["lora", "qlora", "full"].iter().map(|n| PathBuf::from(format!("config/{n}.yaml"))).collect(), overrides: Value::Mapping(Default::default()), run_overrides: Default::default(), profiles: Default::default() }
    }
}

/// Resolve the study's training runs: each run file with the section's overrides (after the
/// profile) merged in, then `run_overrides.<name>` for the run of that `name`, the study's base
/// model and device, its `system_prompt` as `data.system_prompt`, and paths resolved against
/// `root`.
pub fn study_runs(study: &Path, profile: &str, root: &Path) -> Result<Vec<TrainConfig>> {
    let bad = |reason: String| Error::Config { path: study.to_path_buf(), reason };
    let doc = f1_study::study::read_document(study)?;
    let mut section = doc.get("training").cloned().unwrap_or(Value::Mapping(Default::default()));
    if profile != "default" {
        let over = section.get("profiles").and_then(|p| p.get(profile)).cloned().ok_or_else(|| bad(format!("no profile `{profile}` under `training.profiles`")))?;
        f1_core::config::merge_yaml(&mut section, over);
    }
    let section: Section = serde_yaml::from_value(section).map_err(|e| bad(format!("section `training`: {e}")))?;
    let model_section = f1_core::config::study_model_section(&doc, profile);
    let model = Some(&model_section);
    let system_prompt = match doc.get("system_prompt") {
        None | Some(Value::Null) => None,
        Some(v @ Value::String(_)) => Some(v.clone()),
        Some(_) => return Err(bad("`system_prompt` must be a string".into())),
    };
    let mut runs = vec![];
    let mut names = vec![];
    for file in &section.runs {
        let path = if file.is_relative() { root.join(file) } else { file.clone() };
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let mut value: Value = serde_yaml::from_str(&text).map_err(|e| Error::Config { path: path.clone(), reason: e.to_string() })?;
        f1_core::config::merge_yaml(&mut value, section.overrides.clone());
        let name = value.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        if let Some(over) = section.run_overrides.get(name.as_str()) {
            f1_core::config::merge_yaml(&mut value, over.clone());
        }
        names.push(name);
        if let Some(m) = model {
            let mut from_study = serde_yaml::Mapping::new();
            if let Some(base) = m.get("base") {
                from_study.insert("model".into(), base.clone());
            }
            let mut train = serde_yaml::Mapping::new();
            for key in ["device", "dtype"] {
                if let Some(v) = m.get(key) {
                    train.insert(key.into(), v.clone());
                }
            }
            from_study.insert("train".into(), Value::Mapping(train));
            if let Some(prompt) = &system_prompt {
                let mut data = serde_yaml::Mapping::new();
                data.insert("system_prompt".into(), prompt.clone());
                from_study.insert("data".into(), Value::Mapping(data));
            }
            f1_core::config::merge_yaml(&mut value, Value::Mapping(from_study));
        }
        let mut cfg: TrainConfig = serde_yaml::from_value(value).map_err(|e| Error::Config { path: path.clone(), reason: format!("{e} (after the overrides of {})", study.display()) })?;
        cfg.validate().map_err(|reason| Error::Config { path: path.clone(), reason })?;
        cfg.resolve_paths(root);
        runs.extend(config::expand(&cfg)?);
    }
    if let Some(unknown) = section.run_overrides.keys().find(|k| !names.iter().any(|n| Some(n.as_str()) == k.as_str())) {
        return Err(bad(format!("`training.run_overrides` names the run {unknown:?}, which no file in `training.runs` has as its `name` (runs: {})", names.join(", "))));
    }
    Ok(runs)
}

