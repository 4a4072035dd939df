//! The demo server: one loaded model behind an OpenAI-compatible HTTP API, so that the
//! evaluation harness (`phase4_evaluation::remote::RemoteBackend`), lm-evaluation-harness's
//! `local-completions` / `local-chat-completions` models and any OpenAI client can talk to a
//! study variant the way they talk to vLLM.
//!
//! Routes: `GET /` (a small self-contained chat page), `GET /health`, `GET /v1/models`,
//! `POST /v1/chat/completions` (with server-sent-event streaming and
//! `stream_options.include_usage`) and `POST /v1/completions` (the legacy API, with
//! `echo` + `logprobs` returning the prompt tokens' log-probabilities in the legacy
//! `{tokens, token_logprobs, top_logprobs, text_offset}` shape). Request and response fields
//! follow the OpenAI API reference; where vLLM and OpenAI differ, vLLM's behaviour (the server
//! lm-evaluation-harness is written against) is followed and the difference noted.
//!
//! Threading: libtorch tensors are not `Sync`, so one dedicated std thread owns the
//! [`LoadedModel`] and runs requests one at a time, in arrival order, from a channel. The HTTP
//! side runs on its own small tokio runtime; handlers validate a request, send the job, and
//! await the reply (a oneshot) or the streamed text pieces (an unbounded mpsc).

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
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
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

/// The chat page served at `/` (HTML, CSS and script inline: no external assets).
const INDEX_HTML: &str = include_str!("serve.html");

/// Default `max_tokens` of a chat completion (OpenAI leaves it to the context; a small model
/// rambles, so the demo bounds it).
pub const DEFAULT_CHAT_MAX_TOKENS: usize = 256;
/// Default `max_tokens` of a legacy completion, as in the OpenAI API.
pub const DEFAULT_COMPLETION_MAX_TOKENS: usize = 16;
/// Most `logprobs` alternatives per position a legacy completion may ask for (OpenAI's limit).
pub const MAX_LOGPROBS: usize = 5;
/// Positions whose vocabulary log-softmax is computed at once when scoring a prompt: bounds
/// memory to about `SCORE_CHUNK * vocab * 4` bytes whatever the prompt length.
const SCORE_CHUNK: usize = 256;

/// A running server: its bound address, and the way to stop it.
///
/// Dropping the handle stops the server too (after in-flight requests finish).
pub struct ServerHandle {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    worker: Option<JoinHandle<()>>,
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
        // inference thread sees its channel close once its current job is done.
        if let Some(h) = self.worker.take() {
            h.join().map_err(|_| Error::Panicked("inference"))?;
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

/// Serve `loaded` as model `name` on `addr` (port 0 picks a free port; see
/// [`ServerHandle::addr`]). The HTTP server runs on its own tokio runtime thread and the model
/// on its own inference thread, so this returns as soon as the socket listens; it works from
/// synchronous code, tests included.
pub fn spawn(loaded: LoadedModel, name: String, addr: SocketAddr) -> Result<ServerHandle> {
    let context = loaded.model.config().max_position_embeddings;
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

    let (jobs, inbox) = std_mpsc::channel::<Job>();
    let alive = Arc::new(AtomicBool::new(true));
    let worker_alive = AliveGuard(alive.clone());
    let worker = std::thread::Builder::new()
        .name("f1-serve-inference".into())
        .spawn(move || {
            let _alive = worker_alive;
            inference_loop(&loaded, &inbox);
        })
        .map_err(|source| Error::Start { what: "inference thread", source })?;

    let created = unix_now();
    let state = Arc::new(AppState { name, jobs, alive, context, created, next_id: AtomicU64::new(u64::from(std::process::id()) << 32) });
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
    Ok(ServerHandle { addr: bound, shutdown: Some(stop_tx), server: Some(server), worker: Some(worker) })
}

/// Marks the inference thread dead when it ends, however it ends.
struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP side

/// What every handler shares.
struct AppState {
    /// The served model name (`--name`).
    name: String,
    /// Jobs for the inference thread.
    jobs: std_mpsc::Sender<Job>,
    /// False once the inference thread has ended.
    alive: Arc<AtomicBool>,
    /// The model's context length in tokens.
    context: usize,
    /// Server start, seconds since the epoch (the model's `created`).
    created: u64,
    /// Source of response ids.
    next_id: AtomicU64,
}

impl AppState {
    fn submit(&self, job: Job) -> Result<(), ApiError> {
        if !self.alive.load(Ordering::SeqCst) {
            return Err(ApiError::unavailable());
        }
        self.jobs.send(job).map_err(|_| ApiError::unavailable())
    }

    /// The error for a job whose reply channel closed without an answer.
    fn lost(&self) -> ApiError {
        if self.alive.load(Ordering::SeqCst) {
            ApiError::internal("the inference thread failed on this request (see the server log)".into())
        } else {
            ApiError::unavailable()
        }
    }

    fn id(&self, prefix: &str) -> String {
        format!("{prefix}-{:016x}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .fallback(not_found)
        .with_state(state)
}

async fn index() -> Html<&'static str> {
    Html(INDEX_HTML)
}

async fn health(State(s): State<Arc<AppState>>) -> Response {
    if s.alive.load(Ordering::SeqCst) {
        Json(json!({ "status": "ok", "model": s.name })).into_response()
    } else {
        ApiError::unavailable().into_response()
    }
}

async fn models(State(s): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [{ "id": s.name, "object": "model", "created": s.created, "owned_by": "f1-pipeline", "max_model_len": s.context }],
    }))
}

