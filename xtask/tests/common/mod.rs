//! What the whole-study tests share: a scratch study root beside the workspace's config and
//! base model, `cargo xtask run-all` on it, and JSON reading with the path in every panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root (xtask's parent), after checking the base model is there.
pub fn workspace() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf();
    assert!(workspace.join("models/base/SmolLM2-135M-Instruct.Q4_1.gguf").is_file(), "run `cargo xtask setup` first");
    workspace
}

/// A scratch study root: the config's relative paths (run files, the base model, example
/// data) resolve through links into the workspace; data/, models/ and results/ are written here.
pub fn study_root(workspace: &Path) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(workspace.join("config"), root.path().join("config")).expect("link config");
    std::fs::create_dir_all(root.path().join("models")).expect("models");
    std::os::unix::fs::symlink(workspace.join("models/base"), root.path().join("models/base")).expect("link base");
    root
}

/// `cargo xtask run-all --profile quick --config CONFIG --root ROOT [extra...]`, its output
/// captured; panics with both streams when it fails.
pub fn run_all(workspace: &Path, config: &Path, root: &Path, extra: &[&str]) -> String {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(workspace)
        .args(["run-all", "--profile", "quick", "--config"])
        .arg(config)
        .arg("--root")
        .arg(root)
        .args(extra)
        .output()
        .expect("spawn xtask");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "run-all failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// Every phase printed `<phase>: ok`.
pub fn assert_all_phases_ran(stdout: &str) {
    for phase in ["phase1-curation", "phase2-baseline", "phase3-training", "phase4-evaluation", "phase5-reporting"] {
        assert!(stdout.contains(&format!("{phase}: ok")), "{phase} did not run:\n{stdout}");
    }
}

/// A JSON file, parsed.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
