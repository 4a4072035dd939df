//! Download a model from the Hugging Face hub with `hf-hub` (its blocking API and cache layout,
//! `~/.cache/huggingface/hub`, shared with Python tools). `HF_HUB_OFFLINE=1` reads the cache only.
//! The files fetched are what [`crate::load`] needs for a safetensors model directory.

use std::path::PathBuf;

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use crate::error::{Error, Result};

/// Files a model directory may hold that loading reads; weights are added from the listing.
const METADATA_FILES: &[&str] = &["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json", "chat_template.jinja"];

/// Whether `spec` looks like a hub id (`org/name`, optionally `@revision`) rather than a path.
pub fn looks_like_hub_id(spec: &str) -> bool {
    let id = spec.split('@').next().unwrap_or(spec);
    let parts: Vec<&str> = id.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
        && !spec.starts_with('.')
}

/// Fetch (or find in the cache) the files of hub model `spec` (`org/name[@revision]`) and
/// return the local snapshot directory holding them.
pub fn download(spec: &str) -> Result<PathBuf> {
    let (id, revision) = match spec.split_once('@') {
        Some((id, rev)) => (id.to_string(), rev.to_string()),
        None => (spec.to_string(), "main".to_string()),
    };
    let repo = Repo::with_revision(id.clone(), RepoType::Model, revision);
    let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    let hub_err = |reason: String| Error::Hub { repo: spec.to_string(), reason };
    if offline {
        let cached = Cache::from_env().repo(repo);
        let config = cached.get("config.json").ok_or_else(|| hub_err("HF_HUB_OFFLINE is set and config.json is not in the local hub cache; unset HF_HUB_OFFLINE or pass a local model directory".into()))?;
        return config.parent().map(PathBuf::from).ok_or_else(|| hub_err("cache path has no parent".into()));
    }
    let api = ApiBuilder::from_env().with_progress(true).build().map_err(|e| hub_err(format!("cannot start the hub client: {e}")))?;
    let api_repo = api.repo(repo);
    let info = api_repo.info().map_err(|e| {
        hub_err(format!(
            "cannot reach the Hugging Face hub ({e}); without network, download the model elsewhere and pass its local directory, or set HF_HUB_OFFLINE=1 to use the local cache"
        ))
    })?;
    let files: Vec<String> = info.siblings.into_iter().map(|s| s.rfilename).collect();
    let wanted = files.iter().filter(|f| METADATA_FILES.contains(&f.as_str()) || (f.ends_with(".safetensors") && !f.contains('/')) || f.as_str() == "model.safetensors.index.json");
    let mut dir = None;
    for file in wanted {
        tracing::info!(repo = %spec, %file, "downloading");
        let path = api_repo.get(file).map_err(|e| hub_err(format!("downloading {file}: {e}")))?;
        dir = path.parent().map(PathBuf::from);
    }
    if !files.iter().any(|f| f == "config.json") {
        return Err(hub_err("the repository has no config.json; only Hugging Face transformers checkpoints (or a local .gguf path) can be loaded".into()));
    }
    dir.ok_or_else(|| hub_err("nothing to download".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_are_told_from_paths() {
        assert!(looks_like_hub_id("HuggingFaceTB/SmolLM2-135M-Instruct"));
        assert!(looks_like_hub_id("Qwen/Qwen2-0.5B@main"));
        assert!(!looks_like_hub_id("models/base/model.gguf"));
        assert!(!looks_like_hub_id("./a/b"));
        assert!(!looks_like_hub_id("model.gguf"));
    }

    #[test]
    fn offline_hub_gives_a_clear_error() {
        // No network here: either offline-cache miss or connection failure must name the fix.
        let err = download("HuggingFaceTB/definitely-not-cached-model").expect_err("no network").to_string();
        assert!(err.contains("HuggingFaceTB/definitely-not-cached-model"), "{err}");
        assert!(err.contains("local") , "{err}");
    }
}
