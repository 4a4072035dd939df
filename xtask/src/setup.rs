//! `cargo xtask setup`: the Python venv with pinned packages (PyTorch provides libtorch for
//! `tch`; the rest serve parity tests, GGUF export and reference metrics), the `.libtorch` link
//! that `.cargo/config.toml` points `LIBTORCH` at, and the base model. Every step checks first
//! and does nothing when its result is already in place, so a second run takes a second.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{model, Paths};

/// Every Python package the project uses, pinned. `torch` must match the libtorch `tch` 0.26
/// binds; `peft`, `sacrebleu` and `rouge-score` are the references our adapters and metrics
/// are checked against; `accelerate` and `bitsandbytes` (NF4 on CPU since 0.46) serve the
/// Hugging Face peer of `cargo xtask bench`.
pub const PINS: &[(&str, &str)] = &[
    ("torch", "2.13.0"),
    ("transformers", "5.23.0"),
    ("gguf", "0.19.0"),
    ("peft", "0.21.2"),
    ("accelerate", "1.15.0"),
    ("bitsandbytes", "0.50.2"),
    ("sacrebleu", "2.6.0"),
    ("rouge-score", "0.1.2"),
];

/// Free space needed before installing: a CUDA build of torch with its NVIDIA wheels
/// takes about 8 GB once unpacked; the smaller packages alone fit in 1 GB.
const NEED_KIB_WITH_TORCH: u64 = 8 * 1024 * 1024;
const NEED_KIB_WITHOUT_TORCH: u64 = 1024 * 1024;

/// Asks the venv, in one interpreter start, for its Python version, the installed version of
/// every pinned package (`null` when absent) and torch's directory, without importing torch.
const PROBE: &str = r#"
import importlib.metadata as md, importlib.util as iu, json, os, sys
versions = {}
for name in json.loads(sys.argv[1]):
    try:
        versions[name] = md.version(name)
    except md.PackageNotFoundError:
        versions[name] = None
spec = iu.find_spec("torch")
torch_dir = os.path.dirname(os.path.realpath(spec.origin)) if spec and spec.origin else None
print(json.dumps({"python": sys.version.split()[0], "versions": versions, "torch_dir": torch_dir}))
"#;

/// What the venv holds, as reported by [`PROBE`].
pub struct VenvState {
    pub python_version: String,
    pub versions: BTreeMap<String, Option<String>>,
    pub torch_dir: Option<PathBuf>,
}

impl VenvState {
    /// Pins whose installed version differs or is missing, as `name==version`.
    pub fn unmet(&self) -> Vec<String> {
        PINS.iter()
            .filter(|(name, want)| {
                // A local label (`2.13.0+cpu`) is the same release for our purposes.
                let have = self.versions.get(*name).and_then(|v| v.as_deref());
                have.and_then(|v| v.split('+').next()) != Some(*want)
            })
            .map(|(name, want)| format!("{name}=={want}"))
            .collect()
    }

    pub fn version(&self, name: &str) -> &str {
        self.versions.get(name).and_then(|v| v.as_deref()).unwrap_or("missing")
    }
}

/// Run every step, one line of output each.
pub fn run(paths: &Paths) -> Result<()> {
    let state = ensure_venv(paths)?;
    ensure_libtorch_link(paths, &state)?;
    model::ensure(paths)
}

/// Create the venv when absent and install the pins when any is unmet.
fn ensure_venv(paths: &Paths) -> Result<VenvState> {
    if !paths.python.exists() {
        create_venv(&paths.venv)?;
    }
    let state = probe(&paths.python)?;
    let unmet = state.unmet();
    if unmet.is_empty() {
        println!("venv: ok (torch {})", state.version("torch"));
        return Ok(state);
    }
    let need = if unmet.iter().any(|p| p.starts_with("torch==")) {
        NEED_KIB_WITH_TORCH
    } else {
        NEED_KIB_WITHOUT_TORCH
    };
    check_free_space(&paths.venv, need)?;
    install_pins(paths, &unmet)?;
    let state = probe(&paths.python)?;
    let still = state.unmet();
    if !still.is_empty() {
        bail!(
            "pip finished but these pins are still unmet in {}: {}\n\
             hint: check for a conflicting constraint in pip's output, or delete the venv and rerun `cargo xtask setup`",
            paths.venv.display(),
            still.join(" ")
        );
    }
    println!("venv: ok (torch {})", state.version("torch"));
    Ok(state)
}

fn create_venv(venv: &Path) -> Result<()> {
    println!("venv: creating {}", venv.display());
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(venv)
        .status()
        .context("could not start `python3`; install Python 3.10+ and make sure it is on PATH")?;
    if !status.success() {
        bail!(
            "`python3 -m venv {}` failed ({status})\n\
             hint: on Debian/Ubuntu install the `python3-venv` package; or set F1_VENV to another directory",
            venv.display()
        );
    }
    Ok(())
}

