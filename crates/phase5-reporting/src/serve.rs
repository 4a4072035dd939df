//! The demo server: one or more loaded study variants behind an OpenAI-compatible HTTP API, so
//! that the evaluation harness (`phase4_evaluation::remote::RemoteBackend`),
//! lm-evaluation-harness's `local-completions` / `local-chat-completions` models and any OpenAI
//! client can talk to a variant the way they talk to vLLM, and a person can compare variants
//! side by side on the chat page.
//!
//! Routes: `GET /` (a small self-contained chat page with a variant picker), `GET /health`,
//! `GET /v1/models`, `POST /v1/chat/completions` (with server-sent-event streaming and
//! `stream_options.include_usage`) and `POST /v1/completions` (the legacy API, with
//! `echo` + `logprobs` returning the prompt tokens' log-probabilities in the legacy
//! `{tokens, token_logprobs, top_logprobs, text_offset}` shape). Requests pick a variant by
//! `model`; without one they get the first. Request and response fields follow the OpenAI API
//! reference; where vLLM and OpenAI differ, vLLM's behaviour (the server lm-evaluation-harness
//! is written against) is followed and the difference noted.
//!
//! Safe by default ([`ServeOptions`]): an optional bearer token on `/v1/*` (401 without it;
//! `/` and `/health` stay open), a body size limit (413), a per-request token budget of prompt
//! plus `max_tokens` (400 with the numbers), a bounded number of admitted requests — `workers`
//! running plus `queue` waiting; beyond that 429 with `Retry-After` — and a per-request time
//! limit (504, or an error event once a stream has started). Every error is an OpenAI error
//! object.
//!
//! Threading: libtorch tensors are `Send` but not `Sync`, so each variant sits behind a mutex
//! and `workers` std threads take jobs from one channel, locking the variant a job names: jobs
//! for different variants run in parallel, jobs for one variant one after the other. The HTTP
//! side runs on its own small tokio runtime; handlers validate a request, take an admission
//! permit (held by the job until its answer is complete), send the job, and await the reply (a
//! oneshot) or the streamed text pieces (an unbounded mpsc, bounded in practice by the token
//! budget). Generation cannot be interrupted (`f1_core::generate_ids` has no cancellation), so
//! a timed-out or abandoned request still finishes on its worker, within its token budget;
//! queued jobs whose client left or whose deadline passed are dropped without running.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use f1_core::generate::{encode_prompt, generate_ids, GenerationConfig, GenerationOutput};
use f1_core::tokenizer::DecodeStream;
use f1_core::{ChatMessage, FinishReason, Llama, LoadedModel, Tokenizer};
use serde::Deserialize;
use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};

/// The chat page served at `/` (HTML, CSS and script inline: no external assets).
const INDEX_HTML: &str = include_str!("serve.html");

/// Default `max_tokens` of a chat completion (OpenAI leaves it to the context; a small model
/// rambles, so the demo bounds it). Cut to what the token budget leaves after the prompt.
pub const DEFAULT_CHAT_MAX_TOKENS: usize = 256;
/// Default `max_tokens` of a legacy completion, as in the OpenAI API.
pub const DEFAULT_COMPLETION_MAX_TOKENS: usize = 16;
/// Most `logprobs` alternatives per position a legacy completion may ask for (OpenAI's limit).
pub const MAX_LOGPROBS: usize = 5;
/// Positions whose vocabulary log-softmax is computed at once when scoring a prompt: bounds
/// memory to about `SCORE_CHUNK * vocab * 4` bytes whatever the prompt length.
const SCORE_CHUNK: usize = 256;
/// `Retry-After` of a 429, seconds: about one short answer on a CPU.
const RETRY_AFTER_SECS: u64 = 1;

/// Limits and access control of a server. [`Default`] gives the CLI's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeOptions {
    /// Bearer token every `/v1/*` request must carry; `None` leaves the API open. `/` and
    /// `/health` stay open either way (the page asks for the key and sends it).
    pub api_key: Option<String>,
    /// Largest request body, bytes (a larger one gets 413).
    pub max_body_bytes: usize,
    /// Most prompt tokens plus `max_tokens` of one request (and never more than the model's
    /// context); over it gets 400 with both numbers.
    pub max_total_tokens: usize,
    /// Inference threads (variants run in parallel, one variant one request at a time).
    pub workers: usize,
    /// Admitted requests that may wait for a worker; with all workers busy and the queue full a
    /// request gets 429 with `Retry-After`.
    pub queue: usize,
    /// Time limit of one request, from admission to the end of its answer.
    pub timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions { api_key: None, max_body_bytes: 1 << 20, max_total_tokens: 4096, workers: 1, queue: 8, timeout: Duration::from_secs(300) }
    }
}

impl ServeOptions {
    fn validate(&self, models: &[ServedModel]) -> Result<()> {
        let bad = |reason: String| Err(Error::Settings(reason));
        if models.is_empty() {
            return bad("no model to serve".into());
        }
        for (i, m) in models.iter().enumerate() {
            if m.name.is_empty() || models[..i].iter().any(|o| o.name == m.name) {
                return bad(format!("model name `{}` is empty or used twice; every served variant needs its own name", m.name));
            }
        }
        if self.workers == 0 || self.max_body_bytes == 0 || self.max_total_tokens == 0 {
            return bad(format!("--workers, --max-body-bytes and --max-total-tokens must be at least 1 (got {}, {}, {})", self.workers, self.max_body_bytes, self.max_total_tokens));
        }
        if self.timeout.is_zero() {
            return bad("--timeout-secs must be more than 0".into());
        }
        if self.api_key.as_deref().is_some_and(|k| k.trim().is_empty() || k.trim() != k) {
            return bad("the API key must be non-empty and have no surrounding spaces".into());
        }
        Ok(())
    }
}

/// One variant to serve: the name clients put in `model`, a line saying what it is (for
/// `/v1/models` and the log), and the loaded weights.
pub struct ServedModel {
    /// Name in requests and `/v1/models`.
    pub name: String,
    /// What it is, e.g. `LoRA adapter r=16 models/adapters/lora/adapter on ...`.
    pub description: String,
    /// The model.
    pub loaded: LoadedModel,
}