async fn not_found() -> ApiError {
    ApiError { status: StatusCode::NOT_FOUND, message: "no such route (see GET / for the chat page, /v1/models, /v1/chat/completions, /v1/completions)".into(), kind: "invalid_request_error", code: Some("not_found") }
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
    let req: ChatRequest = parse_body(body)?;
    if req.messages.is_empty() {
        return Err(ApiError::bad_request("`messages` must hold at least one message".into()));
    }
    check_n(req.n)?;
    let messages = req.messages.into_iter().enumerate().map(|(i, m)| m.into_chat(i)).collect::<Result<Vec<_>, _>>()?;
    let max_tokens = max_tokens(req.max_completion_tokens.or(req.max_tokens), DEFAULT_CHAT_MAX_TOKENS)?;
    let cfg = sampling(&s, req.temperature, req.top_p, req.seed, req.stop, max_tokens)?;
    let stream = req.stream.unwrap_or(false);
    let include_usage = req.stream_options.and_then(|o| o.include_usage).unwrap_or(false);

    let (tx, mut events) = mpsc::unbounded_channel();
    s.submit(Job::Chat { messages, cfg, events: tx })?;
    // The first event says whether the prompt was accepted, so a bad request is an HTTP error
    // even when streaming was asked for.
    let prompt_tokens = match events.recv().await {
        Some(ChatEvent::Started { prompt_tokens }) => prompt_tokens,
        Some(ChatEvent::Failed(e)) => return Err(e),
        Some(_) | None => return Err(s.lost()),
    };
    let meta = ChunkMeta { id: s.id("chatcmpl"), created: unix_now(), model: s.name.clone(), include_usage };
    if stream {
        let mut pending = VecDeque::new();
        pending.push_back(meta.chunk(json!({ "role": "assistant", "content": "" }), None));
        return Ok(Sse::new(ChatStream { events, pending, done: false, meta }).into_response());
    }
    loop {
        match events.recv().await {
            Some(ChatEvent::Text(_)) | Some(ChatEvent::Started { .. }) => {}
            Some(ChatEvent::Done(out)) => {
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
            Some(ChatEvent::Failed(e)) => return Err(e),
            None => return Err(s.lost()),
        }
    }
}

async fn completion_response(s: Arc<AppState>, body: std::result::Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let req: CompletionRequest = parse_body(body)?;
    check_n(req.n)?;
    if req.stream.unwrap_or(false) {
        return Err(ApiError::bad_request("`stream` is not supported on /v1/completions; use /v1/chat/completions to stream".into()));
    }
    let prompts = req.prompt.into_prompts()?;
    let max_tokens = max_tokens(req.max_tokens, DEFAULT_COMPLETION_MAX_TOKENS)?;
    let logprobs = match req.logprobs {
        None => None,
        Some(k) if (0..=MAX_LOGPROBS as i64).contains(&k) => Some(k as usize),
        Some(k) => return Err(ApiError::bad_request(format!("`logprobs` must be between 0 and {MAX_LOGPROBS}, got {k}"))),
    };
    let cfg = sampling(&s, req.temperature, req.top_p, req.seed, req.stop, max_tokens)?;
    let echo = req.echo.unwrap_or(false);
    let (tx, rx) = oneshot::channel();
    s.submit(Job::Complete { prompts, cfg, echo, logprobs, reply: tx })?;
    let choices = rx.await.map_err(|_| s.lost())??;
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
        "model": s.name,
        "choices": choices,
        "usage": usage(p, c),
    }))
    .into_response())
}

