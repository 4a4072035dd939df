//! LLM-as-judge: a client that asks a model behind any OpenAI-compatible chat-completions
//! endpoint (vLLM, llama.cpp's server, TGI, OpenAI itself) to grade a candidate answer against
//! a reference answer on a 1-5 factual-correctness scale, following the single-answer grading
//! with a reference of Zheng et al. 2023, "Judging LLM-as-a-Judge with MT-Bench and Chatbot
//! Arena" (arXiv:2306.05685).
//!
//! The judge is asked for one JSON object, `{"score": <1-5>, "reason": "..."}`, at temperature
//! 0, and its answer is parsed strictly: anything else is "garbage" and retried like a transient
//! failure, because a verdict guessed out of free text would be a measurement nobody can audit.
//! Requests are retried with exponential backoff and jitter on connect errors, timeouts, HTTP
//! 429 and 5xx; other 4xx fail at once since repeating them cannot help. Verdicts can be cached
//! on disk under the sha256 of the judge model and the exact messages, so a rerun of a study
//! (or the same judge model served elsewhere) costs no request.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng;
use reqwest::blocking::Client;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Environment variable that holds the judge's API key unless the config names another.
pub const DEFAULT_API_KEY_ENV: &str = "F1_JUDGE_API_KEY";
/// Environment variable that overrides [`JudgeConfig::endpoint`] in
/// [`JudgeConfig::from_env_overrides`].
pub const ENDPOINT_ENV: &str = "F1_JUDGE_ENDPOINT";
/// Environment variable that overrides [`JudgeConfig::model`] in
/// [`JudgeConfig::from_env_overrides`].
pub const MODEL_ENV: &str = "F1_JUDGE_MODEL";

/// Longest reason kept from a verdict, in characters: the reason is for a human skimming a
/// report, and a judge that rambles should not bloat every results file.
pub const REASON_MAX_CHARS: usize = 300;

/// How much of a bad response an error quotes, in characters.
const SNIPPET_CHARS: usize = 160;
/// Upper bound of one backoff sleep, so a large `max_retries` or a hostile `Retry-After` cannot
/// stall a run for hours.
const MAX_BACKOFF_SECS: f64 = 60.0;
/// Relative jitter added to each backoff, so parallel workers that failed together do not
/// retry in lockstep against a server that is already struggling.
const BACKOFF_JITTER: f64 = 0.1;
/// Below this many items a progress bar is more noise than help.
const PROGRESS_MIN_ITEMS: usize = 8;
/// Mixed into every cache key: changing the cache format means changing this tag, so old files
/// are simply never looked up again.
const CACHE_TAG: &str = "f1-judge-cache-v1";

/// The judge's rubric. Every level is defined so that two judge models (or two runs) read the
/// scale the same way; only correctness against the reference counts, as the study measures
/// knowledge, not style.
const SYSTEM_PROMPT: &str = "\
You are a strict grader of answers to questions about Formula 1. You are given a question, a \
reference answer and a candidate answer. Rate only the factual correctness of the candidate \
answer against the reference answer. Treat the reference as ground truth, even if you believe \
it is out of date. Ignore wording, length, formatting and style; extra details are fine as \
long as they do not contradict the reference.

Scores:
5 - fully correct: states the same facts as the reference.
4 - mostly correct: the main fact matches the reference; a minor detail is missing or slightly wrong.
3 - partially correct: some key facts match the reference and others are missing or wrong.
2 - mostly incorrect: the main fact is wrong or missing; only a minor element matches the reference.
1 - incorrect: contradicts the reference, is off-topic, or gives no answer.

