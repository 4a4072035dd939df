//! A [`Backend`] behind an OpenAI-compatible HTTP endpoint (vLLM, llama.cpp's server, or this
//! project's `phase5-reporting serve`), so a served model is measured by the same scoring code
//! as a model in this process.
//!
//! Log-likelihood follows lm-evaluation-harness's completions-API models: the context and
//! continuation are sent as one prompt to `/v1/completions` with `max_tokens: 0, echo: true,
//! logprobs: 1`, and the continuation's tokens are found in the echoed prompt by their
//! `text_offset`. Trailing spaces of the context count as continuation, as
//! [`LocalBackend`](crate::LocalBackend) counts them, and a token that straddles the boundary is
//! scored (the local backend scores it too). A token is greedy when its log-probability is the
//! highest among the returned `top_logprobs`.
//!
//! Chat streams `/v1/chat/completions` (server-sent events), so time to first token is measured
//! at the first content delta as a user would see it. Requests are retried with exponential
//! backoff on connection errors, timeouts, 429 and 5xx; any other status fails at once.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use f1_core::{ChatMessage, LogLikelihood};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::backend::{ms, Backend, Generation, LlRequest};
use crate::{Error, Result};

/// Characters of an error body quoted in an error message.
const BODY_SNIPPET: usize = 300;

/// Where the served model is and how patiently to talk to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteConfig {
    /// Base URL ending in `/v1`, e.g. `http://127.0.0.1:8000/v1`.
    pub endpoint: String,
    /// The `model` sent with every request (the server's `--name`).
    pub model: String,
    /// Environment variable holding the API key (sent as a bearer token when set and non-empty).
    pub api_key_env: String,
    /// Whole-request timeout, seconds (a long generation on CPU counts against it).
    pub timeout_secs: f64,
    /// Retries after the first attempt on connection errors, timeouts, 429 and 5xx.
    pub max_retries: u32,
    /// Wait before the first retry, seconds; doubled on each further retry.
    pub backoff_secs: f64,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            endpoint: "http://127.0.0.1:8000/v1".into(),
            model: "f1-smollm2".into(),
            api_key_env: "OPENAI_API_KEY".into(),
            timeout_secs: 300.0,
            max_retries: 3,
            backoff_secs: 1.0,
        }
    }
}

/// A model served over HTTP with the OpenAI API.
pub struct RemoteBackend {
    config: RemoteConfig,
    base: String,
    client: reqwest::blocking::Client,
    api_key: Option<String>,
}

