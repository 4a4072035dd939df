//! `cargo xtask e2e`: the demo's chat page end to end in headless Chromium, the way a person
//! uses it. Builds `phase5-reporting`, serves the base model twice (`f1-smollm2` and the copy
//! `smollm2-copy`, so the variant picker has a choice) on a free loopback port behind a random
//! API key, starts Debian's `chromium` headless (installing it with apt-get when no Chromium
//! is on PATH) and drives the page over the Chrome DevTools Protocol on its websocket: the page
//! must ask for the key, list both variants once given it, and stream the answer to a typed
//! question, which must equal the API's answer to the same greedy request. No npm, no network.
//!
//! CDP method and event names follow the protocol reference (`Page.navigate`,
//! `Runtime.evaluate`, `Input.dispatchMouseEvent`, `Input.insertText`,
//! `Page.captureScreenshot`); the page marks each answer with `data-state`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::Paths;

/// The question typed into the page.
const QUESTION: &str = "Who won the 2021 Formula One World Championship?";
/// Answer length: a few tokens keep the run short on a CPU.
const MAX_TOKENS: u32 = 24;
/// The second variant's name (the picker's choice).
const VARIANT: &str = "smollm2-copy";

/// Run the end-to-end test; any failed step is an error naming the step.
pub fn run(paths: &Paths) -> Result<()> {
    let started = Instant::now();
    let chromium = chromium()?;
    println!("e2e: browser {}", chromium.display());
    println!("e2e: building phase5-reporting (release)");
    let server_bin = build_server(paths)?;
    let key = format!("e2e-{:x}{:x}", std::process::id(), SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos());
    let server = Server::start(paths, &server_bin, &key)?;
    println!("e2e: server on {} (API key required)", server.url);

    let profile = std::env::temp_dir().join(format!("f1-e2e-chromium-{}", std::process::id()));
    let browser = Browser::start(&chromium, &profile)?;
    let result = drive(&browser, &server, &key);
    drop(browser);
    // Best effort: the profile is a throwaway folder in the temp dir.
    let _ = std::fs::remove_dir_all(&profile);
    drop(server);
    result?;
    println!("e2e: passed in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The page steps, then the API cross-check.
fn drive(browser: &Browser, server: &Server, key: &str) -> Result<()> {
    let mut page = browser.page()?;
    println!("e2e: opening {}/", server.url);
    page.call("Page.enable", json!({}))?;
    page.call("Page.navigate", json!({ "url": format!("{}/", server.url) }))?;
    page.wait_for("the page to load", Duration::from_secs(30), "document.readyState === 'complete' && !!document.getElementById('send')")?;

    // Without a key the page says the server needs one.
    let message = page.wait_for(
        "the page to ask for the API key",
        Duration::from_secs(30),
        "getComputedStyle(document.getElementById('keyrow')).display !== 'none' && document.getElementById('keymsg').textContent",
    )?;
    println!("e2e: page without a key says: {}", message.as_str().unwrap_or_default());
    page.click("#key")?;
    page.type_text(key)?;
    // Leaving the field commits it (its `change` event), as when a person clicks on.
    page.click("#q")?;
    let options = page.wait_for(
        "the variant picker to list both variants",
        Duration::from_secs(30),
        "document.getElementById('variant').options.length >= 2 && Array.from(document.getElementById('variant').options, (o) => o.value)",
    )?;
    println!("e2e: variants offered: {options}");
    let offered: Vec<&str> = options.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    if offered != ["f1-smollm2", VARIANT] {
        bail!("the picker lists {offered:?}, expected [\"f1-smollm2\", \"{VARIANT}\"]");
    }
    // A headless <select> has no popup to click; choose the way its keyboard handler would.
    page.eval(&format!("(() => {{ const s = document.getElementById('variant'); s.value = '{VARIANT}'; s.dispatchEvent(new Event('change')); document.getElementById('max').value = '{MAX_TOKENS}'; return s.value; }})()"))?;

    println!("e2e: typing the question and clicking Send");
    page.click("#q")?;
    page.type_text(QUESTION)?;
    page.click("#send")?;
    let state =
        "(() => { const a = document.querySelector('#log .assistant, #log .error[data-state]'); return a ? { state: a.dataset.state, model: a.dataset.model, text: a.textContent } : null; })()";
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut partial_seen = 0;
    let answer = loop {
        let s = page.eval(state)?;
        match s["state"].as_str() {
            Some("streaming") => {
                let n = s["text"].as_str().map_or(0, |t| t.chars().count());
                if n > partial_seen {
                    println!("e2e: streaming... {n} characters so far");
                    partial_seen = n;
                }
            }
            Some("done") => break s,
            Some(other) => bail!("the answer ended in state `{other}`: {}", s["text"]),
            None => {}
        }
        if Instant::now() > deadline {
            bail!("no finished answer on the page after 180 s (last state: {s})");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = answer["text"].as_str().unwrap_or_default().to_string();
    println!("e2e: page answer ({}): {text:?}", answer["model"]);
    if text.trim().is_empty() {
        bail!("the page's answer is empty");
    }
    if answer["model"] != VARIANT {
        bail!("the page asked {} instead of the picked variant {VARIANT}", answer["model"]);
    }
    let shot = std::env::temp_dir().join("f1-e2e-chat.png");
    if let Some(png) = page.call("Page.captureScreenshot", json!({ "format": "png" }))?["data"].as_str() {
        std::fs::write(&shot, decode_base64(png)?).with_context(|| format!("writing {}", shot.display()))?;
        println!("e2e: screenshot {}", shot.display());
    }

    // The same greedy request through the API gives the same text.
    let body = json!({ "model": VARIANT, "messages": [{ "role": "user", "content": QUESTION }], "max_tokens": MAX_TOKENS, "temperature": 0 });
    let (status, reply) = http(&server.addr, "POST", "/v1/chat/completions", Some(key), Some(&body.to_string()))?;
    if status != 200 {
        bail!("the API answered HTTP {status}: {reply}");
    }
    let reply: Value = serde_json::from_str(&reply).context("the API's answer is not JSON")?;
    let api_text = reply["choices"][0]["message"]["content"].as_str().context("the API's answer has no message content")?;
    if api_text != text {
        bail!("the page shows {text:?} but the API answers {api_text:?} to the same greedy request");
    }
    println!("e2e: the page's streamed answer equals the API's greedy answer");
    let (status, _) = http(&server.addr, "GET", "/v1/models", None, None)?;
    if status != 401 {
        bail!("/v1/models without the key answered HTTP {status}, expected 401");
    }
    Ok(())
}

/// A Chromium binary: `$F1_CHROMIUM`, else the first of the usual names on PATH, else Debian's
/// `chromium` installed with apt-get.
fn chromium() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("F1_CHROMIUM").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Some(p) = on_path(&["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]) {
        return Ok(p);
    }
    println!("e2e: no Chromium on PATH; installing Debian's `chromium` package (apt-get update && apt-get install -y chromium)");
    for args in [&["update"][..], &["install", "-y", "--no-install-recommends", "chromium"][..]] {
        let status =
            Command::new("apt-get").args(args).env("DEBIAN_FRONTEND", "noninteractive").status().context("could not run apt-get (hint: install Chromium yourself and set F1_CHROMIUM to its path)")?;
        if !status.success() {
            bail!("`apt-get {}` failed (hint: run it as root, or install Chromium yourself and set F1_CHROMIUM)", args.join(" "));
        }
    }
    on_path(&["chromium"]).context("apt-get installed chromium but no `chromium` is on PATH")
}

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file()))
}

/// `cargo build` the server and return its executable, as cargo reports it.
fn build_server(paths: &Paths) -> Result<PathBuf> {
    crate::cargo::build_bins(paths, &["phase5-reporting"])?.remove("phase5-reporting").context("cargo reported no phase5-reporting executable")
}

/// A child process killed when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `phase5-reporting serve` on a free loopback port.
struct Server {
    url: String,
    addr: String,
    _child: Guard,
}

impl Server {
    fn start(paths: &Paths, bin: &Path, key: &str) -> Result<Server> {
        println!("e2e: starting {} serve --port 0 --variant {VARIANT}=base --api-key ...", paths.show(bin));
        let mut child = Command::new(bin)
            .args(["serve", "--host", "127.0.0.1", "--port", "0", "--device", "cpu", "--variant", &format!("{VARIANT}=base"), "--api-key", key])
            .current_dir(&paths.root)
            .envs(paths.cargo_env())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("could not start {}", bin.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let child = Guard(child);
        let first = first_line_with(stdout, "serving on ", "e2e: server: ", Duration::from_secs(180)).context("the server did not start")?;
        let url = first.split_whitespace().find(|w| w.starts_with("http://")).context("no URL in the server's first line")?.to_string();
        let addr = url.trim_start_matches("http://").to_string();
        Ok(Server { url, addr, _child: child })
    }
}

/// Read `stream` line by line on a thread until a line containing `marker`; the rest is echoed
/// with `prefix` so the pipe never fills.
fn first_line_with(stream: impl Read + Send + 'static, marker: &'static str, prefix: &'static str, wait: Duration) -> Result<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut found = false;
        for line in BufReader::new(stream).lines().map_while(std::io::Result::ok) {
            if !found && line.contains(marker) {
                found = true;
                let _ = tx.send(line.clone());
            }
            if !prefix.is_empty() {
                println!("{prefix}{line}");
            }
        }
    });
    rx.recv_timeout(wait).map_err(|_| anyhow!("no line with `{marker}` within {} s", wait.as_secs()))
}