Reply with a single JSON object and nothing else:
{\"score\": <integer from 1 to 5>, \"reason\": \"<one sentence explaining the score>\"}";

/// Settings of the judge client; deserializes from the evaluation config's `judge:` section,
/// every field optional.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JudgeConfig {
    /// Base URL of the OpenAI-compatible API, e.g. `http://127.0.0.1:8000/v1`; requests go to
    /// `{endpoint}/chat/completions`.
    pub endpoint: String,
    /// Judge model name as the server knows it.
    pub model: String,
    /// Name of the environment variable holding the API key, sent as a bearer token when set
    /// and non-empty; the key itself never goes in a config file.
    pub api_key_env: String,
    /// Total time allowed for one request, in seconds.
    pub timeout_secs: f64,
    /// Retries after the first attempt on transient failures.
    pub max_retries: u32,
    /// First backoff, in seconds; doubled on each retry, with a little jitter.
    pub backoff_secs: f64,
    /// Most requests in flight at once in [`Judge::judge_all`].
    pub concurrency: usize,
    /// Completion budget; a verdict is one short JSON object.
    pub max_tokens: u32,
    /// Directory of cached verdicts; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        JudgeConfig {
            // vLLM's default address; there is no sensible default model, so `model` stays
            // empty and `Judge::new` asks for one.
            endpoint: "http://127.0.0.1:8000/v1".to_string(),
            model: String::new(),
            api_key_env: DEFAULT_API_KEY_ENV.to_string(),
            timeout_secs: 60.0,
            max_retries: 4,
            backoff_secs: 1.0,
            concurrency: 4,
            max_tokens: 200,
            cache_dir: None,
        }
    }
}

impl JudgeConfig {
    /// This config with `endpoint` and `model` replaced by `F1_JUDGE_ENDPOINT` and
    /// `F1_JUDGE_MODEL` where those are set and non-empty, so one checked-in config can point at
    /// whichever judge a machine has.
    pub fn from_env_overrides(mut self) -> Self {
        if let Some(endpoint) = non_empty_env(ENDPOINT_ENV) {
            self.endpoint = endpoint;
        }
        if let Some(model) = non_empty_env(MODEL_ENV) {
            self.model = model;
        }
        self
    }
}

/// The value of environment variable `name`, if set and not blank.
fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// One answer to grade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JudgeItem {
    /// The question as the model saw it.
    pub question: String,
    /// The gold answer.
    pub reference: String,
    /// The model's answer.
    pub prediction: String,
}

/// The judge's grade of one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Factual correctness against the reference, 1 (wrong) to 5 (fully correct).
    pub score: u8,
    /// The judge's one-sentence justification, at most [`REASON_MAX_CHARS`] characters.
    pub reason: String,
    /// Whether the verdict came from the on-disk cache instead of a request.
    pub cached: bool,
}

/// One chat message of the judge request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system` or `user`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// The system and user messages that ask the judge to grade `item`.
///
/// The three texts are wrapped in tags so that an answer which itself contains a heading such
/// as "Reference answer:" cannot pass for another part of the prompt.
pub fn rubric_messages(item: &JudgeItem) -> Vec<ChatMessage> {
    let user = format!(
        "<question>\n{}\n</question>\n\n<reference_answer>\n{}\n</reference_answer>\n\n\
         <candidate_answer>\n{}\n</candidate_answer>\n\n\
         Grade the candidate answer against the reference answer. Reply with the JSON object only.",
        item.question.trim(),
        item.reference.trim(),
        item.prediction.trim(),
    );
    vec![
        ChatMessage {
            role: "system".to_string(),
            content: SYSTEM_PROMPT.to_string(),
        },
        ChatMessage {
            role: "user".to_string(),
            content: user,
        },
    ]
}

/// Parses the judge's reply strictly: one JSON object `{"score": <1-5>, "reason": "..."}` with
/// nothing around it but whitespace or a ```` ```json ```` fence. The score must be a JSON
/// integer (not `4.0`, not `"4"`), the reason a non-empty string, truncated to
/// [`REASON_MAX_CHARS`]. The returned verdict has `cached: false`; a bad reply gives
/// [`Error::Invalid`] quoting the start of it.
pub fn parse_verdict(content: &str) -> Result<Verdict> {
    parse_content(content)
        .map(|(score, reason)| Verdict {
            score,
            reason,
            cached: false,
        })
        .map_err(Error::Invalid)
}

/// [`parse_verdict`] with a plain reason, which the retry loop folds into its own message.
fn parse_content(content: &str) -> std::result::Result<(u8, String), String> {
    let inner = strip_fence(content.trim());
    let value: serde_json::Value = serde_json::from_str(inner)
        .map_err(|e| format!("not a single JSON object ({e}): {}", snippet(content)))?;
    let object = value
        .as_object()
        .ok_or_else(|| format!("expected a JSON object, got {}", snippet(content)))?;
    if let Some(key) = object.keys().find(|k| *k != "score" && *k != "reason") {
        return Err(format!(
            "unexpected key `{key}` (only `score` and `reason` are allowed): {}",
            snippet(content)
        ));
    }
    let score = object
        .get("score")
        .ok_or_else(|| format!("missing `score`: {}", snippet(content)))?;
    let score = score
        .as_u64()
        .filter(|s| (1..=5).contains(s))
        .and_then(|s| u8::try_from(s).ok())
        .ok_or_else(|| {
            format!(
                "`score` must be an integer from 1 to 5, got {score}: {}",
                snippet(content)
            )
        })?;
    let reason = object
        .get("reason")
        .and_then(serde_json::Value::as_str)
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| format!("`reason` must be a non-empty string: {}", snippet(content)))?;
    Ok((score, reason.chars().take(REASON_MAX_CHARS).collect()))
}