/// A running server: its bound address, and the way to stop it.
///
/// Dropping the handle stops the server too (after in-flight requests finish).
pub struct ServerHandle {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    workers: Vec<JoinHandle<()>>,
}

impl ServerHandle {
    /// The address the server listens on (the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://host:port`, the base URL clients use (`/v1` appended for OpenAI clients).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop accepting connections, let in-flight requests finish, and join the server and
    /// inference threads.
    pub fn shutdown(mut self) -> Result<()> {
        self.stop()
    }

    /// Block until the server stops, which happens only on an I/O error: the CLI serves until
    /// it is interrupted.
    pub fn wait(mut self) -> Result<()> {
        self.join()
    }

    fn stop(&mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            // The receiver is gone only if the server already stopped, which join reports.
            let _ = tx.send(());
        }
        self.join()
    }

    fn join(&mut self) -> Result<()> {
        let served = match self.server.take() {
            Some(h) => h.join().map_err(|_| Error::Panicked("HTTP"))?,
            None => Ok(()),
        };
        // The router, and with it the job sender, is dropped when the server future ends, so the
        // inference threads see their channel close once their current jobs are done.
        let mut panicked = false;
        for h in self.workers.drain(..) {
            panicked |= h.join().is_err();
        }
        if panicked {
            return Err(Error::Panicked("inference"));
        }
        served.map_err(|source| Error::Serve { addr: self.addr, source })
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("stopping the server: {e}");
        }
    }
}

/// Serve `models` (the first answers requests that name no model) on `addr` (port 0 picks a
/// free port; see [`ServerHandle::addr`]) with the limits in `options`. The HTTP server runs on
/// its own tokio runtime thread and the models on `options.workers` inference threads, so this
/// returns as soon as the socket listens; it works from synchronous code, tests included.
pub fn spawn(models: Vec<ServedModel>, options: ServeOptions, addr: SocketAddr) -> Result<ServerHandle> {
    options.validate(&models)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("f1-serve-http")
        .enable_all()
        .build()
        .map_err(|source| Error::Start { what: "tokio runtime", source })?;
    // Bind here, not in the server thread, so a taken port is an error of this call.
    let std_listener = std::net::TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })?;
    std_listener.set_nonblocking(true).map_err(|source| Error::Bind { addr, source })?;
    let bound = std_listener.local_addr().map_err(|source| Error::Bind { addr, source })?;
    let listener = {
        let _context = runtime.enter();
        tokio::net::TcpListener::from_std(std_listener).map_err(|source| Error::Bind { addr, source })?
    };

    let infos: Vec<ModelInfo> = models.iter().map(|m| ModelInfo { name: m.name.clone(), description: m.description.clone(), context: m.loaded.model.config().max_position_embeddings }).collect();
    let weights: Arc<Vec<Mutex<LoadedModel>>> = Arc::new(models.into_iter().map(|m| Mutex::new(m.loaded)).collect());
    let (jobs, inbox) = std_mpsc::channel::<Job>();
    let inbox = Arc::new(Mutex::new(inbox));
    let alive = Arc::new(AtomicUsize::new(options.workers));
    let mut workers = Vec::with_capacity(options.workers);
    for i in 0..options.workers {
        let (weights, inbox, guard) = (weights.clone(), inbox.clone(), AliveGuard(alive.clone()));
        let worker = std::thread::Builder::new()
            .name(format!("f1-serve-inference-{i}"))
            .spawn(move || {
                let _alive = guard;
                inference_loop(&weights, &inbox);
            })
            .map_err(|source| Error::Start { what: "inference thread", source })?;
        workers.push(worker);
    }

    let created = unix_now();
    let slots = Arc::new(Semaphore::new(options.workers + options.queue));
    let state = Arc::new(AppState { models: infos, jobs, alive, slots, options, created, next_id: AtomicU64::new(u64::from(std::process::id()) << 32) });
    let app = router(state);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = std::thread::Builder::new()
        .name("f1-serve".into())
        .spawn(move || {
            runtime.block_on(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await
            })
        })
        .map_err(|source| Error::Start { what: "HTTP server thread", source })?;
    tracing::info!(addr = %bound, "serving");
    Ok(ServerHandle { addr: bound, shutdown: Some(stop_tx), server: Some(server), workers })
}

