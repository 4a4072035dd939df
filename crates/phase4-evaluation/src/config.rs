//! The `model:` and `evaluation:` sections of `config/study.yaml`, with a profile (`quick`, ...)
//! merged over the section, and the top-level `system_prompt:` the training pairs were rendered
//! with (the evaluation asks in the same format unless `evaluation.system_prompt` overrides it).
//! Paths are relative to the directory the phase runs in (the workspace root under
//! `cargo xtask run-all`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use crate::judge::JudgeConfig;
use crate::mcq::McqModes;
use crate::variant::{Variant, VariantKind};
use crate::{Error, Result};

/// The study's model section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSection {
    /// GGUF file, HF directory or hub id of the base model.
    pub base: String,
    /// `auto`, `cpu`, `cuda`, `cuda:N`.
    pub device: String,
    /// `auto`, `f32`, `bf16`, `f16`.
    pub dtype: String,
}

impl Default for ModelSection {
    fn default() -> Self {
        ModelSection { base: f1_core::load::default_base_model().to_string_lossy().into_owned(), device: "auto".into(), dtype: "auto".into() }
    }
}

impl ModelSection {
    /// Device and dtype as the engine takes them.
    pub fn options(&self) -> Result<f1_core::ModelOptions> {
        Ok(f1_core::ModelOptions::parse(&self.device, &self.dtype)?)
    }
}

/// Evaluation settings shared by phase 2 and phase 4.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Multiple-choice benchmark (any MCQ JSONL).
    pub benchmark: PathBuf,
    /// Open questions with reference answers (chat, Alpaca or question/answer JSONL).
    pub open_questions: Option<PathBuf>,
    /// Questions the sources cannot answer (the right reply declines).
    pub unanswerable: Option<PathBuf>,
    /// Benchmark questions to use, in file order (0 = all).
    pub max_questions: usize,
    /// Open questions to use (0 = all).
    pub max_open: usize,
    /// Unanswerable questions to ask (0 = all).
    pub max_unanswerable: usize,
    /// Multiple-choice modes.
    pub mcq: McqModes,
    /// System turn of every conversation the harness builds from a question (chat-format MCQ
    /// scoring, generative and circular prompts, unanswerable questions, latency prompts from
    /// MCQ items); open questions bring their own from the file. [`load_study`] fills it from
    /// the study's top-level `system_prompt` unless this section sets it.
    pub system_prompt: Option<String>,
    /// Reply budget for open and unanswerable questions.
    pub open_max_new_tokens: usize,
    /// Conversations decoded together for open questions.
    pub open_batch: usize,
    /// Single requests timed for latency (0 = skip).
    pub latency_samples: usize,
    /// Reply budget of a latency request.
    pub latency_max_new_tokens: usize,
    /// Seed of the bootstrap intervals.
    pub seed: u64,
    /// Bootstrap resamples of paired comparisons.
    pub bootstrap_resamples: usize,
    /// Optional LLM judge of open answers (also enabled by `F1_JUDGE_ENDPOINT`).
    pub judge: Option<JudgeConfig>,
    /// Where `<variant>/eval.json` and friends go.
    pub results_dir: PathBuf,
    /// Fine-tuned variants phase 4 evaluates (the baseline is phase 2's).
    pub variants: Vec<Variant>,
    /// Named overrides merged over this section (`quick`).
    #[serde(skip_serializing)]
    pub profiles: serde_yaml::Mapping,
}

impl Default for EvalConfig {
    fn default() -> Self {
        let v = |name: &str, kind, path: &str| Variant { name: name.into(), kind, path: Some(PathBuf::from(path)) };
        EvalConfig {
            benchmark: "data/curated/benchmark.jsonl".into(),
            open_questions: Some("data/curated/test.jsonl".into()),
            unanswerable: Some("config/unanswerable.jsonl".into()),
            max_questions: 0,
            max_open: 100,
            max_unanswerable: 0,
            mcq: McqModes::default(),
            system_prompt: None,
            open_max_new_tokens: 64,
            open_batch: 8,
            latency_samples: 20,
            latency_max_new_tokens: 64,
            seed: 1234,
            bootstrap_resamples: 2000,
            judge: None,
            results_dir: "results".into(),
            variants: vec![
                v("lora", VariantKind::Lora, "models/adapters/lora/adapter"),
                v("qlora", VariantKind::Qlora, "models/adapters/qlora/adapter"),
                v("full", VariantKind::Full, "models/adapters/full/model"),
            ],
            profiles: serde_yaml::Mapping::new(),
        }
    }
}

