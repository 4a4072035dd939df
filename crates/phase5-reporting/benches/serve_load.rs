//! Load test of the demo server (`cargo xtask bench`): the real SmolLM2 served on 127.0.0.1 with
//! one worker and a short queue, N concurrent clients (half of them streaming) each sending a
//! few greedy chat requests, bounded in time. A 429/503 is a rejection: the client waits the
//! `Retry-After` it was given and sends the request again. Prints requests/s, latency
//! (median, p90, p99 of the successful attempts) and the counts of ok, rejected, failed (any
//! other status, or an answer that is not a complete completion) and lost (no answer at all)
//! requests, and exits non-zero if any request failed or was lost.
//!
//! Knobs (environment): `F1_LOAD_CLIENTS` (8), `F1_LOAD_REQUESTS` per client (3),
//! `F1_LOAD_MAX_TOKENS` (8), `F1_LOAD_QUEUE` (4), `F1_LOAD_SECONDS`, the time bound after which
//! no new attempt starts (180).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use f1_core::{load_model, ModelOptions};
use phase5_reporting::serve::{self, ServeOptions, ServedModel};
use serde_json::{json, Value};

fn knob(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v.parse().with_context(|| format!("{name}={v}: expected a whole number")),
        Err(_) => Ok(default),
    }
}

/// How one logical request ended.
#[derive(Default)]
struct ClientTally {
    ok: usize,
    rejected: usize,
    failed: usize,
    lost: usize,
    /// Requests still rejected when the time bound came (neither failed nor lost).
    unserved: usize,
    latencies_ms: Vec<f64>,
    problems: Vec<String>,
}

/// Whether a 200 answer is a complete completion: a JSON chat completion, or an SSE stream of
/// chunks ending in `[DONE]` without an error event.
fn complete_answer(stream: bool, body: &str) -> std::result::Result<(), String> {
    if !stream {
        let v: Value = serde_json::from_str(body).map_err(|e| format!("not JSON ({e})"))?;
        return match v["choices"][0]["message"]["content"].as_str() {
            Some(_) => Ok(()),
            None => Err(format!("no message content: {v}")),
        };
    }
    let data: Vec<&str> = body.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    if data.last() != Some(&"[DONE]") {
        return Err("the stream does not end with [DONE]".into());
    }
    for d in &data[..data.len() - 1] {
        let v: Value = serde_json::from_str(d).map_err(|e| format!("event not JSON ({e}): {d}"))?;
        if !v["error"].is_null() {
            return Err(format!("error event: {v}"));
        }
    }
    Ok(())
}