/// The inside of a ```` ```json ```` (or bare ```` ``` ````) fence around the whole reply, or
/// the reply unchanged. An unterminated fence is left in place so that JSON parsing rejects it.
fn strip_fence(s: &str) -> &str {
    let Some(rest) = s.strip_prefix("```") else {
        return s;
    };
    let rest = rest
        .strip_prefix("json")
        .or_else(|| rest.strip_prefix("JSON"))
        .unwrap_or(rest);
    match rest.strip_suffix("```") {
        Some(inner) => inner.trim(),
        None => s,
    }
}

/// The start of `text`, quoted with escapes visible, for error messages.
fn snippet(text: &str) -> String {
    let mut cut: String = text.chars().take(SNIPPET_CHARS).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

/// Aggregate of a batch of verdicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeSummary {
    /// Items judged.
    pub n: usize,
    /// Items with a verdict.
    pub scored: usize,
    /// Items whose judging failed.
    pub failed: usize,
    /// Mean score over `scored`; `None` when nothing was scored.
    pub mean_score: Option<f64>,
    /// Number of verdicts per score: index 0 counts score 1, index 4 score 5.
    pub distribution: [usize; 5],
}

/// Counts, mean and distribution of `verdicts`. A verdict whose score lies outside 1..=5
/// (only possible when built by hand) counts as failed rather than skewing the mean.
pub fn summarize(verdicts: &[Result<Verdict>]) -> JudgeSummary {
    let mut distribution = [0usize; 5];
    let mut total = 0u64;
    for verdict in verdicts.iter().flatten() {
        if let Some(slot) = usize::from(verdict.score)
            .checked_sub(1)
            .and_then(|i| distribution.get_mut(i))
        {
            *slot += 1;
            total += u64::from(verdict.score);
        }
    }
    let scored: usize = distribution.iter().sum();
    JudgeSummary {
        n: verdicts.len(),
        scored,
        failed: verdicts.len() - scored,
        mean_score: (scored > 0).then(|| total as f64 / scored as f64),
        distribution,
    }
}

/// Request body of `POST /chat/completions`.
#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    temperature: f64,
    max_tokens: u32,
    stream: bool,
}

/// The parts of a chat completion the judge reads; servers add many more fields.
#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: AssistantMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct AssistantMessage {
    #[serde(default)]
    content: Option<String>,
}

/// A cached verdict on disk. The model is kept for people browsing the cache and as a check
/// against a file copied under the wrong name.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheEntry {
    model: String,
    score: u8,
    reason: String,
}

/// Why one attempt failed, and whether another could succeed.
enum Failure {
    /// Connect error, timeout, 429, 5xx or garbage: worth retrying after a backoff, at least
    /// as long as the server's `Retry-After` when it sent one.
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Another attempt would fail the same way.
    Fatal(String),
}

impl Failure {
    fn transient(reason: String) -> Self {
        Failure::Transient {
            reason,
            retry_after: None,
        }
    }
}

/// A validated judge client; share it by reference across threads.
pub struct Judge {
    cfg: JudgeConfig,
    url: String,
    api_key: Option<String>,
    client: Client,
}