/// Parse a JSON body ourselves rather than with axum's `Json` extractor, whose rejections are
/// plain text: OpenAI clients expect an error object.
fn parse_body<T: serde::de::DeserializeOwned>(body: std::result::Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn check_n(n: Option<i64>) -> Result<(), ApiError> {
    match n {
        None | Some(1) => Ok(()),
        Some(n) => Err(ApiError::bad_request(format!("`n` = {n} is not supported: this server returns one choice per prompt"))),
    }
}

fn max_tokens(asked: Option<i64>, default: usize) -> Result<usize, ApiError> {
    match asked {
        None => Ok(default),
        Some(n) if n >= 0 => Ok(n as usize),
        Some(n) => Err(ApiError::bad_request(format!("`max_tokens` must be >= 0, got {n}"))),
    }
}

/// Decoding options from the request, validated here so a stream never starts on bad values.
/// Temperature defaults to 1 as in the OpenAI API (send 0 for greedy decoding); without a
/// seed each request draws its own.
fn sampling(s: &AppState, temperature: Option<f64>, top_p: Option<f64>, seed: Option<i64>, stop: Option<Stop>, max_new_tokens: usize) -> Result<GenerationConfig, ApiError> {
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
    Ok(GenerationConfig { max_new_tokens, temperature, top_p: top_p.filter(|&p| p < 1.0), seed, stop_strings: stop_strings.into_iter().filter(|s| !s.is_empty()).collect(), ..Default::default() })
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
    code: Option<&'static str>,
}

impl ApiError {
    fn bad_request(message: String) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, message, kind: "invalid_request_error", code: None }
    }

    fn too_long(message: String) -> Self {
        ApiError { code: Some("context_length_exceeded"), ..ApiError::bad_request(message) }
    }

    fn internal(message: String) -> Self {
        ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, message, kind: "server_error", code: None }
    }

    fn unavailable() -> Self {
        ApiError { status: StatusCode::SERVICE_UNAVAILABLE, message: "the inference thread has stopped; restart the server (see its log for the cause)".into(), kind: "server_error", code: Some("worker_unavailable") }
    }

    fn body(&self) -> Value {
        json!({ "error": { "message": self.message, "type": self.kind, "param": null, "code": self.code } })
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
        (self.status, Json(self.body())).into_response()
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
/// chunk with `finish_reason`, the usage chunk if asked for, then `[DONE]`.
struct ChatStream {
    events: mpsc::UnboundedReceiver<ChatEvent>,
    pending: VecDeque<Event>,
    done: bool,
    meta: ChunkMeta,
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
            let event = std::task::ready!(this.events.poll_recv(cx));
            this.on_event(event);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Inference thread

/// Work for the inference thread.
enum Job {
    /// A chat completion; progress and result go to `events`.
    Chat { messages: Vec<ChatMessage>, cfg: GenerationConfig, events: mpsc::UnboundedSender<ChatEvent> },
    /// A legacy completion of one or more prompts.
    Complete { prompts: Vec<Prompt>, cfg: GenerationConfig, echo: bool, logprobs: Option<usize>, reply: oneshot::Sender<Result<Vec<Choice>, ApiError>> },
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

fn inference_loop(loaded: &LoadedModel, inbox: &std_mpsc::Receiver<Job>) {
    while let Ok(job) = inbox.recv() {
        // A panic in the model (a shape bug) fails this request only: its reply channel is
        // dropped while unwinding, which the handler reports as a 500.
        if std::panic::catch_unwind(AssertUnwindSafe(|| run_job(loaded, job))).is_err() {
            tracing::error!("the model panicked on a request; the server keeps running");
        }
    }
    tracing::debug!("inference thread stops: the server is shutting down");
}

fn run_job(m: &LoadedModel, job: Job) {
    match job {
        Job::Chat { messages, cfg, events } => {
            if let Err(e) = run_chat(m, &messages, &cfg, &events) {
                let _ = events.send(ChatEvent::Failed(e));
            }
        }
        Job::Complete { prompts, cfg, echo, logprobs, reply } => {
            let result = prompts.iter().map(|p| complete(m, p, &cfg, echo, logprobs)).collect();
            // The client may have gone; nothing to do then.
            let _ = reply.send(result);
        }
    }
}

fn run_chat(m: &LoadedModel, messages: &[ChatMessage], cfg: &GenerationConfig, events: &mpsc::UnboundedSender<ChatEvent>) -> Result<(), ApiError> {
    let prompt = m.chat_template.render(messages, true)?;
    let ids = encode_prompt(&m.tokenizer, &prompt)?;
    let context = m.model.config().max_position_embeddings;
    if ids.len() >= context {
        return Err(ApiError::too_long(format!("the conversation is {} tokens; the model's context is {context} tokens, with room needed for the reply", ids.len())));
    }
    let _ = events.send(ChatEvent::Started { prompt_tokens: ids.len() });
    // Generation runs to its end even if the client leaves: `generate_ids` has no cancellation.
    let out = generate_ids(&m.model, &m.tokenizer, &[ids], cfg, |_, t| {
        let _ = events.send(ChatEvent::Text(t.to_string()));
    })?;
    let out = out.into_iter().next().ok_or_else(|| ApiError::internal("generation returned no row".into()))?;
    let _ = events.send(ChatEvent::Done(out));
    Ok(())
}

/// One prompt of a legacy completion: optional generation, then, if asked, the
/// log-probability of every returned token from one scoring pass over prompt + completion.
fn complete(m: &LoadedModel, prompt: &Prompt, cfg: &GenerationConfig, echo: bool, logprobs: Option<usize>) -> Result<Choice, ApiError> {
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
    if ids.len() > context || (cfg.max_new_tokens > 0 && ids.len() >= context) {
        return Err(ApiError::too_long(format!("the prompt is {} tokens; the model's context is {context} tokens", ids.len())));
    }
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