/// Headless Chromium with a DevTools port.
struct Browser {
    /// The browser's DevTools websocket (`ws://127.0.0.1:PORT/devtools/browser/ID`).
    ws: String,
    _child: Guard,
}

impl Browser {
    fn start(bin: &Path, profile: &Path) -> Result<Browser> {
        println!("e2e: starting headless Chromium");
        let mut cmd = Command::new(bin);
        cmd.args(["--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--window-size=1000,800"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // Chromium's sandbox refuses to start as root (CI runs as root); the only page it
        // opens is our own, on loopback.
        cmd.arg("--no-sandbox");
        let mut child = cmd.spawn().with_context(|| format!("could not start {}", bin.display()))?;
        let stderr = child.stderr.take().context("no stderr")?;
        let child = Guard(child);
        let line = first_line_with(stderr, "DevTools listening on ws://", "", Duration::from_secs(60)).context("Chromium did not open its DevTools port")?;
        let ws = line.split_whitespace().find(|w| w.starts_with("ws://")).context("no websocket URL in Chromium's DevTools line")?.to_string();
        Ok(Browser { ws, _child: child })
    }

    /// A CDP session on a new page (a target attached in flat mode on the browser's socket).
    fn page(&self) -> Result<Cdp> {
        let (socket, _) = tungstenite::connect(self.ws.as_str()).with_context(|| format!("connecting to {}", self.ws))?;
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = socket.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(60)))?;
        }
        let mut cdp = Cdp { socket, next_id: 0, session: None };
        let target = cdp.call("Target.createTarget", json!({ "url": "about:blank" }))?;
        let target = target["targetId"].as_str().context("Target.createTarget returned no targetId")?;
        let session = cdp.call("Target.attachToTarget", json!({ "targetId": target, "flatten": true }))?;
        cdp.session = Some(session["sessionId"].as_str().context("Target.attachToTarget returned no sessionId")?.to_string());
        Ok(cdp)
    }
}