impl fmt::Debug for Judge {
    // Hand-written so that the API key never reaches a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Judge")
            .field("cfg", &self.cfg)
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

impl Judge {
    /// Checks `cfg`, reads the API key from the environment variable it names, creates the
    /// cache directory and builds the HTTP client. No request is made.
    pub fn new(cfg: JudgeConfig) -> Result<Judge> {
        let endpoint = cfg.endpoint.trim().trim_end_matches('/');
        if endpoint.is_empty() {
            return Err(invalid(format!(
                "`endpoint` is empty; set it to the server's base URL, e.g. http://127.0.0.1:8000/v1 \
                 (or export {ENDPOINT_ENV})"
            )));
        }
        let parsed = Url::parse(endpoint).map_err(|e| {
            invalid(format!(
                "`endpoint` {endpoint:?} is not a URL ({e}); use e.g. http://127.0.0.1:8000/v1"
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "`endpoint` {endpoint:?} must start with http:// or https://"
            )));
        }
        if cfg.model.trim().is_empty() {
            return Err(invalid(format!(
                "`model` is empty; set it to the judge model's name as the server lists it at {endpoint}/models \
                 (or export {MODEL_ENV})"
            )));
        }
        if cfg.concurrency == 0 {
            return Err(invalid(
                "`concurrency` is 0; set it to 1 or more".to_string(),
            ));
        }
        let timeout = Some(cfg.timeout_secs)
            .filter(|t| t.is_finite() && *t > 0.0)
            .and_then(|t| Duration::try_from_secs_f64(t).ok())
            .ok_or_else(|| {
                invalid(format!(
                    "`timeout_secs` is {}; set it to a positive number of seconds",
                    cfg.timeout_secs
                ))
            })?;
        if !(cfg.backoff_secs.is_finite() && cfg.backoff_secs >= 0.0) {
            return Err(invalid(format!(
                "`backoff_secs` is {}; set it to 0 or a positive number of seconds",
                cfg.backoff_secs
            )));
        }
        if cfg.max_tokens == 0 {
            return Err(invalid(
                "`max_tokens` is 0; a verdict needs about 100, set it to 200".to_string(),
            ));
        }
        if let Some(dir) = &cfg.cache_dir {
            // Created now so that an unwritable cache shows up before any request is paid for.
            fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }

        let mut builder = Client::builder().timeout(timeout).connect_timeout(timeout);
        // A judge on this machine is never reached through a proxy, whatever HTTP_PROXY says.
        if parsed.host_str().is_some_and(is_loopback_host) {
            builder = builder.no_proxy();
        }
        let client = builder
            .build()
            .map_err(|e| invalid(format!("cannot build the HTTP client: {e}")))?;
        let api_key = non_empty_env(&cfg.api_key_env);
        let url = format!("{endpoint}/chat/completions");
        Ok(Judge {
            cfg,
            url,
            api_key,
            client,
        })
    }

    /// The config this judge was built from.
    pub fn config(&self) -> &JudgeConfig {
        &self.cfg
    }

