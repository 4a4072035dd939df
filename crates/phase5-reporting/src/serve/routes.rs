//! The HTTP side: routes, the API-key check, admission and request validation. Handlers
//! validate a request, admit it, send it to the inference threads and shape their answer.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::Sse;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use f1_core::generate::GenerationConfig;
use f1_core::FinishReason;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::api::{ApiError, ChatRequest, CompletionRequest, Stop};
use super::stream::{ChatStream, ChunkMeta};
use super::worker::{ChatEvent, Job, Work};
use super::{ServeOptions, INDEX_HTML, MAX_LOGPROBS, MAX_STOPS};

/// What the HTTP side knows of a served variant.
pub(super) struct ModelInfo {
    pub(super) name: String,
    pub(super) description: String,
    /// The model's context length in tokens.
    pub(super) context: usize,
}

/// What every handler shares.
pub(super) struct AppState {
    /// The served variants; index 0 answers requests without `model`.
    pub(super) models: Vec<ModelInfo>,
    /// Jobs for the inference threads.
    pub(super) jobs: std_mpsc::Sender<Job>,
    /// Inference threads still running.
    pub(super) alive: Arc<AtomicUsize>,
    /// Admission permits: `workers + queue` of them.
    pub(super) slots: Arc<Semaphore>,
    /// Limits and the API key.
    pub(super) options: ServeOptions,
    /// Server start, seconds since the epoch (the models' `created`).
    pub(super) created: u64,
    /// Source of response ids.
    pub(super) next_id: AtomicU64,
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
    /// are plain text: OpenAI clients expect an error object. The body must be declared JSON.
    fn parse_body<T: serde::de::DeserializeOwned>(&self, headers: &HeaderMap, body: std::result::Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
        let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if !media_type.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::unsupported_media_type(content_type));
        }
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

pub(super) fn router(state: Arc<AppState>) -> Router {
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
        .layer(middleware::from_fn_with_state(state.clone(), check_origin))
        .with_state(state)
}

/// Requests from a browser carry `Origin`. One from the server's own page (the origin's host
/// is the `Host` it asked for) or from an allowed origin passes; any other gets 403 before it
/// reaches a route. Allowed origins get CORS headers, and their preflight (`OPTIONS`, sent
/// without the API key) is answered here.
async fn check_origin(State(s): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Some(origin) = request.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_owned) else {
        return next.run(request).await;
    };
    let host = request.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let own = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")).is_some_and(|h| !h.is_empty() && h.eq_ignore_ascii_case(host));
    let allowed = s.options.allowed_origins.iter().any(|o| o.eq_ignore_ascii_case(&origin));
    if !own && !allowed {
        return ApiError::forbidden_origin(&origin).into_response();
    }
    if !allowed {
        return next.run(request).await;
    }
    let preflight = request.method() == Method::OPTIONS;
    let mut response = if preflight { StatusCode::NO_CONTENT.into_response() } else { next.run(request).await };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    if preflight {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST"));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("authorization, content-type"));
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    }
    response
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

async fn chat_completions(State(s): State<Arc<AppState>>, headers: HeaderMap, body: std::result::Result<Bytes, BytesRejection>) -> Response {
    match chat_response(s, &headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn completions(State(s): State<Arc<AppState>>, headers: HeaderMap, body: std::result::Result<Bytes, BytesRejection>) -> Response {
    match completion_response(s, &headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn chat_response(s: Arc<AppState>, headers: &HeaderMap, body: std::result::Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let req: ChatRequest = s.parse_body(headers, body)?;
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

async fn completion_response(s: Arc<AppState>, headers: &HeaderMap, body: std::result::Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let req: CompletionRequest = s.parse_body(headers, body)?;
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
    // Every stop string is looked for as the text grows, so their number and length are bounded.
    let (most, longest) = MAX_STOPS;
    if stop_strings.len() > most || stop_strings.iter().any(|s| s.len() > longest) {
        return Err(ApiError { param: Some("stop"), ..ApiError::bad_request(format!("`stop` holds {} strings, the longest {} bytes; this server takes at most {most} of at most {longest} bytes", stop_strings.len(), stop_strings.iter().map(String::len).max().unwrap_or(0))) });
    }
    Ok(GenerationConfig { max_new_tokens: 0, temperature, top_p: top_p.filter(|&p| p < 1.0), seed, stop_strings: stop_strings.into_iter().filter(|s| !s.is_empty()).collect(), ..Default::default() })
}

pub(super) fn usage(prompt: usize, completion: usize) -> Value {
    json!({ "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion })
}

pub(super) fn finish_name(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        // Only a client that has gone (or timed out) is cancelled; nobody reads this.
        FinishReason::Cancelled => "cancelled",
    }
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("ab", "abc"));
        assert!(!same_secret("", "abc"));
    }
}
