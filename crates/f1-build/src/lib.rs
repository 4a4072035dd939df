//! Build-script helper shared by every crate whose executables link libtorch.
//!
//! `torch-sys` links libtorch for us, but two things are left to the final executable's crate:
//! an rpath so binaries find `torch/lib` without `LD_LIBRARY_PATH`, and forcing
//! `libtorch_cuda` into the link. Nothing in our code references a CUDA symbol, so under the
//! default `--as-needed` the linker drops `libtorch_cuda.so` and `tch::Cuda::is_available()`
//! then reports false even on a GPU machine. Cargo does not forward a dependency's link args
//! to dependents, hence one tiny helper called from each crate's `build.rs`.

use std::path::PathBuf;

/// Locate libtorch the way `torch-sys` does for our set-up: `LIBTORCH` (set by
/// `.cargo/config.toml` to the `.libtorch` link that `cargo xtask setup` makes, or by the user).
fn libtorch_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("LIBTORCH")?);
    // Resolve the `.libtorch` symlink so the rpath names the real directory.
    Some(dir.canonicalize().unwrap_or(dir))
}

/// Emit the link arguments for every executable of the calling crate (binaries, tests,
/// examples, benches): rpath to `torch/lib`, and `libtorch_cuda` kept when it exists.
pub fn link_libtorch() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(dir) = libtorch_dir() else {
        println!(
            "cargo:warning=LIBTORCH is not set; run `cargo xtask setup` so binaries find libtorch"
        );
        return;
    };
    if let Some(version) = libtorch_version(&dir) {
        println!("cargo:rustc-env=F1_LIBTORCH_VERSION={version}");
    }
    let lib = dir.join("lib");
    println!("cargo:rerun-if-changed={}", lib.display());
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!(
            "cargo:rustc-link-arg=-Wl,--no-as-needed,-L{},-ltorch_cuda,--as-needed",
            lib.display()
        );
    }
}

/// The PyTorch version of a pip-installed libtorch (`torch/version.py`), or of a standalone
/// libtorch (`build-version`).
fn libtorch_version(dir: &std::path::Path) -> Option<String> {
    if let Ok(text) = std::fs::read_to_string(dir.join("version.py")) {
        let line = text.lines().find(|l| l.starts_with("__version__"))?;
        return Some(line.split(['\'', '"']).nth(1)?.to_string());
    }
    std::fs::read_to_string(dir.join("build-version")).ok().map(|s| s.trim().to_string())
}