    /// The chat-completions URL requests go to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Grades every item with at most `concurrency` requests in flight; results come back in
    /// input order, one per item, so a failed item never shifts the others.
    pub fn judge_all(&self, items: &[JudgeItem]) -> Vec<Result<Verdict>> {
        if items.is_empty() {
            return Vec::new();
        }
        let workers = self.cfg.concurrency.min(items.len());
        tracing::info!(items = items.len(), workers, url = %self.url, model = %self.cfg.model, "judging");
        let bar = progress_bar(items.len());
        let next = AtomicUsize::new(0);
        let mut slots: Vec<Option<Result<Verdict>>> = items.iter().map(|_| None).collect();
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let tx = tx.clone();
                let next = &next;
                // Each worker claims the next unjudged index, so a slow item holds up one
                // worker instead of a whole fixed-size chunk.
                scope.spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    if tx.send((i, self.judge_one(item))).is_err() {
                        break;
                    }
                });
            }
            drop(tx);
            for (i, verdict) in rx {
                if let Some(slot) = slots.get_mut(i) {
                    *slot = Some(verdict);
                }
                bar.inc(1);
            }
        });
        bar.finish_and_clear();
        let results: Vec<Result<Verdict>> = slots
            .into_iter()
            .map(|slot| {
                slot.unwrap_or_else(|| {
                    Err(Error::Invalid(
                        "judge worker stopped before this item".to_string(),
                    ))
                })
            })
            .collect();
        let failed = results.iter().filter(|r| r.is_err()).count();
        let cached = results
            .iter()
            .filter(|r| r.as_ref().is_ok_and(|v| v.cached))
            .count();
        tracing::info!(items = results.len(), failed, cached, "judging done");
        results
    }

    /// Grades one item: from the cache when it holds this exact request, otherwise by asking
    /// the judge, retrying transient failures; the fresh verdict is then cached.
    pub fn judge_one(&self, item: &JudgeItem) -> Result<Verdict> {
        let messages = rubric_messages(item);
        let cache_path = self
            .cfg
            .cache_dir
            .as_ref()
            .map(|dir| dir.join(format!("{}.json", cache_key(&self.cfg.model, &messages))));
        if let Some(path) = &cache_path {
            if let Some(verdict) = read_cache(path, &self.cfg.model) {
                return Ok(verdict);
            }
        }
        let request = ChatRequest {
            model: &self.cfg.model,
            messages: &messages,
            temperature: 0.0,
            max_tokens: self.cfg.max_tokens,
            stream: false,
        };
        let body = serde_json::to_vec(&request)
            .map_err(|e| Error::Invalid(format!("cannot serialize the judge request: {e}")))?;
        let verdict = self.request_with_retries(body)?;
        if let Some(path) = &cache_path {
            // A verdict that was paid for is returned even if caching it fails; the next run
            // will simply ask again.
            if let Err(e) = write_cache(path, &self.cfg.model, &verdict) {
                tracing::warn!("cannot cache judge verdict: {e}");
            }
        }
        Ok(verdict)
    }

    /// Sends `body` until a verdict comes back, a fatal failure occurs, or the retries run out.
    fn request_with_retries(&self, body: Vec<u8>) -> Result<Verdict> {
        let attempts = self.cfg.max_retries.saturating_add(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            match self.attempt(body.clone()) {
                Ok(verdict) => return Ok(verdict),
                Err(Failure::Fatal(reason)) => {
                    return Err(Error::Remote {
                        url: self.url.clone(),
                        reason,
                    })
                }
                Err(Failure::Transient {
                    reason,
                    retry_after,
                }) => {
                    if attempt < attempts {
                        let wait = self.backoff(attempt, retry_after);
                        tracing::warn!(
                            url = %self.url,
                            "judge attempt {attempt}/{attempts} failed: {reason}; retrying in {:.2}s",
                            wait.as_secs_f64()
                        );
                        std::thread::sleep(wait);
                    }
                    last = reason;
                }
            }
        }
        Err(Error::Remote {
            url: self.url.clone(),
            reason: format!("gave up after {attempts} attempt(s): {last}"),
        })
    }

    /// Sleep before retry number `attempt` (1-based): `backoff_secs * 2^(attempt-1)` plus up to
    /// 10% jitter, at least the server's `Retry-After`, at most a minute.
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1).min(30)).unwrap_or(30);
        let base = self.cfg.backoff_secs * 2f64.powi(exponent);
        let jittered = base * (1.0 + rand::rng().random_range(0.0..BACKOFF_JITTER));
        let floor = retry_after.map_or(0.0, |d| d.as_secs_f64());
        let secs = jittered.max(floor).min(MAX_BACKOFF_SECS);
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::from_secs(60))
    }

    /// One request and the classification of its outcome.
    fn attempt(&self, body: Vec<u8>) -> std::result::Result<Verdict, Failure> {
        let mut request = self
            .client
            .post(&self.url)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().map_err(|e| self.transport_failure(&e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.text().map_err(|e| self.transport_failure(&e))?;

        if status.is_success() {
            return parse_completion(&text)
                .map_err(|reason| Failure::transient(format!("garbage from the judge: {reason}")));
        }
        let message = format!("HTTP {status}: {}", snippet(&text));
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(Failure::Transient {
                reason: message,
                retry_after,
            });
        }
        let hint = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => format!(
                "; hint: the server wants an API key: export it in the environment variable `{}` \
                 (named by `api_key_env`){}",
                self.cfg.api_key_env,
                if self.api_key.is_some() {
                    ", which is set but was rejected"
                } else {
                    ", which is not set"
                },
            ),
            StatusCode::NOT_FOUND => format!(
                "; hint: `endpoint` is the API base URL (e.g. http://127.0.0.1:8000/v1, without \
                 /chat/completions), and `model` ({:?}) must be a model the server serves",
                self.cfg.model
            ),
            _ => String::new(),
        };
        Err(Failure::Fatal(format!("{message}{hint}")))
    }

    /// Classifies a reqwest error: a bad request that was never sent is fatal, everything on
    /// the wire (connect, timeout, reset, truncated body) is worth another try.
    fn transport_failure(&self, e: &reqwest::Error) -> Failure {
        let chain = error_chain(e);
        if e.is_builder() || e.is_redirect() {
            Failure::Fatal(chain)
        } else if e.is_timeout() {
            Failure::transient(format!(
                "timed out after {}s ({chain})",
                self.cfg.timeout_secs
            ))
        } else if e.is_connect() {
            Failure::transient(format!("cannot connect ({chain})"))
        } else {
            Failure::transient(chain)
        }
    }
}

