//! Checkpoints: trainable weights, optimizer state and loop state written into
//! `<output>/checkpoints/step-NNNNNN/` atomically (everything goes to a `.tmp` directory that is
//! renamed when complete, so a run killed mid-write leaves the previous checkpoint intact;
//! every file and both folders are synced before and after the rename, so a power loss cannot
//! leave a renamed folder with empty files). Checkpoints sort by their step number.
//! The run key stored with each checkpoint (config, data and model) keeps a resume from
//! continuing a different run.
//! When the loop keeps the weights of its best probe evaluation for `load_best_at_end`, and
//! they are not the checkpoint's own, they go beside them (`best.safetensors`), so every
//! checkpoint is complete on its own and a resumed run restores the same best weights.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::{Error, Result};

/// Loop position and bookkeeping needed to continue exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// Optimizer steps done.
    pub step: usize,
    /// Epoch of the next micro-batch.
    pub epoch: usize,
    /// Index of the next micro-batch in that epoch's order.
    pub batch_in_epoch: usize,
    /// The run key (`crate::run_key`: config, data and model) it was written under.
    pub config_hash: String,
    /// Best validation loss so far.
    pub best_val_loss: Option<f64>,
    /// Evaluations since the best one on the early-stopping metric.
    pub evals_without_improvement: usize,
    /// Probe accuracy of the base model (step 0).
    #[serde(default)]
    pub initial_probe_acc: Option<f64>,
    /// Best probe accuracy of an evaluation after training started.
    #[serde(default)]
    pub best_probe_acc: Option<f64>,
    /// The step of `best_probe_acc` (the earliest among equals).
    #[serde(default)]
    pub best_step: Option<usize>,
    /// Probe accuracy of the latest evaluation.
    #[serde(default)]
    pub last_probe_acc: Option<f64>,
    /// Early stopping ended the run here (a resumed run then writes its artifacts only).
    #[serde(default)]
    pub stopped_early: bool,
    /// Training tokens processed.
    pub tokens_seen: u64,
    /// Training seconds so far (excluding evaluation).
    pub train_seconds: f64,
}

const WEIGHTS: &str = "trainable.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";
const STATE: &str = "state.json";
const BEST: &str = "best.safetensors";

fn ck_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Checkpoint { path: path.into(), reason: reason.into() }
}

/// Write a checkpoint for `state.step` and keep only the newest `keep`. `best` holds the
/// weights of the best evaluation when the loop keeps them and they differ from `weights`.
pub fn save(dir: &Path, state: &LoopState, weights: &[(String, Tensor)], optimizer: &[(String, Tensor)], best: Option<&[(String, Tensor)]>, keep: usize) -> Result<PathBuf> {
    let final_dir = dir.join(format!("step-{:06}", state.step));
    let tmp = dir.join(format!("step-{:06}.tmp", state.step));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let contiguous = |v: &[(String, Tensor)]| v.iter().map(|(n, t)| (n.clone(), t.detach().contiguous())).collect::<Vec<_>>();
    Tensor::write_safetensors(&contiguous(weights), tmp.join(WEIGHTS))?;
    Tensor::write_safetensors(&contiguous(optimizer), tmp.join(OPTIMIZER))?;
    if let Some(best) = best {
        Tensor::write_safetensors(&contiguous(best), tmp.join(BEST))?;
    }
    let json = serde_json::to_string_pretty(state).map_err(|e| ck_err(&tmp, e.to_string()))?;
    std::fs::write(tmp.join(STATE), json).map_err(|e| Error::io(tmp.join(STATE), e))?;
    for name in [WEIGHTS, OPTIMIZER, BEST, STATE] {
        if tmp.join(name).exists() {
            f1_study::fs::sync_file(&tmp.join(name))?;
        }
    }
    f1_study::fs::sync_dir(&tmp)?;
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).map_err(|e| Error::io(&final_dir, e))?;
    }
    std::fs::rename(&tmp, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
    f1_study::fs::sync_dir(dir)?;
    let mut all = list(dir)?;
    while all.len() > keep.max(1) {
        let old = all.remove(0);
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    Ok(final_dir)
}

/// The step of a complete checkpoint folder's name (`step-000212` -> 212).
fn step_of(path: &Path) -> Option<u64> {
    path.file_name()?.to_str()?.strip_prefix("step-")?.parse().ok()
}

/// Complete checkpoints in `dir`, oldest first (by step number, so `step-1000000` comes after
/// `step-999999`).
pub fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Ok(vec![]);
    }
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .filter_map(|p| step_of(&p).map(|s| (s, p)))
        .collect();
    out.sort();
    Ok(out.into_iter().map(|(_, p)| p).collect())
}

/// A loaded checkpoint.
pub struct Loaded {
    /// Loop state.
    pub state: LoopState,
    /// Trainable weights by name.
    pub weights: Vec<(String, Tensor)>,
    /// Optimizer state.
    pub optimizer: Vec<(String, Tensor)>,
    /// The best evaluation's weights, when the checkpoint holds them apart from `weights`.
    pub best: Option<Vec<(String, Tensor)>>,
    /// Where it came from.
    pub path: PathBuf,
}

/// The newest checkpoint of a folder, as far as a run with a given key is concerned.
pub enum Latest {
    /// No complete checkpoint.
    None,
    /// One written under this run key, loaded.
    Same(Loaded),
    /// One written under another run key (not loaded).
    Other {
        /// The checkpoint folder.
        path: PathBuf,
        /// Its run key.
        key: String,
    },
}

/// The newest checkpoint in `dir`, loaded only when it was written under `run_key`.
pub fn load_latest(dir: &Path, run_key: &str) -> Result<Latest> {
    let Some(path) = list(dir)?.pop() else { return Ok(Latest::None) };
    let text = std::fs::read_to_string(path.join(STATE)).map_err(|e| Error::io(path.join(STATE), e))?;
    let state: LoopState = serde_json::from_str(&text).map_err(|e| ck_err(&path, format!("state.json: {e}")))?;
    if state.config_hash != run_key {
        return Ok(Latest::Other { path, key: state.config_hash });
    }
    let read = |name: &str| Tensor::read_safetensors(path.join(name)).map_err(|e| ck_err(&path, format!("{name}: {e}")));
    let best = if path.join(BEST).exists() { Some(read(BEST)?) } else { None };
    Ok(Latest::Same(Loaded { weights: read(WEIGHTS)?, optimizer: read(OPTIMIZER)?, best, state, path }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_sort_by_step_number_and_skip_unfinished_ones() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        for name in ["step-1000000", "step-999999", "step-000005", "step-000007.tmp", "notes"] {
            std::fs::create_dir_all(dir.path().join(name)).map_err(|e| Error::io(dir.path(), e))?;
        }
        let names: Vec<String> = list(dir.path())?.iter().filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).collect();
        assert_eq!(names, ["step-000005", "step-999999", "step-1000000"]);
        Ok(())
    }
}