impl RemoteBackend {
    /// A client for `config.endpoint`. The API key is read from `config.api_key_env` now.
    pub fn new(config: RemoteConfig) -> Result<Self> {
        let base = config.endpoint.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Remote { url: config.endpoint.clone(), reason: "the endpoint must be an http:// or https:// URL ending in /v1".into() });
        }
        // Each becomes a Duration (from_secs_f64 panics past about 1.8e19 s); a day of timeout,
        // an hour of backoff and 20 retries are far beyond any real server's needs.
        let sane = config.timeout_secs.is_finite() && config.timeout_secs > 0.0 && config.timeout_secs <= 86_400.0 && config.backoff_secs.is_finite() && (0.0..=3600.0).contains(&config.backoff_secs) && config.max_retries <= 20;
        if !sane {
            return Err(Error::Invalid(format!("remote backend {base}: timeout_secs must be in (0, 86400], backoff_secs in [0, 3600] and max_retries at most 20, got {}, {} and {}", config.timeout_secs, config.backoff_secs, config.max_retries)));
        }
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs_f64(config.timeout_secs))
            .build()
            .map_err(|e| Error::Remote { url: base.clone(), reason: format!("cannot build the HTTP client: {e}") })?;
        let api_key = std::env::var(&config.api_key_env).ok().filter(|k| !k.is_empty());
        Ok(RemoteBackend { config, base, client, api_key })
    }

    /// The configuration in use.
    pub fn config(&self) -> &RemoteConfig {
        &self.config
    }

    /// POST `body` to `base + path`, retrying what may succeed later; returns the successful
    /// response (body unread, so a stream can be consumed as it arrives).
    fn post(&self, path: &str, body: &Value) -> Result<reqwest::blocking::Response> {
        let url = format!("{}{path}", self.base);
        let payload = serde_json::to_vec(body).map_err(|e| Error::Remote { url: url.clone(), reason: format!("cannot serialize the request: {e}") })?;
        let attempts = self.config.max_retries + 1;
        let mut last = String::new();
        for attempt in 0..attempts {
            if attempt > 0 {
                // Doubled per retry, never past an hour.
                let wait = (self.config.backoff_secs * f64::from(2u32.saturating_pow(attempt - 1))).min(3600.0);
                tracing::warn!(%url, attempt, "retrying in {wait:.2}s after: {last}");
                std::thread::sleep(Duration::from_secs_f64(wait));
            }
            let mut request = self.client.post(&url).header(reqwest::header::CONTENT_TYPE, "application/json").body(payload.clone());
            if let Some(key) = &self.api_key {
                request = request.bearer_auth(key);
            }
            match request.send() {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status();
                    let text = snippet(&response.text().unwrap_or_default());
                    last = format!("HTTP {status}: {text}");
                    if !(status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error()) {
                        return Err(Error::Remote { url, reason: last });
                    }
                }
                Err(e) if e.is_connect() || e.is_timeout() || e.is_request() => last = describe(&e),
                Err(e) => return Err(Error::Remote { url, reason: describe(&e) }),
            }
        }
        Err(Error::Remote { url, reason: format!("{last} (after {attempts} attempts; hint: is the server running? start one with `phase5-reporting serve`)") })
    }

    /// POST and parse the whole response as JSON.
    fn post_json(&self, path: &str, body: &Value) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let text = self.post(path, body)?.text().map_err(|e| Error::Remote { url: url.clone(), reason: format!("reading the response: {}", describe(&e)) })?;
        serde_json::from_str(&text).map_err(|e| Error::Remote { url, reason: format!("the response is not JSON ({e}): {}", snippet(&text)) })
    }

    /// Log-likelihood of one continuation after its context.
    fn score(&self, context: &str, continuation: &str) -> Result<LogLikelihood> {
        let url = format!("{}/completions", self.base);
        let body = json!({
            "model": self.config.model,
            "prompt": format!("{context}{continuation}"),
            "max_tokens": 0,
            "echo": true,
            "logprobs": 1,
            "temperature": 0,
        });
        let response = self.post_json("/completions", &body)?;
        let bad = |what: &str| Error::Remote {
            url: url.clone(),
            reason: format!("{what} in the completion response (the server must support `echo` with `logprobs` on /v1/completions, as vLLM does): {}", snippet(&response.to_string())),
        };
        let choice = response.get("choices").and_then(|c| c.get(0)).ok_or_else(|| bad("no choices[0]"))?;
        let logprobs = choice.get("logprobs").filter(|l| !l.is_null()).ok_or_else(|| bad("no choices[0].logprobs"))?;
        let array = |key: &str| logprobs.get(key).and_then(Value::as_array).ok_or_else(|| bad(&format!("no logprobs.{key} list")));
        let (token_logprobs, top_logprobs, offsets) = (array("token_logprobs")?, array("top_logprobs")?, array("text_offset")?);
        let n = token_logprobs.len();
        if top_logprobs.len() != n || offsets.len() != n {
            return Err(bad("logprobs lists of different lengths"));
        }
        let offsets = offsets.iter().map(|o| o.as_u64().map(|o| o as usize)).collect::<Option<Vec<_>>>().ok_or_else(|| bad("a non-integer text_offset"))?;
        let text_len = choice.get("text").and_then(Value::as_str).map_or(usize::MAX, |t| t.chars().count());
        // Offsets count characters, as Python (and the OpenAI API) index strings.
        let boundary = context.trim_end_matches(' ').chars().count();
        let (mut logprob, mut n_tokens, mut greedy_tokens) = (0.0, 0, 0);
        for i in 0..n {
            let end = offsets.get(i + 1).copied().unwrap_or(text_len);
            let Some(lp) = token_logprobs[i].as_f64() else { continue };
            if offsets[i] < boundary && end <= boundary {
                continue;
            }
            let best = top_logprobs[i].as_object().map(|m| m.values().filter_map(Value::as_f64).fold(f64::NEG_INFINITY, f64::max)).ok_or_else(|| bad("a missing top_logprobs entry"))?;
            logprob += lp;
            n_tokens += 1;
            if lp >= best {
                greedy_tokens += 1;
            }
        }
        if n_tokens == 0 {
            return Err(Error::Remote { url, reason: format!("no token of the continuation {continuation:?} was scored (empty continuation, or text offsets that do not match the prompt)") });
        }
        Ok(LogLikelihood { logprob, is_greedy: greedy_tokens == n_tokens, n_tokens, greedy_tokens })
    }

    /// One streamed, greedy chat completion.
    fn chat_one(&self, messages: &[ChatMessage], max_new_tokens: usize) -> Result<Generation> {
        let url = format!("{}/chat/completions", self.base);
        let body = json!({
            "model": self.config.model,
            "messages": messages,
            "max_tokens": max_new_tokens,
            "temperature": 0,
            "stream": true,
            "stream_options": { "include_usage": true },
        });
        let started = Instant::now();
        let response = self.post("/chat/completions", &body)?;
        let (mut text, mut deltas, mut first) = (String::new(), 0usize, None);
        let (mut finish_reason, mut usage) = (None, None);
        for line in BufReader::new(response).lines() {
            let line = line.map_err(|e| Error::Remote { url: url.clone(), reason: format!("reading the event stream: {e}") })?;
            let Some(data) = line.strip_prefix("data:") else { continue };
            let data = data.trim();
            if data == "[DONE]" {
                break;
            }
            let chunk: Value = serde_json::from_str(data).map_err(|e| Error::Remote { url: url.clone(), reason: format!("a stream event is not JSON ({e}): {}", snippet(data)) })?;
            if let Some(err) = chunk.get("error") {
                return Err(Error::Remote { url, reason: format!("the server failed mid-stream: {}", snippet(&err.to_string())) });
            }
            if let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) {
                if let Some(piece) = choice.get("delta").and_then(|d| d.get("content")).and_then(Value::as_str).filter(|p| !p.is_empty()) {
                    first.get_or_insert_with(|| started.elapsed());
                    text.push_str(piece);
                    deltas += 1;
                }
                if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                    finish_reason = Some(reason.to_string());
                }
            }
            if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
                usage = Some((u.get("prompt_tokens").and_then(Value::as_u64), u.get("completion_tokens").and_then(Value::as_u64)));
            }
        }
        let total = started.elapsed();
        let (prompt_tokens, completion_tokens) = match usage {
            Some((p, c)) => (p.unwrap_or(0) as usize, c.map_or(deltas, |c| c as usize)),
            // Without usage, each content delta stands for one token (true of this project's
            // server and of vLLM, except for multi-byte characters split across tokens).
            None => (0, deltas),
        };
        Ok(Generation {
            text,
            prompt_tokens,
            completion_tokens,
            ttft_ms: ms(first.unwrap_or(total)),
            total_ms: ms(total),
            finish_reason: finish_reason.unwrap_or_else(|| "length".into()),
        })
    }
}