/// `Judge::new`'s error for a bad setting.
fn invalid(reason: String) -> Error {
    Error::Invalid(format!("judge config: {reason}"))
}

/// Whether `host` (as a URL spells it) is this machine.
fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `e` and its sources, since reqwest's own message ("error sending request") hides the cause.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The verdict in a chat-completion response body, or why there is none.
fn parse_completion(body: &str) -> std::result::Result<Verdict, String> {
    let completion: Completion = serde_json::from_str(body)
        .map_err(|e| format!("response is not a chat completion ({e}): {}", snippet(body)))?;
    let choice = completion
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| "response has no choices".to_string())?;
    let content = choice.message.content.unwrap_or_default();
    parse_content(&content)
        .map(|(score, reason)| Verdict {
            score,
            reason,
            cached: false,
        })
        .map_err(|reason| match choice.finish_reason.as_deref() {
            // Retrying a truncated answer at temperature 0 gives the same truncation: say why.
            Some("length") => format!("{reason} (finish_reason \"length\": raise `max_tokens`)"),
            _ => reason,
        })
}

/// Cache file stem: sha256 of the judge model and the exact messages, each length-prefixed so
/// that no two different requests hash the same bytes. The endpoint is left out on purpose: the
/// same model gives the same verdict wherever it is served.
fn cache_key(model: &str, messages: &[ChatMessage]) -> String {
    let mut fields = f1_study::hash::Fields::new();
    fields.field(CACHE_TAG.as_bytes()).field(model.as_bytes());
    for message in messages {
        fields.field(message.role.as_bytes()).field(message.content.as_bytes());
    }
    fields.hex()
}

/// The cached verdict at `path`, if there is a valid one. A missing file is a plain miss; an
/// unreadable or corrupt one is a miss with a warning, and the fresh verdict overwrites it.
fn read_cache(path: &Path, model: &str) -> Option<Verdict> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(
                "ignoring unreadable judge cache file {}: {e}",
                path.display()
            );
            return None;
        }
    };
    let checked = serde_json::from_str::<CacheEntry>(&text)
        .map_err(|e| e.to_string())
        .and_then(|entry| {
            if entry.model != model {
                Err(format!(
                    "it belongs to model {:?}, not {model:?}",
                    entry.model
                ))
            } else if !(1..=5).contains(&entry.score) || entry.reason.trim().is_empty() {
                Err(format!(
                    "score {} or reason {:?} is out of range",
                    entry.score, entry.reason
                ))
            } else {
                Ok(entry)
            }
        });
    match checked {
        Ok(entry) => {
            tracing::debug!("judge verdict from cache {}", path.display());
            Some(Verdict {
                score: entry.score,
                reason: entry.reason,
                cached: true,
            })
        }
        Err(reason) => {
            tracing::warn!(
                "ignoring corrupt judge cache file {} ({reason}); it will be overwritten",
                path.display()
            );
            None
        }
    }
}

/// Writes `verdict` to `path` through a temporary file in the same directory and a rename, so
/// a reader (or a run killed mid-write) never sees half a file. The temporary name is unique
/// per writer because two workers may judge the same item at once.
fn write_cache(path: &Path, model: &str, verdict: &Verdict) -> Result<()> {
    let entry = CacheEntry {
        model: model.to_string(),
        score: verdict.score,
        reason: verdict.reason.clone(),
    };
    let text = serde_json::to_string_pretty(&entry).map_err(|e| {
        Error::Invalid(format!(
            "cannot serialize a cache entry for {}: {e}",
            path.display()
        ))
    })?;
    // Temporaries are unique per process and call, so concurrent workers never share one.
    Ok(f1_study::fs::write_atomic(path, text.as_bytes())?)
}

/// A bar on stderr for batches worth watching; hidden for a handful of items (and by indicatif
/// itself when stderr is not a terminal).
fn progress_bar(len: usize) -> ProgressBar {
    if len <= PROGRESS_MIN_ITEMS {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(
        "judge {bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}]",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(len as u64).with_style(style)
}