/// Counts an inference thread out when it ends, however it ends.
struct AliveGuard(Arc<AtomicUsize>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP side

/// What the HTTP side knows of a served variant.
struct ModelInfo {
    name: String,
    description: String,
    /// The model's context length in tokens.
    context: usize,
}

/// What every handler shares.
struct AppState {
    /// The served variants; index 0 answers requests without `model`.
    models: Vec<ModelInfo>,
    /// Jobs for the inference threads.
    jobs: std_mpsc::Sender<Job>,
    /// Inference threads still running.
    alive: Arc<AtomicUsize>,
    /// Admission permits: `workers + queue` of them.
    slots: Arc<Semaphore>,
    /// Limits and the API key.
    options: ServeOptions,
    /// Server start, seconds since the epoch (the models' `created`).
    created: u64,
    /// Source of response ids.
    next_id: AtomicU64,
}

impl AppState {
    fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst) > 0
    }

    /// The variant a request names (`None` or `""`: the first one).
    fn pick(&self, name: Option<&str>) -> Result<usize, ApiError> {
        match name {
            None | Some("") => Ok(0),
            Some(n) => self.models.iter().position(|m| m.name == n).ok_or_else(|| {
                let known: Vec<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
                ApiError {
                    status: StatusCode::NOT_FOUND,
                    message: format!("the model `{n}` does not exist; this server serves: {} (see GET /v1/models)", known.join(", ")),
                    kind: "invalid_request_error",
                    param: Some("model"),
                    code: Some("model_not_found"),
                    retry_after: None,
                }
            }),
        }
    }

    /// Admit a request and hand it to the inference threads; returns its deadline. A full
    /// house is a 429 here, before any work is queued.
    fn submit(&self, model: usize, work: Work) -> Result<Instant, ApiError> {
        if !self.alive() {
            return Err(ApiError::unavailable());
        }
        let permit = self.slots.clone().try_acquire_owned().map_err(|_| ApiError::busy(self.options.workers, self.options.queue))?;
        let deadline = Instant::now() + self.options.timeout;
        let job = Job { model, deadline, max_total_tokens: self.options.max_total_tokens, permit, work };
        self.jobs.send(job).map_err(|_| ApiError::unavailable())?;
        Ok(deadline)
    }

    /// The error for a job whose reply channel closed without an answer.
    fn lost(&self) -> ApiError {
        if self.alive() {
            ApiError::internal("the inference thread failed on this request (see the server log)".into())
        } else {
            ApiError::unavailable()
        }
    }

    fn timed_out(&self) -> ApiError {
        ApiError::timeout(self.options.timeout)
    }

    fn id(&self, prefix: &str) -> String {
        format!("{prefix}-{:016x}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Parse a JSON body ourselves rather than with axum's `Json` extractor, whose rejections
    /// are plain text: OpenAI clients expect an error object.
    fn parse_body<T: serde::de::DeserializeOwned>(&self, body: std::result::Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
        let bytes = body.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError { status: StatusCode::PAYLOAD_TOO_LARGE, code: Some("request_too_large"), ..ApiError::bad_request(format!("the request body is over this server's limit of {} bytes (--max-body-bytes)", self.options.max_body_bytes)) }
            } else {
                ApiError::bad_request(format!("cannot read the request body: {e}"))
            }
        })?;
        serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    Router::new()
        .route("/", get(index))
        .route("/health", get(health))
        .merge(api)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.options.max_body_bytes))
        .with_state(state)
}

/// The bearer-token check of `/v1/*` (OpenAI's `Authorization: Bearer <key>`).
async fn require_key(State(s): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if let Some(key) = &s.options.api_key {
        let given = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::trim);
        let token = given.and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer "))).map(str::trim);
        match token {
            None => return ApiError::unauthorized("this server needs an API key: send `Authorization: Bearer <key>` (the key the server was started with, --api-key or F1_SERVE_API_KEY)").into_response(),
            Some(t) if !same_secret(t, key) => return ApiError::unauthorized("the API key is not valid for this server").into_response(),
            Some(_) => {}
        }
    }
    next.run(request).await
}

