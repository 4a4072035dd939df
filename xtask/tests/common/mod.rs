//! What the whole-study tests share: a scratch study root beside the workspace's config and
//! base model, `cargo xtask run-all` on it, a loopback "upstream" serving the F1 mirror's files,
//! and JSON reading with the path in every panic.
// Each whole-study test binary uses part of these helpers.
#![allow(dead_code)]

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

/// The F1 data mirror the tests serve: `$F1_DATA`, else `../shared/f1data` beside the workspace.
pub fn mirror(workspace: &Path) -> PathBuf {
    std::env::var_os("F1_DATA").filter(|d| !d.is_empty()).map(PathBuf::from).unwrap_or_else(|| workspace.join("../shared/f1data"))
}

/// A loopback HTTP server holding the mirror's files in its layout (`GET /f1db-main.tar.gz`,
/// `/wikipedia/107%25%20rule.html`, ...; 404 for anything else, robots.txt included): the
/// upstream of a fresh machine, without the network. Stops when dropped (or after 15 minutes).
pub struct Upstream {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Upstream {
    pub fn serve(dir: PathBuf) -> Upstream {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(900);
            while !stopped.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    continue;
                };
                let dir = dir.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let line = String::from_utf8_lossy(&request).lines().next().unwrap_or_default().to_owned();
                    let path = decode(line.split(' ').nth(1).unwrap_or("/").trim_start_matches('/'));
                    let file = (!path.split('/').any(|s| s == "..")).then(|| std::fs::read(dir.join(&path)).ok()).flatten();
                    let (status, body) = match file {
                        Some(body) => ("200 OK", body),
                        None => ("404 Not Found", Vec::new()),
                    };
                    let head = format!("HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", body.len());
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(&body);
                });
            }
        });
        Upstream { url, stop }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// `%XX` escapes back to the bytes they stand for (UTF-8 names).
fn decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