/// A minimal Chrome DevTools Protocol client: numbered calls, to the page's session once
/// attached; events are skipped.
struct Cdp {
    socket: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next_id: u64,
    session: Option<String>,
}

impl Cdp {
    fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = &self.session {
            message["sessionId"] = json!(session);
        }
        self.socket.send(tungstenite::Message::text(message.to_string())).with_context(|| format!("sending {method}"))?;
        loop {
            let msg = self.socket.read().with_context(|| format!("waiting for the answer to {method}"))?;
            let tungstenite::Message::Text(text) = msg else { continue };
            let v: Value = serde_json::from_str(text.as_str()).with_context(|| format!("DevTools sent non-JSON: {text}"))?;
            if v["id"] != id {
                continue;
            }
            if !v["error"].is_null() {
                bail!("{method} failed: {}", v["error"]);
            }
            return Ok(v["result"].clone());
        }
    }

    /// Evaluate a JavaScript expression in the page and return its value.
    fn eval(&mut self, expression: &str) -> Result<Value> {
        let r = self.call("Runtime.evaluate", json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }))?;
        if !r["exceptionDetails"].is_null() {
            bail!("the page threw on `{expression}`: {}", r["exceptionDetails"]);
        }
        Ok(r["result"]["value"].clone())
    }

    /// Poll `expression` until it is truthy; returns its value.
    fn wait_for(&mut self, what: &str, limit: Duration, expression: &str) -> Result<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.eval(expression)?;
            let truthy = !(v.is_null() || v == false || v == "" || v == 0);
            if truthy {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("timed out after {} s waiting for {what}", limit.as_secs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A left click in the middle of the element `selector`, as mouse events.
    fn click(&mut self, selector: &str) -> Result<()> {
        let r = self.eval(&format!("(() => {{ const e = document.querySelector('{selector}'); if (!e) return null; e.scrollIntoView(); const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"))?;
        let (x, y) = match (r[0].as_f64(), r[1].as_f64()) {
            (Some(x), Some(y)) => (x, y),
            _ => bail!("no element `{selector}` on the page"),
        };
        for kind in ["mousePressed", "mouseReleased"] {
            self.call("Input.dispatchMouseEvent", json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }))?;
        }
        Ok(())
    }

    /// Type into the focused element.
    fn type_text(&mut self, text: &str) -> Result<()> {
        self.call("Input.insertText", json!({ "text": text }))?;
        Ok(())
    }
}

/// One HTTP exchange with the server on loopback (`Connection: close`; its JSON answers have a
/// length, never chunks): status and body.
fn http(addr: &str, method: &str, path: &str, key: Option<&str>, body: Option<&str>) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(300)))?;
    let body = body.unwrap_or("");
    let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).with_context(|| format!("reading the answer of {method} {path}"))?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").with_context(|| format!("{method} {path}: no HTTP header in the answer"))?;
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).with_context(|| format!("{method} {path}: bad status line {head:?}"))?;
    Ok((status, body.to_string()))
}

/// Standard base64 (RFC 4648), as CDP returns screenshots.
fn decode_base64(text: &str) -> Result<Vec<u8>> {
    let value = |c: u8| -> Result<u32> {
        Ok(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => bail!("not base64: byte {c}"),
        } as u32)
    };
    let bytes: Vec<u8> = text.bytes().filter(|&c| c != b'=' && !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c)? << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(decode_base64("aGVsbG8=").expect("valid"), b"hello");
        assert_eq!(decode_base64("aGk").expect("valid"), b"hi");
        assert_eq!(decode_base64("AAEC/w==").expect("valid"), [0, 1, 2, 255]);
        assert!(decode_base64("a*b").is_err());
    }
}