impl Backend for RemoteBackend {
    fn describe(&self) -> String {
        format!("remote model `{}` at {}", self.config.model, self.base)
    }

    fn loglikelihood(&mut self, requests: &[LlRequest]) -> Result<Vec<Vec<LogLikelihood>>> {
        requests.iter().map(|r| r.continuations.iter().map(|c| self.score(&r.context, c)).collect()).collect()
    }

    /// Conversations go one request at a time: `batch` is the server's business (it may batch
    /// concurrent requests itself), and sequential requests keep the latencies per request.
    fn chat(&mut self, conversations: &[Vec<ChatMessage>], max_new_tokens: usize, _batch: usize) -> Result<Vec<Generation>> {
        conversations.iter().map(|m| self.chat_one(m, max_new_tokens)).collect()
    }

    fn render_chat(&self, _messages: &[ChatMessage]) -> Option<String> {
        None
    }
}

/// The first characters of a response body, on one line.
fn snippet(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(BODY_SNIPPET) {
        Some((cut, _)) => format!("{}...", &one_line[..cut]),
        None => one_line,
    }
}

/// A reqwest error with its causes (reqwest's own message omits them, e.g. "connection refused").
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_unknown_fields() {
        let c: RemoteConfig = serde_yaml::from_str("endpoint: http://localhost:9000/v1\n").expect("parse");
        assert_eq!(c.endpoint, "http://localhost:9000/v1");
        assert_eq!(c.api_key_env, "OPENAI_API_KEY");
        assert_eq!(c.max_retries, 3);
        assert!(serde_yaml::from_str::<RemoteConfig>("endpont: x\n").is_err());
    }

    #[test]
    fn bad_endpoints_are_refused() {
        let c = RemoteConfig { endpoint: "localhost:8000/v1".into(), ..Default::default() };
        assert!(matches!(RemoteBackend::new(c), Err(Error::Remote { .. })));
        // Values no Duration holds (from_secs_f64 panicked on them) are errors naming the key.
        for c in [
            RemoteConfig { timeout_secs: 1e20, ..Default::default() },
            RemoteConfig { timeout_secs: -1.0, ..Default::default() },
            RemoteConfig { backoff_secs: 1e20, ..Default::default() },
            RemoteConfig { backoff_secs: f64::NAN, ..Default::default() },
            RemoteConfig { max_retries: u32::MAX, ..Default::default() },
        ] {
            let err = RemoteBackend::new(c).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("timeout_secs must be in"), "{err}");
        }
    }

    #[test]
    fn snippets_are_short_and_on_one_line() {
        assert_eq!(snippet("a\n  b"), "a b");
        let long = "x".repeat(1000);
        assert_eq!(snippet(&long).chars().count(), BODY_SNIPPET + 3);
    }
}