/// The two sections a measuring phase reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Study {
    /// `model:`.
    pub model: ModelSection,
    /// `evaluation:` with the profile applied.
    pub eval: EvalConfig,
    /// Top-level `domain:` (what the study adapts the model to), if set.
    pub domain: Option<String>,
}

/// Read `model:` and `evaluation:` from a study config and apply `profile` (`default` applies
/// nothing). Unknown keys, bad values and unknown profiles fail naming the file and the key.
pub fn load_study(path: &Path, profile: &str) -> Result<Study> {
    let bad = |reason: String| Error::Config { path: path.to_path_buf(), reason };
    let doc = f1_study::study::read_document(path)?;
    let model: ModelSection = serde_yaml::from_value(f1_core::config::study_model_section(&doc, profile)).map_err(|e| bad(format!("section `model`: {e}")))?;
    let mut section = doc.get("evaluation").cloned().unwrap_or(Value::Mapping(Default::default()));
    if profile != "default" {
        let over = section.get("profiles").and_then(|p| p.get(profile)).cloned().ok_or_else(|| {
            let known: Vec<String> = section.get("profiles").and_then(Value::as_mapping).map(|m| m.keys().filter_map(|k| k.as_str().map(str::to_string)).collect()).unwrap_or_default();
            bad(format!("no profile `{profile}` under `evaluation.profiles` (known: default{})", known.iter().map(|k| format!(", {k}")).collect::<String>()))
        })?;
        f1_core::config::merge_yaml(&mut section, over);
    }
    let mut eval: EvalConfig = serde_yaml::from_value(section).map_err(|e| bad(format!("section `evaluation`: {e}")))?;
    if eval.system_prompt.is_none() {
        eval.system_prompt = match doc.get("system_prompt") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => return Err(bad(format!("`system_prompt` must be a string, found {other:?}"))),
        };
    }
    eval.validate().map_err(bad)?;
    let domain = match doc.get("domain") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) => Some(d.clone()),
        Some(other) => return Err(bad(format!("`domain` must be a string, found {other:?}"))),
    };
    Ok(Study { model, eval, domain })
}

