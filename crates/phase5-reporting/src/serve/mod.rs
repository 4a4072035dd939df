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
//! limit (504, or an error event once a stream has started). JSON endpoints take only
//! `Content-Type: application/json` (415 otherwise, so a web page cannot post a "simple"
//! `text/plain` request to a server on 127.0.0.1), and a request whose `Origin` is neither the
//! server's own nor allowed by `allowed_origins` gets 403. A legacy completion takes at most
//! [`MAX_PROMPTS`] prompts and any request at most `MAX_STOPS` stop strings. Every error is an
//! OpenAI error object.
//!
//! Threading: libtorch tensors are `Send` but not `Sync`, so each variant sits behind a mutex
//! and `workers` std threads take jobs from one channel, locking the variant a job names: jobs
//! for different variants run in parallel, jobs for one variant one after the other. The HTTP
//! side runs on its own small tokio runtime; handlers validate a request, take an admission
//! permit (held by the job until its answer is complete), send the job, and await the reply (a
//! oneshot) or the streamed text pieces (an unbounded mpsc, bounded in practice by the token
//! budget). Generation asks before every token whether its client is still waiting
//! (`f1_core::generate::generate_ids_until`): a client that disconnects or whose deadline
//! passes frees its worker within one token, and queued jobs whose client left or whose
//! deadline passed are dropped without running.
//!
//! Layout: this file holds the options, [`spawn`] and the handle; `routes.rs` the routes,
//! admission and validation; `api.rs` the request bodies and the error object; `stream.rs` the
//! SSE body; `worker.rs` the inference threads.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use f1_core::LoadedModel;
use tokio::sync::{oneshot, Semaphore};

use crate::error::{Error, Result};

mod api;
mod routes;
mod stream;
mod worker;

use routes::{router, unix_now, AppState, ModelInfo};
use worker::{inference_loop, Job};

/// The chat page served at `/` (HTML, CSS and script inline: no external assets).
const INDEX_HTML: &str = include_str!("index.html");

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
/// Most prompts in one legacy completion request (each runs under its own token budget, one
/// after another; lm-evaluation-harness batches far fewer).
pub const MAX_PROMPTS: usize = 64;
/// Most stop strings of one request, and the longest one in bytes.
pub const MAX_STOPS: (usize, usize) = (16, 256);

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
    /// Web origins (`https://app.example:8443`) whose pages may call the API from a browser.
    /// Requests carrying an `Origin` header that is neither the server's own nor listed get
    /// 403, so a page elsewhere cannot drive a server on 127.0.0.1; listed origins get CORS
    /// headers and their preflight answered.
    pub allowed_origins: Vec<String>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions { api_key: None, max_body_bytes: 1 << 20, max_total_tokens: 4096, workers: 1, queue: 8, timeout: Duration::from_secs(300), allowed_origins: vec![] }
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
        for origin in &self.allowed_origins {
            let rest = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
            if rest.is_none_or(|host| host.is_empty() || host.contains('/')) {
                return bad(format!("--allow-origin `{origin}` is not an origin: give scheme and host (and port), like https://app.example:8443, with no path"));
            }
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