fn client(url: &str, index: usize, requests: usize, max_tokens: usize, until: Instant) -> ClientTally {
    let stream = index % 2 == 1;
    let mut tally = ClientTally::default();
    let http = match reqwest::blocking::Client::builder().timeout(Duration::from_secs(300)).build() {
        Ok(h) => h,
        Err(e) => {
            tally.problems.push(format!("client {index}: cannot build an HTTP client: {e}"));
            tally.lost = requests;
            return tally;
        }
    };
    for r in 0..requests {
        let body = json!({
            "messages": [{ "role": "user", "content": format!("Name a Formula One world champion ({index}.{r}).") }],
            "max_tokens": max_tokens, "temperature": 0, "stream": stream,
        })
        .to_string();
        loop {
            if Instant::now() >= until {
                tally.unserved += 1;
                break;
            }
            let sent = Instant::now();
            let response = http.post(format!("{url}/v1/chat/completions")).header("content-type", "application/json").body(body.clone()).send();
            let response = match response {
                Ok(r) => r,
                Err(e) => {
                    tally.lost += 1;
                    tally.problems.push(format!("client {index} request {r}: no answer: {e}"));
                    break;
                }
            };
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<f64>().ok());
            let text = match response.text() {
                Ok(t) => t,
                Err(e) => {
                    tally.lost += 1;
                    tally.problems.push(format!("client {index} request {r}: answer cut off: {e}"));
                    break;
                }
            };
            match status {
                200 => {
                    match complete_answer(stream, &text) {
                        Ok(()) => {
                            tally.ok += 1;
                            tally.latencies_ms.push(sent.elapsed().as_secs_f64() * 1e3);
                        }
                        Err(why) => {
                            tally.failed += 1;
                            tally.problems.push(format!("client {index} request {r}: {why}"));
                        }
                    }
                    break;
                }
                429 | 503 => {
                    tally.rejected += 1;
                    std::thread::sleep(Duration::from_secs_f64(retry_after.unwrap_or(1.0).clamp(0.05, 10.0)));
                }
                _ => {
                    tally.failed += 1;
                    tally.problems.push(format!("client {index} request {r}: HTTP {status}: {}", text.chars().take(300).collect::<String>()));
                    break;
                }
            }
        }
    }
    tally
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() -> Result<()> {
    let clients = knob("F1_LOAD_CLIENTS", 8)?;
    let requests = knob("F1_LOAD_REQUESTS", 3)?;
    let max_tokens = knob("F1_LOAD_MAX_TOKENS", 8)?;
    let queue = knob("F1_LOAD_QUEUE", 4)?;
    let seconds = knob("F1_LOAD_SECONDS", 180)?;
    if clients == 0 || requests == 0 {
        bail!("F1_LOAD_CLIENTS and F1_LOAD_REQUESTS must be at least 1");
    }
    let path = std::env::var_os("F1_MODEL_GGUF").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/base/SmolLM2-135M-Instruct.Q4_1.gguf"));
    if !path.exists() {
        bail!("{} does not exist (hint: run `cargo xtask setup`, or set F1_MODEL_GGUF)", path.display());
    }
    let spec = path.to_string_lossy();
    let loaded = load_model(&spec, &ModelOptions::cpu(), None).with_context(|| format!("loading {spec}"))?;
    let options = ServeOptions { workers: 1, queue, ..ServeOptions::default() };
    let models = vec![ServedModel { name: "f1-smollm2".into(), description: format!("base {spec}"), loaded }];
    let server = serve::spawn(models, options, "127.0.0.1:0".parse()?)?;
    let url = server.url();
    println!("serve_load: {clients} clients x {requests} greedy chat requests (max_tokens {max_tokens}, half streamed) on {url}, 1 worker, queue {queue}, bound {seconds} s");

    let started = Instant::now();
    let until = started + Duration::from_secs(seconds as u64);
    let tallies: Vec<ClientTally> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|i| {
                scope.spawn({
                    let url = url.clone();
                    move || client(&url, i, requests, max_tokens, until)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| ClientTally { lost: requests, problems: vec!["a client thread panicked".into()], ..Default::default() })).collect()
    });
    let wall = started.elapsed().as_secs_f64();

    let mut total = ClientTally::default();
    for t in tallies {
        total.ok += t.ok;
        total.rejected += t.rejected;
        total.failed += t.failed;
        total.lost += t.lost;
        total.unserved += t.unserved;
        total.latencies_ms.extend(t.latencies_ms);
        total.problems.extend(t.problems);
    }
    total.latencies_ms.sort_by(f64::total_cmp);
    let l = &total.latencies_ms;
    println!("serve_load: {:.2} requests/s ({} ok in {wall:.1} s)", total.ok as f64 / wall, total.ok);
    println!("serve_load: latency ms median {:.0}, p90 {:.0}, p99 {:.0} (successful attempts, queueing included)", percentile(l, 50.0), percentile(l, 90.0), percentile(l, 99.0));
    println!("serve_load: ok {}, rejected {} (429/503, retried), failed {}, lost {}, unserved at the time bound {}", total.ok, total.rejected, total.failed, total.lost, total.unserved);
    for p in total.problems.iter().take(10) {
        eprintln!("serve_load: {p}");
    }
    let healthy = reqwest::blocking::get(format!("{url}/health")).map(|r| r.status().is_success()).unwrap_or(false);
    server.shutdown()?;
    if total.failed > 0 || total.lost > 0 {
        bail!("{} failed and {} lost requests (see above)", total.failed, total.lost);
    }
    if !healthy {
        bail!("the server's /health failed after the load");
    }
    if total.ok == 0 {
        bail!("no request succeeded within {seconds} s");
    }
    Ok(())
}