impl EvalConfig {
    /// Check values a user could get wrong.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let m = &self.mcq;
        if !(m.chat || m.loglikelihood || m.circular || m.generative) {
            return Err("evaluation.mcq: enable at least one of `chat`, `loglikelihood`, `circular`, `generative`".into());
        }
        if self.mcq.chunk == 0 || self.mcq.batch == 0 || self.open_batch == 0 {
            return Err("evaluation: `mcq.chunk`, `mcq.batch` and `open_batch` must be at least 1".into());
        }
        if self.mcq.generative && self.mcq.max_new_tokens == 0 {
            return Err("evaluation.mcq.max_new_tokens must be at least 1 for the generative mode".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for v in &self.variants {
            if v.name == "baseline" || !names.insert(v.name.as_str()) {
                return Err(format!("evaluation.variants: the name `{}` is reserved or used twice", v.name));
            }
            if v.kind != VariantKind::Base && v.path.is_none() {
                return Err(format!("evaluation.variants: `{}` needs a `path`", v.name));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_merge_and_mistakes_name_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("study.yaml");
        std::fs::write(&p, "evaluation:\n  max_open: 7\n  mcq: {generative: false}\n  profiles:\n    quick: {max_questions: 5, mcq: {chunk: 2}}\n").expect("write");
        let s = load_study(&p, "quick").expect("quick");
        assert_eq!((s.eval.max_questions, s.eval.max_open, s.eval.mcq.chunk, s.eval.mcq.generative), (5, 7, 2, false));
        assert_eq!(load_study(&p, "default").expect("default").eval.max_questions, 0);
        let e = load_study(&p, "fast").expect_err("unknown profile").to_string();
        assert!(e.contains("quick") && e.contains("study.yaml"), "{e}");
        std::fs::write(&p, "evaluation:\n  max_questons: 5\n").expect("write");
        let e = load_study(&p, "default").expect_err("typo").to_string();
        assert!(e.contains("max_questons"), "{e}");
        // A misspelled section, which left every evaluation setting at its default before.
        std::fs::write(&p, "evalution:\n  max_questions: 5\n").expect("write");
        let e = load_study(&p, "default").expect_err("section typo").to_string();
        assert!(e.contains("`evalution`") && e.contains("study.yaml"), "{e}");
        std::fs::write(&p, "evaluation:\n  mcq: {chat: false, loglikelihood: false, circular: false, generative: false}\n").expect("write");
        assert!(load_study(&p, "default").is_err());
        // Old configs that only knew the plain and generative modes still parse, the new modes on.
        std::fs::write(&p, "evaluation:\n  mcq: {loglikelihood: false, generative: false}\n").expect("write");
        let m = load_study(&p, "default").expect("old mcq keys").eval.mcq;
        assert!(m.chat && m.circular && !m.loglikelihood);
    }

    #[test]
    fn the_study_system_prompt_reaches_the_evaluation_unless_it_sets_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("study.yaml");
        std::fs::write(&p, "system_prompt: You are a Formula 1 expert.\nevaluation:\n  max_open: 3\n").expect("write");
        assert_eq!(load_study(&p, "default").expect("study").eval.system_prompt.as_deref(), Some("You are a Formula 1 expert."));
        std::fs::write(&p, "system_prompt: You are a Formula 1 expert.\nevaluation:\n  system_prompt: Be brief.\n").expect("write");
        assert_eq!(load_study(&p, "default").expect("study").eval.system_prompt.as_deref(), Some("Be brief."));
        std::fs::write(&p, "evaluation: {}\n").expect("write");
        assert_eq!(load_study(&p, "default").expect("study").eval.system_prompt, None);
        std::fs::write(&p, "system_prompt: [a, b]\n").expect("write");
        let e = load_study(&p, "default").expect_err("list").to_string();
        assert!(e.contains("system_prompt") && e.contains("study.yaml"), "{e}");
    }

    #[test]
    fn a_profile_can_swap_the_model_and_the_shipped_study_loads_under_each_profile() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("study.yaml");
        std::fs::write(&p, "model:\n  base: small.gguf\n  profiles:\n    gpu: {base: org/big, dtype: bf16}\nevaluation:\n  profiles:\n    gpu: {}\n").expect("write");
        let gpu = load_study(&p, "gpu").expect("gpu");
        assert_eq!((gpu.model.base.as_str(), gpu.model.dtype.as_str(), gpu.model.device.as_str()), ("org/big", "bf16", "auto"));
        assert_eq!(load_study(&p, "default").expect("default").model.base, "small.gguf");
        // The repository's own study: every profile it names resolves.
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/study.yaml");
        let default = load_study(&shipped, "default").expect("default profile");
        let quick = load_study(&shipped, "quick").expect("quick profile");
        let gpu = load_study(&shipped, "gpu").expect("gpu profile");
        // The quick profile is the small one (its benchmark is small already, so it may keep
        // every question, but it asks fewer open questions and times fewer requests).
        assert!(quick.eval.max_open > 0 && (default.eval.max_open == 0 || quick.eval.max_open <= default.eval.max_open));
        assert!(quick.eval.latency_samples <= default.eval.latency_samples);
        // The system prompt the pairs are trained with reaches the evaluation.
        assert_eq!(quick.eval.system_prompt, default.eval.system_prompt);
        assert_eq!(gpu.model.dtype, "bf16");
        assert!(gpu.model.base.contains('/') && !gpu.model.base.ends_with(".gguf"), "gpu profile names a hub id: {}", gpu.model.base);
    }
}
