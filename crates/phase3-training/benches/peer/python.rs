//! The Hugging Face peer as a child process: `hf_bench.py --serve` from the project venv,
//! spoken to in JSON lines (one request, one reply). The process lives for the whole run, so
//! Python and transformers start once; each case resets its peak-RSS mark on `setup`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::Sample;

/// The peer script, checked in next to this file.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peer/hf_bench.py")
}

/// Whether `python` imports what the peer needs; `Err` says what is missing.
pub fn check(python: &Path) -> std::result::Result<(), String> {
    let out = Command::new(python)
        .args(["-c", "import torch, transformers, peft"])
        .output()
        .map_err(|e| format!("cannot start {}: {e}", python.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} cannot import torch, transformers and peft: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ))
    }
}

/// The running peer.
pub struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

/// A reply that reports a failure of the case itself (the peer keeps serving).
#[derive(Debug)]
pub struct CaseError(pub String);

impl Peer {
    /// Start the peer with `python` (stderr goes to ours, so its warnings stay visible).
    pub fn spawn(python: &Path) -> Result<Self> {
        let script = script();
        let mut child = Command::new(python)
            .arg("-u")
            .arg(&script)
            .arg("--serve")
            .env("TRANSFORMERS_VERBOSITY", "error")
            .env("HF_HUB_OFFLINE", "1")
            // PEFT calls a transformers method deprecated for v6 on every wrap.
            .env("PYTHONWARNINGS", "ignore::FutureWarning")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {} {}; hint: run `cargo xtask setup`",
                    python.display(),
                    script.display()
                )
            })?;
        let stdin = child.stdin.take().context("peer stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("peer stdout")?);
        Ok(Peer {
            child,
            stdin: Some(stdin),
            stdout,
        })
    }

    /// One request and its reply: `Ok(Err(..))` when the peer reports a case failure.
    fn request(&mut self, msg: &Value) -> Result<std::result::Result<Value, CaseError>> {
        let stdin = self
            .stdin
            .as_mut()
            .context("the Hugging Face peer was closed")?;
        writeln!(stdin, "{msg}")
            .and_then(|_| stdin.flush())
            .context("the Hugging Face peer is gone (see its output above)")?;
        let mut line = String::new();
        if self
            .stdout
            .read_line(&mut line)
            .context("reading from the Hugging Face peer")?
            == 0
        {
            bail!(
                "the Hugging Face peer exited without replying to {}; see its output above",
                msg["cmd"]
            );
        }
        let reply: Value = serde_json::from_str(&line).with_context(|| {
            format!("the Hugging Face peer replied with something that is not JSON: {line:?}")
        })?;
        Ok(match reply.get("error").and_then(Value::as_str) {
            Some(e) => Err(CaseError(e.to_string())),
            None => Ok(reply),
        })
    }

    /// Versions of torch, transformers, peft and bitsandbytes, and the date.
    pub fn hello(&mut self) -> Result<Value> {
        self.request(&json!({"cmd": "hello"}))?
            .map_err(|e| anyhow::anyhow!("the peer cannot report its versions: {}", e.0))
    }

    /// Build a case (load the model, wrap it, hold the batch).
    pub fn setup(&mut self, spec: &Value) -> Result<std::result::Result<Value, CaseError>> {
        self.request(&json!({"cmd": "setup", "spec": spec}))
    }

    /// One timed repetition of the current case.
    pub fn run(&mut self) -> Result<std::result::Result<Sample, CaseError>> {
        Ok(self.request(&json!({"cmd": "run"}))?.and_then(|r| {
            let seconds = r["seconds"]
                .as_f64()
                .ok_or_else(|| CaseError(format!("reply without `seconds`: {r}")))?;
            let work = r["work"]
                .as_f64()
                .ok_or_else(|| CaseError(format!("reply without `work`: {r}")))?;
            Ok(Sample {
                seconds,
                work,
                ttft_s: r["ttft_s"].as_f64(),
                tokens: r["tokens"].as_f64(),
            })
        }))
    }

    /// End the case; its peak RSS in MiB.
    pub fn finish(&mut self) -> Result<Option<f64>> {
        Ok(self
            .request(&json!({"cmd": "finish"}))?
            .ok()
            .and_then(|r| r["peak_rss_mib"].as_f64()))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Closing stdin ends the serve loop after the current command; wait for it so no
        // zombie is left behind.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}