/// Run [`PROBE`] with the venv interpreter.
pub fn probe(python: &Path) -> Result<VenvState> {
    let names: Vec<&str> = PINS.iter().map(|(name, _)| *name).collect();
    let out = Command::new(python)
        .args(["-c", PROBE])
        .arg(serde_json::to_string(&names)?)
        .output()
        .with_context(|| format!("could not start {}; run `cargo xtask setup`", python.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed to report its packages ({}):\n{}\nhint: delete the venv and rerun `cargo xtask setup`",
            python.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("unexpected output from {}", python.display()))?;
    let versions = json["versions"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().map(String::from))).collect())
        .unwrap_or_default();
    Ok(VenvState {
        python_version: json["python"].as_str().unwrap_or("?").to_string(),
        versions,
        torch_dir: json["torch_dir"].as_str().map(PathBuf::from),
    })
}

/// Fail early, with the numbers, rather than half-way through unpacking torch.
fn check_free_space(venv: &Path, need_kib: u64) -> Result<()> {
    // `df` needs an existing path; the venv exists by now, but be safe for its parents.
    let dir = venv.ancestors().find(|p| p.exists()).unwrap_or(Path::new("/"));
    let out = Command::new("df")
        .arg("-Pk")
        .arg(dir)
        .output()
        .context("could not run `df -Pk` to check free disk space")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // POSIX format: a header line, then `fs 1024-blocks used available capacity mount`.
    let avail_kib: u64 = text
        .lines()
        .nth(1)
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|field| field.parse().ok())
        .with_context(|| format!("could not parse `df -Pk {}` output:\n{text}", dir.display()))?;
    if avail_kib < need_kib {
        bail!(
            "only {:.1} GB free on the filesystem of {}, the install needs about {:.0} GB\n\
             hint: free some space, or set F1_VENV to a directory on a larger disk",
            avail_kib as f64 / 1048576.0,
            dir.display(),
            need_kib as f64 / 1048576.0
        );
    }
    Ok(())
}

/// Install all pins in one resolver run (so pip sees every constraint at once); the already
/// satisfied ones cost nothing.
fn install_pins(paths: &Paths, unmet: &[String]) -> Result<()> {
    let log = paths.venv.join("pip-install.log");
    println!("venv: installing {} (log: {})", unmet.join(" "), log.display());
    let mut cmd = Command::new(&paths.python);
    cmd.args(["-m", "pip", "install", "--disable-pip-version-check"]);
    cmd.args(PINS.iter().map(|(name, version)| format!("{name}=={version}")));
    run_logged(cmd, &log, "pip install")
}

/// Run `cmd` with its output going to `log`; on failure show the log's tail and what to check.
pub fn run_logged(mut cmd: Command, log: &Path, what: &str) -> Result<()> {
    let file = File::create(log).with_context(|| format!("could not create {}", log.display()))?;
    let status = cmd
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .with_context(|| format!("could not start {what} ({:?})", cmd.get_program()))?;
    if status.success() {
        return Ok(());
    }
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    bail!(
        "{what} failed ({status}); last lines of {}:\n{tail}\n\
         hint: check network access to PyPI (proxy, certificates) and free disk space, then rerun `cargo xtask setup`",
        log.display()
    )
}

/// Point `<root>/.libtorch` at the venv's torch directory, replacing a stale link.
fn ensure_libtorch_link(paths: &Paths, state: &VenvState) -> Result<()> {
    let target = state.torch_dir.as_ref().with_context(|| {
        format!("torch is not importable from {}; run `cargo xtask setup`", paths.python.display())
    })?;
    if !target.join("lib").is_dir() {
        bail!(
            "{} has no lib/ directory, so it cannot serve as libtorch\n\
             hint: reinstall with `{} -m pip install --force-reinstall torch==2.13.0`",
            target.display(),
            paths.python.display()
        );
    }
    let link = &paths.libtorch;
    match fs::symlink_metadata(link) {
        Ok(meta) if meta.file_type().is_symlink() => {
            if fs::canonicalize(link).ok().as_ref() == Some(target) {
                println!("libtorch: ok (.libtorch -> {})", target.display());
                return Ok(());
            }
            fs::remove_file(link)
                .with_context(|| format!("could not remove stale link {}", link.display()))?;
        }
        Ok(_) => bail!(
            "{} exists but is not a symlink; move it away so setup can link it to {}",
            link.display(),
            target.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("could not inspect {}", link.display())),
    }
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("could not create link {} -> {}", link.display(), target.display()))?;
    println!("libtorch: linked .libtorch -> {}", target.display());
    Ok(())
}
