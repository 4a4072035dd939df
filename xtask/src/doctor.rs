//! `cargo xtask doctor`: report the state of every piece `setup` provides, plus the machine and
//! what libtorch itself sees (via `phase2-baseline doctor`). It changes nothing and never fails
//! on a missing piece; it names the piece and the fix instead.

use std::process::Command;

use anyhow::Result;

use crate::{cargo, model, setup, Paths};

const FIX: &str = "fix: run `cargo xtask setup`";

pub fn run(paths: &Paths) -> Result<()> {
    let venv_ok = report_venv(paths);
    let link_ok = report_libtorch(paths);
    report_model(paths);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("cores:    {cores}");
    report_baseline(paths, venv_ok && link_ok);
    Ok(())
}

/// Venv location, Python version, pins, and whether torch actually imports.
fn report_venv(paths: &Paths) -> bool {
    println!("venv:     {}", paths.venv.display());
    if !paths.python.exists() {
        println!("          missing {}; {FIX}", paths.python.display());
        return false;
    }
    match setup::probe(&paths.python) {
        Ok(state) => {
            println!("python:   {}", state.python_version);
            let unmet = state.unmet();
            if unmet.is_empty() {
                println!("pins:     ok ({} packages)", setup::PINS.len());
            } else {
                println!("pins:     unmet: {}; {FIX}", unmet.join(" "));
            }
        }
        Err(e) => println!("pins:     could not query the venv: {e:#}"),
    }
    let out = Command::new(&paths.python)
        .args(["-c", "import torch; print(torch.__version__)"])
        .output();
    match out {
        Ok(out) if out.status.success() => {
            println!("torch:    {}", String::from_utf8_lossy(&out.stdout).trim());
            true
        }
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            println!("torch:    import failed: {}; {FIX}", err.trim().lines().last().unwrap_or("?"));
            false
        }
        Err(e) => {
            println!("torch:    could not start {}: {e}; {FIX}", paths.python.display());
            false
        }
    }
}

/// Whether `.libtorch` resolves to a directory that has `lib/`.
fn report_libtorch(paths: &Paths) -> bool {
    match std::fs::canonicalize(&paths.libtorch) {
        Ok(dir) if dir.join("lib").is_dir() => {
            println!("libtorch: .libtorch -> {}", dir.display());
            true
        }
        Ok(dir) => {
            println!("libtorch: .libtorch -> {} has no lib/; {FIX}", dir.display());
            false
        }
        Err(_) => {
            println!("libtorch: {} does not resolve; {FIX}", paths.libtorch.display());
            false
        }
    }
}

/// Presence, size and hash of the base model (the stamp is read, never written, here).
fn report_model(paths: &Paths) {
    let shown = paths.show(&paths.model);
    match model::check(&paths.model, false) {
        Ok(model::Status::Verified { cached }) => {
            let how = if cached { "per stamp" } else { "hashed now" };
            println!("model:    {shown} ({} bytes, sha256 ok, {how})", model::SIZE);
        }
        Ok(model::Status::Missing) => println!("model:    {shown} missing; {FIX}"),
        Ok(model::Status::Wrong { size, sha256 }) => println!(
            "model:    {shown} is wrong ({size} bytes, sha256 {}; expected {} bytes, {}); {FIX}",
            sha256.as_deref().unwrap_or("not computed"),
            model::SIZE,
            model::SHA256
        ),
        Err(e) => println!("model:    {shown} unreadable: {e:#}"),
    }
}

/// Ask libtorch itself (version, CUDA, threads, device) through the phase-2 binary.
fn report_baseline(paths: &Paths, ready: bool) {
    if !cargo::crate_exists(paths, "phase2-baseline") {
        println!("runtime:  phase2-baseline not built yet; libtorch runtime checks skipped");
        return;
    }
    if !ready {
        println!("runtime:  skipped until the venv and .libtorch are fixed; {FIX}");
        return;
    }
    println!("runtime:  cargo run --release -q -p phase2-baseline -- doctor");
    let mut cmd = cargo::cargo(paths);
    cmd.args(["run", "--release", "-q", "-p", "phase2-baseline", "--", "doctor"]);
    match cargo::status(cmd, "phase2-baseline doctor") {
        Ok(true) => {}
        Ok(false) => println!("runtime:  phase2-baseline doctor failed (see above)"),
        Err(e) => println!("runtime:  {e:#}"),
    }
}