/// Compare without stopping at the first difference, so response time does not reveal how much
/// of a guessed key was right.
fn same_secret(given: &str, key: &str) -> bool {
    given.len() == key.len() && given.bytes().zip(key.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

async fn index() -> Html<&'static str> {
    Html(INDEX_HTML)
}

async fn health(State(s): State<Arc<AppState>>) -> Response {
    if s.alive() {
        let names: Vec<&str> = s.models.iter().map(|m| m.name.as_str()).collect();
        Json(json!({ "status": "ok", "model": names[0], "models": names, "auth_required": s.options.api_key.is_some() })).into_response()
    } else {
        ApiError::unavailable().into_response()
    }
}

async fn models(State(s): State<Arc<AppState>>) -> Json<Value> {
    let data: Vec<Value> = s
        .models
        .iter()
        .map(|m| json!({ "id": m.name, "object": "model", "created": s.created, "owned_by": "f1-pipeline", "max_model_len": m.context, "description": m.description }))
        .collect();
    Json(json!({ "object": "list", "data": data }))
}

async fn not_found() -> ApiError {
    ApiError { status: StatusCode::NOT_FOUND, code: Some("not_found"), ..ApiError::bad_request("no such route (see GET / for the chat page, /v1/models, /v1/chat/completions, /v1/completions)".into()) }
}

async fn chat_completions(State(s): State<Arc<AppState>>, body: std::result::Result<Bytes, BytesRejection>) -> Response {
    match chat_response(s, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn completions(State(s): State<Arc<AppState>>, body: std::result::Result<Bytes, BytesRejection>) -> Response {
    match completion_response(s, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn chat_response(s: Arc<AppState>, body: std::result::Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let req: ChatRequest = s.parse_body(body)?;
    let model = s.pick(req.model.as_deref())?;
    if req.messages.is_empty() {
        return Err(ApiError::bad_request("`messages` must hold at least one message".into()));
    }
    check_n(req.n)?;
    let messages = req.messages.into_iter().enumerate().map(|(i, m)| m.into_chat(i)).collect::<Result<Vec<_>, _>>()?;
    let max_tokens = max_tokens(req.max_completion_tokens.or(req.max_tokens))?;
    let cfg = sampling(&s, req.temperature, req.top_p, req.seed, req.stop)?;
    let stream = req.stream.unwrap_or(false);
    let include_usage = req.stream_options.and_then(|o| o.include_usage).unwrap_or(false);

    let (tx, mut events) = mpsc::unbounded_channel();
    let deadline = tokio::time::Instant::from_std(s.submit(model, Work::Chat { messages, cfg, max_tokens, events: tx })?);
    // The first event says whether the prompt was accepted, so a bad request is an HTTP error
    // even when streaming was asked for.
    let prompt_tokens = match tokio::time::timeout_at(deadline, events.recv()).await {
        Err(_) => return Err(s.timed_out()),
        Ok(Some(ChatEvent::Started { prompt_tokens })) => prompt_tokens,
        Ok(Some(ChatEvent::Failed(e))) => return Err(e),
        Ok(Some(_) | None) => return Err(s.lost()),
    };
    let meta = ChunkMeta { id: s.id("chatcmpl"), created: unix_now(), model: s.models[model].name.clone(), include_usage };
    if stream {
        let mut pending = VecDeque::new();
        pending.push_back(meta.chunk(json!({ "role": "assistant", "content": "" }), None));
        let stream = ChatStream { events, pending, done: false, meta, deadline: Box::pin(tokio::time::sleep_until(deadline)), timeout: s.options.timeout };
        return Ok(Sse::new(stream).into_response());
    }
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => return Err(s.timed_out()),
            Ok(Some(ChatEvent::Text(_) | ChatEvent::Started { .. })) => {}
            Ok(Some(ChatEvent::Done(out))) => {
                return Ok(Json(json!({
                    "id": meta.id,
                    "object": "chat.completion",
                    "created": meta.created,
                    "model": meta.model,
                    "choices": [{
                        "index": 0,
                        "message": { "role": "assistant", "content": out.text },
                        "logprobs": null,
                        "finish_reason": finish_name(out.finish_reason),
                    }],
                    "usage": usage(prompt_tokens, out.completion_tokens),
                }))
                .into_response())
            }
            Ok(Some(ChatEvent::Failed(e))) => return Err(e),
            Ok(None) => return Err(s.lost()),
        }
    }
}

async fn completion_response(s: Arc<AppState>, body: std::result::Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let req: CompletionRequest = s.parse_body(body)?;
    let model = s.pick(req.model.as_deref())?;
    check_n(req.n)?;
    if req.stream.unwrap_or(false) {
        return Err(ApiError::bad_request("`stream` is not supported on /v1/completions; use /v1/chat/completions to stream".into()));
    }
    let prompts = req.prompt.into_prompts()?;
    let max_tokens = max_tokens(req.max_tokens)?;
    let logprobs = match req.logprobs {
        None => None,
        Some(k) if (0..=MAX_LOGPROBS as i64).contains(&k) => Some(k as usize),
        Some(k) => return Err(ApiError::bad_request(format!("`logprobs` must be between 0 and {MAX_LOGPROBS}, got {k}"))),
    };
    let cfg = sampling(&s, req.temperature, req.top_p, req.seed, req.stop)?;
    let echo = req.echo.unwrap_or(false);
    let (tx, rx) = oneshot::channel();
    let deadline = tokio::time::Instant::from_std(s.submit(model, Work::Complete { prompts, cfg, max_tokens, echo, logprobs, reply: tx })?);
    let choices = tokio::time::timeout_at(deadline, rx).await.map_err(|_| s.timed_out())?.map_err(|_| s.lost())??;
    let (p, c) = choices.iter().fold((0, 0), |(p, c), ch| (p + ch.prompt_tokens, c + ch.completion_tokens));
    let choices: Vec<Value> = choices
        .into_iter()
        .enumerate()
        .map(|(i, ch)| json!({ "index": i, "text": ch.text, "logprobs": ch.logprobs, "finish_reason": finish_name(ch.finish_reason) }))
        .collect();
    Ok(Json(json!({
        "id": s.id("cmpl"),
        "object": "text_completion",
        "created": unix_now(),
        "model": s.models[model].name,
        "choices": choices,
        "usage": usage(p, c),
    }))
    .into_response())
}

fn check_n(n: Option<i64>) -> Result<(), ApiError> {
    match n {
        None | Some(1) => Ok(()),
        Some(n) => Err(ApiError::bad_request(format!("`n` = {n} is not supported: this server returns one choice per prompt"))),
    }
}

fn max_tokens(asked: Option<i64>) -> Result<Option<usize>, ApiError> {
    match asked {
        None => Ok(None),
        Some(n) if n >= 0 => Ok(Some(n as usize)),
        Some(n) => Err(ApiError::bad_request(format!("`max_tokens` must be >= 0, got {n}"))),
    }
}

/// The new tokens a request generates: what it asked for, or `default` cut to what the budget
/// leaves after the prompt. Prompt plus the asked tokens over the budget (the server's
/// `max_total_tokens`, never more than the model's context) is refused with the numbers.
fn new_tokens(prompt: usize, asked: Option<usize>, default: usize, max_total: usize, context: usize) -> Result<usize, ApiError> {
    let budget = max_total.min(context);
    let n = asked.unwrap_or_else(|| default.min(budget.saturating_sub(prompt)));
    if prompt + n <= budget {
        return Ok(n);
    }
    let over = format!("the prompt is {prompt} tokens and max_tokens is {n}: {} tokens", prompt + n);
    Err(if budget == context {
        ApiError::too_long(format!("{over} is over the model's context of {context} tokens; ask for fewer max_tokens or send a shorter prompt"))
    } else {
        ApiError { code: Some("token_limit_exceeded"), ..ApiError::bad_request(format!("{over} is over this server's limit of {budget} tokens per request (prompt + max_tokens, set by --max-total-tokens); ask for fewer max_tokens or send a shorter prompt")) }
    })
}

/// Decoding options from the request, validated here so a stream never starts on bad values
/// (`max_new_tokens` is decided by the worker, once the prompt's length is known).
/// Temperature defaults to 1 as in the OpenAI API (send 0 for greedy decoding); without a
/// seed each request draws its own.
fn sampling(s: &AppState, temperature: Option<f64>, top_p: Option<f64>, seed: Option<i64>, stop: Option<Stop>) -> Result<GenerationConfig, ApiError> {
    let temperature = temperature.unwrap_or(1.0);
    if !(temperature.is_finite() && temperature >= 0.0) {
        return Err(ApiError::bad_request(format!("`temperature` must be >= 0, got {temperature}")));
    }
    if let Some(p) = top_p {
        if !(p > 0.0 && p <= 1.0) {
            return Err(ApiError::bad_request(format!("`top_p` must be in (0, 1], got {p}")));
        }
    }
    let seed = match seed {
        Some(seed) => seed as u64,
        None => {
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
            nanos ^ s.next_id.fetch_add(1, Ordering::Relaxed).rotate_left(17)
        }
    };
    let stop_strings = match stop {
        None => vec![],
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    Ok(GenerationConfig { max_new_tokens: 0, temperature, top_p: top_p.filter(|&p| p < 1.0), seed, stop_strings: stop_strings.into_iter().filter(|s| !s.is_empty()).collect(), ..Default::default() })
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({ "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion })
}

fn finish_name(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Requests

/// `POST /v1/chat/completions`. Fields OpenAI defines and this server does not use
/// (`frequency_penalty`, `user`, `tools`, ...) are accepted and ignored, as vLLM does.
#[derive(Deserialize)]
struct ChatRequest {
    model: Option<String>,
    messages: Vec<InMessage>,
    max_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    seed: Option<i64>,
    stop: Option<Stop>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    n: Option<i64>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// A message as clients send it: `content` is a string, or a list of parts of which the
/// `text` ones are kept (images and audio cannot go to a text model).
#[derive(Deserialize)]
struct InMessage {
    role: String,
    #[serde(default)]
    content: Value,
}

impl InMessage {
    fn into_chat(self, i: usize) -> Result<ChatMessage, ApiError> {
        let content = match self.content {
            Value::Null => String::new(),
            Value::String(s) => s,
            Value::Array(parts) => {
                let mut text = String::new();
                for part in &parts {
                    match (part.get("type").and_then(Value::as_str), part.get("text").and_then(Value::as_str)) {
                        (Some("text"), Some(t)) => text.push_str(t),
                        (kind, _) => return Err(ApiError::bad_request(format!("messages[{i}]: content part of type {kind:?} is not supported (text only)"))),
                    }
                }
                text
            }
            other => return Err(ApiError::bad_request(format!("messages[{i}].content must be a string or a list of text parts, got {other}"))),
        };
        Ok(ChatMessage { role: self.role, content })
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

/// `POST /v1/completions`.
#[derive(Deserialize)]
struct CompletionRequest {
    model: Option<String>,
    prompt: PromptField,
    max_tokens: Option<i64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    seed: Option<i64>,
    stop: Option<Stop>,
    echo: Option<bool>,
    logprobs: Option<i64>,
    stream: Option<bool>,
    n: Option<i64>,
}

/// The legacy API's `prompt`: a string, a list of strings, a list of token ids or a list of
/// lists of token ids (lm-evaluation-harness sends the latter two with tokenized requests).
#[derive(Deserialize)]
#[serde(untagged)]
enum PromptField {
    Text(String),
    Texts(Vec<String>),
    Ids(Vec<u32>),
    IdLists(Vec<Vec<u32>>),
}

impl PromptField {
    fn into_prompts(self) -> Result<Vec<Prompt>, ApiError> {
        let prompts = match self {
            PromptField::Text(s) => vec![Prompt::Text(s)],
            PromptField::Texts(v) => v.into_iter().map(Prompt::Text).collect(),
            PromptField::Ids(v) => vec![Prompt::Ids(v)],
            PromptField::IdLists(v) => v.into_iter().map(Prompt::Ids).collect(),
        };
        if prompts.is_empty() {
            return Err(ApiError::bad_request("`prompt` is an empty list".into()));
        }
        Ok(prompts)
    }
}

/// One prompt of a completion request.
enum Prompt {
    Text(String),
    Ids(Vec<u32>),
}

// ---------------------------------------------------------------------------------------------
// Responses

/// An OpenAI-style error: `{"error": {"message", "type", "param", "code"}}` with its status.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    param: Option<&'static str>,
    code: Option<&'static str>,
    /// Seconds for a `Retry-After` header (429).
    retry_after: Option<u64>,
}

impl ApiError {
    fn bad_request(message: String) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, message, kind: "invalid_request_error", param: None, code: None, retry_after: None }
    }

    fn unauthorized(message: &str) -> Self {
        ApiError { status: StatusCode::UNAUTHORIZED, code: Some("invalid_api_key"), ..ApiError::bad_request(message.into()) }
    }

    fn busy(workers: usize, queue: usize) -> Self {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!("the server is busy ({workers} running and {queue} waiting requests, --workers and --queue); retry after {RETRY_AFTER_SECS} s"),
            kind: "rate_limit_error",
            param: None,
            code: Some("server_busy"),
            retry_after: Some(RETRY_AFTER_SECS),
        }
    }

    fn timeout(limit: Duration) -> Self {
        ApiError {
            status: StatusCode::GATEWAY_TIMEOUT,
            message: format!("the request did not finish within the server's limit of {:.1} s (--timeout-secs); ask for fewer max_tokens or retry when the server is less busy", limit.as_secs_f64()),
            kind: "server_error",
            param: None,
            code: Some("timeout"),
            retry_after: None,
        }
    }

    fn too_long(message: String) -> Self {
        ApiError { code: Some("context_length_exceeded"), ..ApiError::bad_request(message) }
    }

    fn internal(message: String) -> Self {
        ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, message, kind: "server_error", param: None, code: None, retry_after: None }
    }

    fn unavailable() -> Self {
        ApiError { status: StatusCode::SERVICE_UNAVAILABLE, message: "the inference threads have stopped; restart the server (see its log for the cause)".into(), kind: "server_error", param: None, code: Some("worker_unavailable"), retry_after: None }
    }

    fn body(&self) -> Value {
        json!({ "error": { "message": self.message, "type": self.kind, "param": self.param, "code": self.code } })
    }
}

impl From<f1_core::Error> for ApiError {
    /// What the request could fix (a template that rejects the roles, a bad token id) is a
    /// 400; anything else is the server's fault.
    fn from(e: f1_core::Error) -> Self {
        match e {
            f1_core::Error::Invalid(_) | f1_core::Error::ChatTemplate { .. } | f1_core::Error::Tokenizer { .. } => ApiError::bad_request(e.to_string()),
            other => {
                tracing::error!("inference failed: {other}");
                ApiError::internal(other.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Fields shared by every chunk of one streamed chat completion.
struct ChunkMeta {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
}

impl ChunkMeta {
    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Event {
        let mut c = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason }],
        });
        if self.include_usage {
            // OpenAI sends `usage: null` on every chunk but the last when usage is asked for.
            c["usage"] = Value::Null;
        }
        Event::default().data(c.to_string())
    }
}

/// The SSE body of a streamed chat completion: the role chunk, one chunk per text piece, a
/// chunk with `finish_reason`, the usage chunk if asked for, then `[DONE]`. Past the request's
/// deadline it ends with an error event (code `timeout`) and `[DONE]`.
struct ChatStream {
    events: mpsc::UnboundedReceiver<ChatEvent>,
    pending: VecDeque<Event>,
    done: bool,
    meta: ChunkMeta,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
}

impl ChatStream {
    fn on_event(&mut self, event: Option<ChatEvent>) {
        match event {
            Some(ChatEvent::Started { .. }) => {}
            Some(ChatEvent::Text(t)) => self.pending.push_back(self.meta.chunk(json!({ "content": t }), None)),
            Some(ChatEvent::Done(out)) => {
                self.pending.push_back(self.meta.chunk(json!({}), Some(finish_name(out.finish_reason))));
                if self.meta.include_usage {
                    let c = json!({
                        "id": self.meta.id, "object": "chat.completion.chunk", "created": self.meta.created, "model": self.meta.model,
                        "choices": [], "usage": usage(out.prompt_tokens, out.completion_tokens),
                    });
                    self.pending.push_back(Event::default().data(c.to_string()));
                }
                self.finish();
            }
            // Headers are sent by now, so a late failure travels in the stream, as vLLM does it.
            Some(ChatEvent::Failed(e)) => {
                self.pending.push_back(Event::default().data(e.body().to_string()));
                self.finish();
            }
            None => {
                self.pending.push_back(Event::default().data(ApiError::internal("the inference thread stopped mid-stream (see the server log)".into()).body().to_string()));
                self.finish();
            }
        }
    }

    fn finish(&mut self) {
        self.pending.push_back(Event::default().data("[DONE]"));
        self.done = true;
    }
}

impl futures_core::Stream for ChatStream {
    type Item = std::result::Result<Event, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(e) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(e)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match this.events.poll_recv(cx) {
                Poll::Ready(event) => this.on_event(event),
                Poll::Pending => {
                    std::task::ready!(this.deadline.as_mut().poll(cx));
                    this.pending.push_back(Event::default().data(ApiError::timeout(this.timeout).body().to_string()));
                    this.finish();
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Inference thread

/// One admitted request for the inference threads.
struct Job {
    /// Index of the variant in the served list.
    model: usize,
    /// When the client stops waiting.
    deadline: Instant,
    /// The server's prompt + `max_tokens` budget.
    max_total_tokens: usize,
    /// Admission slot, given back once the answer is complete.
    permit: OwnedSemaphorePermit,
    work: Work,
}

/// What a job asks for.
enum Work {
    /// A chat completion; progress and result go to `events`.
    Chat { messages: Vec<ChatMessage>, cfg: GenerationConfig, max_tokens: Option<usize>, events: mpsc::UnboundedSender<ChatEvent> },
    /// A legacy completion of one or more prompts.
    Complete { prompts: Vec<Prompt>, cfg: GenerationConfig, max_tokens: Option<usize>, echo: bool, logprobs: Option<usize>, reply: oneshot::Sender<Result<Vec<Choice>, ApiError>> },
}

impl Work {
    /// The client has stopped waiting (timed out or disconnected).
    fn abandoned(&self) -> bool {
        match self {
            Work::Chat { events, .. } => events.is_closed(),
            Work::Complete { reply, .. } => reply.is_closed(),
        }
    }
}

/// What the inference thread reports about a chat job.
enum ChatEvent {
    /// The prompt fits and generation begins.
    Started { prompt_tokens: usize },
    /// Final text (it can no longer turn into a stop string).
    Text(String),
    /// Generation ended.
    Done(GenerationOutput),
    /// The request cannot be served.
    Failed(ApiError),
}

/// One prompt's legacy completion.
struct Choice {
    text: String,
    logprobs: Option<Value>,
    finish_reason: FinishReason,
    prompt_tokens: usize,
    completion_tokens: usize,
}

fn inference_loop(models: &[Mutex<LoadedModel>], inbox: &Mutex<std_mpsc::Receiver<Job>>) {
    loop {
        // The lock is held only to take one job; idle workers wait on it, busy ones do not.
        let Ok(job) = inbox.lock().unwrap_or_else(PoisonError::into_inner).recv() else { break };
        if job.work.abandoned() || Instant::now() >= job.deadline {
            // Its handler has answered (504) or its client left: running it would only delay
            // the requests behind it.
            tracing::debug!("dropping a queued request whose client stopped waiting");
            continue;
        }
        // Inference only reads the weights, so a lock poisoned by a panicking request leaves
        // the model as good as it was.
        let model = models[job.model].lock().unwrap_or_else(PoisonError::into_inner);
        // A panic in the model (a shape bug) fails this request only: its reply channel is
        // dropped while unwinding, which the handler reports as a 500.
        if std::panic::catch_unwind(AssertUnwindSafe(|| run_job(&model, job))).is_err() {
            tracing::error!("the model panicked on a request; the server keeps running");
        }
    }
    tracing::debug!("inference thread stops: the server is shutting down");
}

fn run_job(m: &LoadedModel, job: Job) {
    let Job { max_total_tokens, permit, work, .. } = job;
    // The slot is given back just before the answer completes, so a client that sends its next
    // request as soon as it has this answer finds the slot free.
    match work {
        Work::Chat { messages, cfg, max_tokens, events } => {
            let result = run_chat(m, &messages, cfg, max_tokens, max_total_tokens, &events);
            drop(permit);
            let _ = events.send(match result {
                Ok(out) => ChatEvent::Done(out),
                Err(e) => ChatEvent::Failed(e),
            });
        }
        Work::Complete { prompts, cfg, max_tokens, echo, logprobs, reply } => {
            let result = prompts.iter().map(|p| complete(m, p, &cfg, max_tokens, max_total_tokens, echo, logprobs)).collect();
            drop(permit);
            // The client may have gone; nothing to do then.
            let _ = reply.send(result);
        }
    }
}

fn run_chat(m: &LoadedModel, messages: &[ChatMessage], cfg: GenerationConfig, max_tokens: Option<usize>, max_total_tokens: usize, events: &mpsc::UnboundedSender<ChatEvent>) -> Result<GenerationOutput, ApiError> {
    let prompt = m.chat_template.render(messages, true)?;
    let ids = encode_prompt(&m.tokenizer, &prompt)?;
    let context = m.model.config().max_position_embeddings;
    if ids.len() >= context {
        return Err(ApiError::too_long(format!("the conversation is {} tokens; the model's context is {context} tokens, with room needed for the reply", ids.len())));
    }
    let cfg = GenerationConfig { max_new_tokens: new_tokens(ids.len(), max_tokens, DEFAULT_CHAT_MAX_TOKENS, max_total_tokens, context)?, ..cfg };
    let _ = events.send(ChatEvent::Started { prompt_tokens: ids.len() });
    // Generation runs to its end even if the client leaves: `generate_ids` has no cancellation.
    let out = generate_ids(&m.model, &m.tokenizer, &[ids], &cfg, |_, t| {
        let _ = events.send(ChatEvent::Text(t.to_string()));
    })?;
    out.into_iter().next().ok_or_else(|| ApiError::internal("generation returned no row".into()))
}

/// One prompt of a legacy completion: optional generation, then, if asked, the
/// log-probability of every returned token from one scoring pass over prompt + completion.
fn complete(m: &LoadedModel, prompt: &Prompt, cfg: &GenerationConfig, max_tokens: Option<usize>, max_total_tokens: usize, echo: bool, logprobs: Option<usize>) -> Result<Choice, ApiError> {
    let tok = &m.tokenizer;
    let (ids, added_bos) = match prompt {
        Prompt::Text(s) => {
            // As `encode_prompt` decides: BOS is added when the model wants one and the text
            // does not already start with it.
            let has_bos = tok.bos_token().is_some_and(|b| !b.is_empty() && s.starts_with(b));
            (encode_prompt(tok, s)?, tok.add_bos() && !has_bos)
        }
        Prompt::Ids(ids) => {
            if let Some(bad) = ids.iter().find(|&&id| id as usize >= tok.vocab_size()) {
                return Err(ApiError::bad_request(format!("token id {bad} is outside the vocabulary of {} tokens", tok.vocab_size())));
            }
            (ids.clone(), false)
        }
    };
    if ids.is_empty() {
        return Err(ApiError::bad_request("`prompt` is empty".into()));
    }
    let context = m.model.config().max_position_embeddings;
    if ids.len() > context || (max_tokens != Some(0) && ids.len() >= context) {
        return Err(ApiError::too_long(format!("the prompt is {} tokens; the model's context is {context} tokens", ids.len())));
    }
    let cfg = &GenerationConfig { max_new_tokens: new_tokens(ids.len(), max_tokens, DEFAULT_COMPLETION_MAX_TOKENS, max_total_tokens, context)?, ..cfg.clone() };
    let (completion_text, mut completion_ids, finish_reason, produced) = if cfg.max_new_tokens > 0 {
        let out = generate_ids(&m.model, tok, std::slice::from_ref(&ids), cfg, |_, _| {})?;
        let out = out.into_iter().next().ok_or_else(|| ApiError::internal("generation returned no row".into()))?;
        (out.text, out.token_ids, out.finish_reason, out.completion_tokens)
    } else {
        // Nothing generated: OpenAI and vLLM report `length`.
        (String::new(), vec![], FinishReason::Length, 0)
    };
    let prompt_pieces = pieces(tok, &ids, added_bos, false)?;
    let prompt_text: String = prompt_pieces.concat();
    // The completion's pieces decode as `generate_ids` decoded its text (special tokens
    // skipped), cut where a stop string cut the text.
    let mut completion_pieces = pieces(tok, &completion_ids, false, true)?;
    fit_pieces(&mut completion_pieces, &completion_text);
    completion_ids.truncate(completion_pieces.len());
    let text = if echo { format!("{prompt_text}{completion_text}") } else { completion_text };

    let logprobs = match logprobs {
        None => None,
        Some(k) => {
            let all: Vec<u32> = ids.iter().chain(&completion_ids).copied().collect();
            let scores = score(&m.model, &all, k)?;
            let all_pieces: Vec<&String> = prompt_pieces.iter().chain(&completion_pieces).collect();
            // Without echo only the completion's tokens are returned; their offsets still count
            // from the start of prompt + completion, as in the OpenAI legacy API.
            let (first, mut offset) = if echo { (0, 0) } else { (ids.len(), prompt_text.chars().count()) };
            let (mut tokens, mut token_logprobs, mut top_logprobs, mut text_offset) = (vec![], vec![], vec![], vec![]);
            for i in first..all.len() {
                tokens.push(Value::String(all_pieces[i].clone()));
                text_offset.push(offset);
                offset += all_pieces[i].chars().count();
                if i == 0 {
                    // The first token has no context to be predicted from.
                    token_logprobs.push(Value::Null);
                    top_logprobs.push(Value::Null);
                    continue;
                }
                let s = &scores[i - 1];
                token_logprobs.push(json!(s.logprob));
                // The token itself plus the top-k alternatives, as OpenAI returns them. The token
                // goes in first so that, should two ids decode to the same text, the
                // alternative's (higher) value wins and a greedy check stays honest.
                let mut top = BTreeMap::new();
                top.insert(tok.decode(&[all[i]], false)?, s.logprob);
                for &(id, lp) in s.top.iter().take(k) {
                    top.insert(tok.decode(&[id], false)?, lp);
                }
                top_logprobs.push(json!(top));
            }
            Some(json!({ "tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top_logprobs, "text_offset": text_offset }))
        }
    };
    Ok(Choice { text, logprobs, finish_reason, prompt_tokens: ids.len(), completion_tokens: produced })
}

/// The text each token adds, decoded as a stream so that concatenating the pieces gives the
/// decoded text exactly (a token inside a multi-byte character adds `""`, the one completing it
/// adds the character). `skip_first` leaves out a BOS the tokenizer added (piece `""`).
fn pieces(tok: &Tokenizer, ids: &[u32], skip_first: bool, skip_special: bool) -> Result<Vec<String>, ApiError> {
    let mut stream = DecodeStream::new(tok, skip_special);
    let mut out = Vec::with_capacity(ids.len());
    for (i, &id) in ids.iter().enumerate() {
        if i == 0 && skip_first {
            out.push(String::new());
            continue;
        }
        out.push(stream.step(id)?.unwrap_or_default());
    }
    Ok(out)
}

/// Keep the pieces that make up `text` (a prefix of their concatenation) and cut the last one
/// to fit: what a stop string removed from the text leaves the token list too.
fn fit_pieces(pieces: &mut Vec<String>, text: &str) {
    let mut at = 0;
    let mut keep = 0;
    for p in pieces.iter_mut() {
        if at >= text.len() && !p.is_empty() {
            break;
        }
        let end = (at + p.len()).min(text.len());
        if end < at + p.len() {
            *p = text.get(at..end).unwrap_or_default().to_string();
        }
        at = end;
        keep += 1;
    }
    pieces.truncate(keep);
}

/// Log-probability of token `i` given tokens `..i`, for `i` in `1..ids.len()`, with the `k`
/// most likely alternatives (at least one is computed: greedy checks need the argmax).
struct TokenScore {
    logprob: f32,
    top: Vec<(u32, f32)>,
}

fn score(model: &Llama, ids: &[u32], k: usize) -> Result<Vec<TokenScore>, ApiError> {
    if ids.len() < 2 {
        return Ok(vec![]);
    }
    let device = model.device();
    let _guard = tch::no_grad_guard();
    let input = Tensor::from_slice(&ids.iter().map(|&t| i64::from(t)).collect::<Vec<_>>()).unsqueeze(0).to_device(device);
    let hidden = model.forward_hidden(&input, None, None).squeeze_dim(0); // (T, C)
    let k = k.max(1);
    let n = ids.len() - 1;
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(SCORE_CHUNK) {
        let len = SCORE_CHUNK.min(n - start);
        let logp = model.logits(&hidden.narrow(0, start as i64, len as i64)).to_kind(Kind::Float).log_softmax(-1, Kind::Float); // (len, V)
        let targets = Tensor::from_slice(&ids[start + 1..start + 1 + len].iter().map(|&t| i64::from(t)).collect::<Vec<_>>()).to_device(device);
        let lp = Vec::<f32>::try_from(logp.gather(1, &targets.unsqueeze(1), false).squeeze_dim(1).to_device(Device::Cpu)).map_err(f1_core::Error::from)?;
        let (top_v, top_i) = logp.topk(k as i64, -1, true, true); // (len, k)
        let top_v = Vec::<f32>::try_from(top_v.flatten(0, -1).to_device(Device::Cpu)).map_err(f1_core::Error::from)?;
        let top_i = Vec::<i64>::try_from(top_i.flatten(0, -1).to_device(Device::Cpu)).map_err(f1_core::Error::from)?;
        for (j, &logprob) in lp.iter().enumerate() {
            let top = (0..k).map(|c| (top_i[j * k + c] as u32, top_v[j * k + c])).collect();
            out.push(TokenScore { logprob, top });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_cut_to_the_stopped_text() {
        let mut p: Vec<String> = ["Hel", "lo", " wor", "ld"].iter().map(|s| s.to_string()).collect();
        fit_pieces(&mut p, "Hello wo");
        assert_eq!(p, vec!["Hel", "lo", " wo"]);
        let mut p: Vec<String> = ["a", "", "é"].iter().map(|s| s.to_string()).collect();
        fit_pieces(&mut p, "aé");
        assert_eq!(p, vec!["a", "", "é"]);
    }

    #[test]
    fn errors_have_the_openai_shape() {
        let e = ApiError::too_long("too long".into());
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let body = e.body();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["code"], "context_length_exceeded");
        assert_eq!(body["error"]["message"], "too long");
    }

    #[test]
    fn token_budget_cuts_defaults_and_refuses_asks_over_it() {
        // No ask: the default, cut to what the budget leaves after the prompt.
        assert_eq!(new_tokens(10, None, 256, 64, 8192).ok(), Some(54));
        assert_eq!(new_tokens(10, None, 16, 64, 8192).ok(), Some(16));
        assert_eq!(new_tokens(10, Some(54), 256, 64, 8192).ok(), Some(54));
        let e = new_tokens(10, Some(55), 256, 64, 8192).expect_err("over the server's budget");
        assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, Some("token_limit_exceeded")));
        assert!(e.message.contains("65 tokens") && e.message.contains("--max-total-tokens"), "{}", e.message);
        // A budget above the context is the context.
        let e = new_tokens(100, Some(40), 256, 4096, 128).expect_err("over the context");
        assert_eq!(e.code, Some("context_length_exceeded"));
    }

    #[test]
    fn keys_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("ab", "abc"));
        assert!(!same_secret("", "abc"));
    }

    #[test]
    fn busy_errors_say_when_to_retry() {
        let r = ApiError::busy(1, 1).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("1"));
        let r = ApiError::unauthorized("no key").into_response();
        assert_eq!(r.headers().get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()), Some("Bearer"));
    }

    #[test]
    fn prompts_parse_in_every_legacy_form() {
        let parse = |v: Value| serde_json::from_value::<PromptField>(v).map(|p| p.into_prompts().map(|p| p.len()));
        assert_eq!(parse(json!("a")).ok().and_then(|r| r.ok()), Some(1));
        assert_eq!(parse(json!(["a", "b"])).ok().and_then(|r| r.ok()), Some(2));
        assert_eq!(parse(json!([1, 2, 3])).ok().and_then(|r| r.ok()), Some(1));
        assert_eq!(parse(json!([[1], [2]])).ok().and_then(|r| r.ok()), Some(2));
        assert!(parse(json!([])).ok().is_some_and(|r| r.is_err()), "an empty list is refused");
        assert!(parse(json!(3)).is_err());
    }
}
