//! Tests of the LLM-as-judge client against a mock OpenAI-compatible server on a loopback port.
//!
//! The mock is a plain `TcpListener` speaking just enough HTTP/1.1 (request line, headers,
//! `Content-Length` body; replies with `Content-Length` and `Connection: close`) to play a good
//! judge, a slow one, a flaky one, one that answers in prose, one that rejects the key, and one
//! that records how many requests it serves at once. It derives the score from the prompt
//! (5 when the candidate equals the reference, else 2), so the tests can check that every
//! verdict lands on its own item. Timeouts and backoffs are a fraction of a second, so the
//! whole file runs in a couple of seconds.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use phase4_evaluation::judge::{
    parse_verdict, rubric_messages, summarize, Judge, JudgeConfig, JudgeItem, JudgeSummary,
    Verdict, ENDPOINT_ENV, MODEL_ENV, REASON_MAX_CHARS,
};
use phase4_evaluation::Error;

/// How the mock server answers.
#[derive(Clone, Copy)]
enum Mode {
    /// A valid verdict, scored from the prompt.
    Good,
    /// Sleeps this long before answering, longer than the client's timeout.
    Slow(Duration),
    /// `status` for the first `failures` requests, then good.
    Flaky { status: u16, failures: usize },
    /// A well-formed completion whose content is prose instead of the JSON verdict.
    Garbage,
    /// Always this error status.
    Status(u16),
    /// Good, but holds each request this long, tracking how many are in flight.
    Hold(Duration),
}

/// What the mock saw; shared between its threads and the test.
#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    authorization: Mutex<Vec<Option<String>>>,
    bodies: Mutex<Vec<serde_json::Value>>,
    stop: AtomicBool,
}

/// A mock OpenAI-compatible server on 127.0.0.1 and an ephemeral port, stopped on drop.
struct MockServer {
    addr: SocketAddr,
    seen: Arc<Seen>,
    acceptor: Option<JoinHandle<()>>,
}

impl MockServer {
    fn start(mode: Mode) -> MockServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let seen = Arc::new(Seen::default());
        let shared = Arc::clone(&seen);
        let acceptor = thread::spawn(move || {
            for stream in listener.incoming() {
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&shared);
                // One thread per connection, so that concurrent requests really overlap.
                thread::spawn(move || {
                    let _ = serve(stream, mode, &shared);
                });
            }
        });
        MockServer {
            addr,
            seen,
            acceptor: Some(acceptor),
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    fn requests(&self) -> usize {
        self.seen.requests.load(Ordering::SeqCst)
    }

    fn max_in_flight(&self) -> usize {
        self.seen.max_in_flight.load(Ordering::SeqCst)
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.seen.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag and exits.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Reads one request from `stream` and answers it as `mode` says.
fn serve(stream: TcpStream, mode: Mode, seen: &Seen) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;

    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut content_length = 0usize;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => content_length = value.trim().parse().unwrap_or(0),
                "authorization" => authorization = Some(value.trim().to_string()),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; content_length];
    reader.read_exact(&mut body)?;
    if seen.stop.load(Ordering::SeqCst) {
        return Ok(());
    }
    let n = seen.requests.fetch_add(1, Ordering::SeqCst) + 1;
    seen.authorization.lock().expect("lock").push(authorization);
    let request: serde_json::Value =
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    seen.bodies.lock().expect("lock").push(request.clone());

    if method != "POST" || path != "/v1/chat/completions" {
        return respond(&mut stream, 404, r#"{"error":{"message":"no such route"}}"#);
    }
    match mode {
        Mode::Good => respond(&mut stream, 200, &completion(&good_content(&request))),
        Mode::Slow(delay) => {
            thread::sleep(delay);
            respond(&mut stream, 200, &completion(&good_content(&request)))
        }
        Mode::Flaky { status, failures } if n <= failures => respond(
            &mut stream,
            status,
            r#"{"error":{"message":"try again later"}}"#,
        ),
        Mode::Flaky { .. } => respond(&mut stream, 200, &completion(&good_content(&request))),
        Mode::Garbage => respond(&mut stream, 200, &completion("I think it's a 4")),
        Mode::Status(status) => respond(
            &mut stream,
            status,
            r#"{"error":{"message":"Invalid API key provided"}}"#,
        ),
        Mode::Hold(delay) => {
            let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            seen.max_in_flight.fetch_max(now, Ordering::SeqCst);
            thread::sleep(delay);
            // Leave the count before replying: once the client has the reply it may send the
            // next request, which must not find this one still counted.
            seen.in_flight.fetch_sub(1, Ordering::SeqCst);
            respond(&mut stream, 200, &completion(&good_content(&request)))
        }
    }
}

/// Writes a complete HTTP/1.1 response and lets the connection close.
fn respond(stream: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        _ => "Error",
    };
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// A chat.completion response whose assistant message is `content`.
fn completion(content: &str) -> String {
    serde_json::json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 0,
        "model": "mock-judge",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    })
    .to_string()
}

/// The verdict a fair judge would give: 5 when the candidate repeats the reference, else 2.
/// Every other verdict is fenced, as some judges answer, to exercise the fence rule.
fn good_content(request: &serde_json::Value) -> String {
    let prompt = request["messages"][1]["content"].as_str().unwrap_or("");
    let reference = between(prompt, "<reference_answer>\n", "\n</reference_answer>");
    let candidate = between(prompt, "<candidate_answer>\n", "\n</candidate_answer>");
    let verdict = if reference.is_some() && reference == candidate {
        r#"{"score": 5, "reason": "The candidate states the reference fact."}"#
    } else {
        r#"{"score": 2, "reason": "The candidate contradicts the reference."}"#
    };
    if prompt.contains("fenced") {
        format!("```json\n{verdict}\n```")
    } else {
        verdict.to_string()
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &text[text.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

/// A config for `server` with test-sized timings and an API-key variable nobody sets.
fn config(endpoint: &str) -> JudgeConfig {
    JudgeConfig {
        endpoint: endpoint.to_string(),
        model: "mock-judge".to_string(),
        api_key_env: "F1_JUDGE_TEST_KEY_NEVER_SET".to_string(),
        timeout_secs: 5.0,
        max_retries: 2,
        backoff_secs: 0.01,
        concurrency: 2,
        max_tokens: 200,
        cache_dir: None,
    }
}

/// Item `i`: answered correctly when `i` is even.
fn item(i: usize) -> JudgeItem {
    let reference = format!("Driver {i} won the race.");
    let prediction = if i.is_multiple_of(2) {
        reference.clone()
    } else {
        format!("Driver {} won the race.", i + 100)
    };
    let question = if i.is_multiple_of(3) {
        format!("Who won race {i}? (fenced)")
    } else {
        format!("Who won race {i}?")
    };
    JudgeItem {
        question,
        reference,
        prediction,
    }
}

fn expected_score(i: usize) -> u8 {
    if i.is_multiple_of(2) {
        5
    } else {
        2
    }
}

fn remote_reason(result: Result<Verdict, Error>) -> (String, String) {
    match result {
        Err(Error::Remote { url, reason }) => (url, reason),
        other => panic!("expected Error::Remote, got {other:?}"),
    }
}

#[test]
fn good_judge_scores_every_item_in_order() {
    let server = MockServer::start(Mode::Good);
    let judge = Judge::new(config(&server.endpoint())).expect("valid config");
    let items: Vec<JudgeItem> = (0..6).map(item).collect();

    let verdicts = judge.judge_all(&items);

    assert_eq!(verdicts.len(), items.len());
    for (i, verdict) in verdicts.iter().enumerate() {
        let verdict = verdict.as_ref().expect("verdict");
        assert_eq!(verdict.score, expected_score(i), "item {i}");
        assert!(!verdict.reason.is_empty());
        assert!(!verdict.cached);
    }
    assert_eq!(server.requests(), items.len());

    // The request is a temperature-0 chat completion for the configured model, carrying the
    // rubric as the system message and all three texts in the user message.
    let bodies = server.seen.bodies.lock().expect("lock");
    let body = bodies.iter().find(|b| {
        b["messages"][1]["content"]
            .as_str()
            .is_some_and(|c| c.contains("race 1?"))
    });
    let body = body.expect("request for item 1");
    assert_eq!(body["model"], "mock-judge");
    assert_eq!(body["temperature"].as_f64(), Some(0.0));
    assert_eq!(body["max_tokens"], 200);
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["messages"][1]["role"], "user");
    let system = body["messages"][0]["content"]
        .as_str()
        .expect("system text");
    for level in ["5 -", "4 -", "3 -", "2 -", "1 -", "\"score\"", "\"reason\""] {
        assert!(system.contains(level), "rubric lacks {level}");
    }
    let user = body["messages"][1]["content"].as_str().expect("user text");
    assert!(user.contains("Driver 1 won the race.") && user.contains("Driver 101 won the race."));
    // No key variable set: no Authorization header.
    assert!(server
        .seen
        .authorization
        .lock()
        .expect("lock")
        .iter()
        .all(Option::is_none));
}

#[test]
fn judge_one_and_empty_batch() {
    let server = MockServer::start(Mode::Good);
    let judge = Judge::new(config(&server.endpoint())).expect("valid config");
    assert_eq!(judge.judge_one(&item(4)).expect("verdict").score, 5);
    assert_eq!(judge.judge_one(&item(7)).expect("verdict").score, 2);
    assert!(judge.judge_all(&[]).is_empty());
    assert_eq!(server.requests(), 2);
    assert_eq!(
        judge.url(),
        format!("{}/chat/completions", server.endpoint())
    );
}

#[test]
fn api_key_is_sent_as_bearer() {
    let server = MockServer::start(Mode::Good);
    let var = "F1_JUDGE_TEST_KEY_BEARER";
    std::env::set_var(var, "sk-test-123");
    let mut cfg = config(&format!("{}/", server.endpoint()));
    cfg.api_key_env = var.to_string();
    let judge = Judge::new(cfg).expect("valid config");
    std::env::remove_var(var);

    judge.judge_one(&item(0)).expect("verdict");
    let seen = server.seen.authorization.lock().expect("lock");
    assert_eq!(seen.as_slice(), [Some("Bearer sk-test-123".to_string())]);
    // The key stays out of debug output.
    assert!(!format!("{judge:?}").contains("sk-test-123"));
}

#[test]
fn slow_judge_times_out_after_all_retries() {
    let server = MockServer::start(Mode::Slow(Duration::from_millis(1500)));
    let mut cfg = config(&server.endpoint());
    cfg.timeout_secs = 0.3;
    cfg.backoff_secs = 0.01;
    cfg.max_retries = 2;
    let judge = Judge::new(cfg).expect("valid config");

    let start = Instant::now();
    let (url, reason) = remote_reason(judge.judge_one(&item(0)));

    assert_eq!(server.requests(), 3, "max_retries + 1 attempts");
    assert!(url.ends_with("/v1/chat/completions"), "{url}");
    assert!(reason.contains("timed out"), "{reason}");
    assert!(reason.contains("3 attempt"), "{reason}");
    // Three timeouts of 0.3 s and two short backoffs (about 1 s), not three of the server's
    // 1.5 s delays; the bound leaves room for a loaded machine.
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn flaky_500_is_retried_until_success() {
    let server = MockServer::start(Mode::Flaky {
        status: 500,
        failures: 2,
    });
    let judge = Judge::new(config(&server.endpoint())).expect("valid config");
    let verdict = judge.judge_one(&item(0)).expect("third attempt succeeds");
    assert_eq!(verdict.score, 5);
    assert_eq!(server.requests(), 3);
}

#[test]
fn rate_limit_429_is_retried() {
    let server = MockServer::start(Mode::Flaky {
        status: 429,
        failures: 1,
    });
    let judge = Judge::new(config(&server.endpoint())).expect("valid config");
    assert_eq!(
        judge
            .judge_one(&item(1))
            .expect("second attempt succeeds")
            .score,
        2
    );
    assert_eq!(server.requests(), 2);
}

#[test]
fn persistent_5xx_fails_with_status() {
    let server = MockServer::start(Mode::Status(503));
    let judge = Judge::new(config(&server.endpoint())).expect("valid config");
    let (_, reason) = remote_reason(judge.judge_one(&item(0)));
    assert_eq!(server.requests(), 3);
    assert!(reason.contains("503"), "{reason}");
}

#[test]
fn garbage_answer_is_retried_then_fails_with_snippet() {
    let server = MockServer::start(Mode::Garbage);
    let mut cfg = config(&server.endpoint());
    cfg.max_retries = 3;
    let judge = Judge::new(cfg).expect("valid config");

    let (url, reason) = remote_reason(judge.judge_one(&item(0)));

    assert_eq!(server.requests(), 4);
    assert_eq!(url, judge.url());
    assert!(reason.contains("I think it's a 4"), "{reason}");
    assert!(reason.contains("garbage"), "{reason}");
}

#[test]
fn unauthorized_fails_at_once_with_hint() {
    let server = MockServer::start(Mode::Status(401));
    let judge = Judge::new(config(&server.endpoint())).expect("valid config");

    let (_, reason) = remote_reason(judge.judge_one(&item(0)));

    assert_eq!(server.requests(), 1, "a 401 is not retried");
    assert!(reason.contains("401"), "{reason}");
    assert!(reason.contains("F1_JUDGE_TEST_KEY_NEVER_SET"), "{reason}");
    assert!(reason.contains("Invalid API key provided"), "{reason}");
}

#[test]
fn wrong_path_404_fails_at_once_with_hint() {
    let server = MockServer::start(Mode::Good);
    // The full route given as the base URL: the client appends /chat/completions once more.
    let judge = Judge::new(config(&format!("{}/chat/completions", server.endpoint())))
        .expect("valid config");
    let (_, reason) = remote_reason(judge.judge_one(&item(0)));
    assert_eq!(server.requests(), 1);
    assert!(
        reason.contains("404") && reason.contains("base URL"),
        "{reason}"
    );
}

#[test]
fn refused_connection_is_retried() {
    // A port that was just free: binding and dropping leaves nobody listening.
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let judge = Judge::new(config(&format!("http://{addr}/v1"))).expect("valid config");
    let (_, reason) = remote_reason(judge.judge_one(&item(0)));
    assert!(reason.contains("cannot connect"), "{reason}");
    assert!(reason.contains("3 attempt"), "{reason}");
}

fn cache_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("cache dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

#[test]
fn cache_serves_rerun_without_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("judge-cache");
    let items: Vec<JudgeItem> = (0..5).map(item).collect();

    let first_server = MockServer::start(Mode::Good);
    let mut cfg = config(&first_server.endpoint());
    cfg.cache_dir = Some(cache.clone());
    let first: Vec<Verdict> = Judge::new(cfg.clone())
        .expect("valid config")
        .judge_all(&items)
        .into_iter()
        .map(|v| v.expect("verdict"))
        .collect();
    assert_eq!(first_server.requests(), 5);
    assert!(first.iter().all(|v| !v.cached));

    // One file per item, named by a sha256, and no temporary files left behind.
    let files = cache_files(&cache);
    assert_eq!(files.len(), 5);
    for file in &files {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name");
        let stem = name.strip_suffix(".json").expect(".json file");
        assert!(
            stem.len() == 64 && stem.chars().all(|c| c.is_ascii_hexdigit()),
            "{name}"
        );
    }

    // The rerun goes to another server: the cache does not depend on the endpoint.
    let second_server = MockServer::start(Mode::Good);
    cfg.endpoint = second_server.endpoint();
    let judge = Judge::new(cfg).expect("valid config");
    let second: Vec<Verdict> = judge
        .judge_all(&items)
        .into_iter()
        .map(|v| v.expect("verdict"))
        .collect();
    assert_eq!(second_server.requests(), 0);
    assert_eq!(first_server.requests(), 5);
    for (a, b) in first.iter().zip(&second) {
        assert!(b.cached);
        assert_eq!((a.score, &a.reason), (b.score, &b.reason));
    }

    // A corrupt entry is ignored, asked again and overwritten.
    std::fs::write(&files[0], "{\"score\": 9, \"rea").expect("corrupt a cache file");
    let third = judge.judge_all(&items);
    assert_eq!(second_server.requests(), 1);
    assert_eq!(
        third
            .iter()
            .filter(|v| v.as_ref().is_ok_and(|v| !v.cached))
            .count(),
        1
    );
    assert!(third.iter().all(Result::is_ok));
    let fourth = judge.judge_all(&items);
    assert_eq!(
        second_server.requests(),
        1,
        "the corrupt file was rewritten"
    );
    assert!(fourth.iter().all(|v| v.as_ref().is_ok_and(|v| v.cached)));
    assert_eq!(cache_files(&cache).len(), 5);

    // A different judge model is a different cache entry.
    let mut other = config(&second_server.endpoint());
    other.model = "another-judge".to_string();
    other.cache_dir = Some(cache.clone());
    Judge::new(other)
        .expect("valid config")
        .judge_one(&items[0])
        .expect("verdict");
    assert_eq!(second_server.requests(), 2);
}

#[test]
fn concurrency_is_bounded_and_order_kept() {
    let server = MockServer::start(Mode::Hold(Duration::from_millis(150)));
    let mut cfg = config(&server.endpoint());
    cfg.concurrency = 3;
    let judge = Judge::new(cfg).expect("valid config");
    let items: Vec<JudgeItem> = (0..9).map(item).collect();

    let verdicts = judge.judge_all(&items);

    assert_eq!(server.requests(), 9);
    let max = server.max_in_flight();
    assert!(max <= 3, "{max} requests in flight with concurrency 3");
    assert!(max > 1, "requests never overlapped");
    for (i, verdict) in verdicts.iter().enumerate() {
        assert_eq!(
            verdict.as_ref().expect("verdict").score,
            expected_score(i),
            "item {i}"
        );
    }
}

#[test]
fn config_is_validated() {
    let base = config("http://127.0.0.1:9/v1");
    let cases: Vec<(JudgeConfig, &str)> = vec![
        (
            JudgeConfig {
                endpoint: String::new(),
                ..base.clone()
            },
            "endpoint",
        ),
        (
            JudgeConfig {
                endpoint: "127.0.0.1:8000/v1".to_string(),
                ..base.clone()
            },
            "endpoint",
        ),
        (
            JudgeConfig {
                endpoint: "ftp://127.0.0.1/v1".to_string(),
                ..base.clone()
            },
            "endpoint",
        ),
        (
            JudgeConfig {
                model: "  ".to_string(),
                ..base.clone()
            },
            "model",
        ),
        (
            JudgeConfig {
                concurrency: 0,
                ..base.clone()
            },
            "concurrency",
        ),
        (
            JudgeConfig {
                timeout_secs: 0.0,
                ..base.clone()
            },
            "timeout_secs",
        ),
        (
            JudgeConfig {
                timeout_secs: -1.0,
                ..base.clone()
            },
            "timeout_secs",
        ),
        (
            JudgeConfig {
                timeout_secs: f64::NAN,
                ..base.clone()
            },
            "timeout_secs",
        ),
        (
            JudgeConfig {
                backoff_secs: -0.5,
                ..base.clone()
            },
            "backoff_secs",
        ),
        (
            JudgeConfig {
                max_tokens: 0,
                ..base.clone()
            },
            "max_tokens",
        ),
    ];
    for (cfg, field) in cases {
        match Judge::new(cfg) {
            Err(Error::Invalid(message)) => assert!(message.contains(field), "{message}"),
            other => panic!("expected Error::Invalid about {field}, got {other:?}"),
        }
    }
    // Defaults plus a model are valid; building makes no request.
    let ok = JudgeConfig {
        model: "judge".to_string(),
        ..JudgeConfig::default()
    };
    assert!(Judge::new(ok).is_ok());
}

#[test]
fn config_defaults_and_yaml() {
    let defaults = JudgeConfig::default();
    assert_eq!(defaults.api_key_env, "F1_JUDGE_API_KEY");
    assert_eq!(defaults.timeout_secs, 60.0);
    assert_eq!(defaults.max_retries, 4);
    assert_eq!(defaults.backoff_secs, 1.0);
    assert_eq!(defaults.concurrency, 4);
    assert_eq!(defaults.max_tokens, 200);
    assert_eq!(defaults.cache_dir, None);

    let partial: JudgeConfig =
        serde_yaml::from_str("model: qwen\nconcurrency: 8\n").expect("partial config");
    assert_eq!(
        partial,
        JudgeConfig {
            model: "qwen".to_string(),
            concurrency: 8,
            ..JudgeConfig::default()
        }
    );
    let typo = serde_yaml::from_str::<JudgeConfig>("modle: qwen\n").expect_err("unknown field");
    assert!(typo.to_string().contains("modle"), "{typo}");
}

#[test]
fn env_overrides_endpoint_and_model() {
    // The only test that touches these two variables.
    std::env::set_var(ENDPOINT_ENV, "http://judge.example:8000/v1");
    std::env::set_var(MODEL_ENV, "judge-from-env");
    let overridden = config("http://127.0.0.1:9/v1").from_env_overrides();
    std::env::set_var(MODEL_ENV, "");
    let blank_model = config("http://127.0.0.1:9/v1").from_env_overrides();
    std::env::remove_var(ENDPOINT_ENV);
    std::env::remove_var(MODEL_ENV);
    let untouched = config("http://127.0.0.1:9/v1").from_env_overrides();

    assert_eq!(overridden.endpoint, "http://judge.example:8000/v1");
    assert_eq!(overridden.model, "judge-from-env");
    assert_eq!(
        blank_model.model, "mock-judge",
        "a blank variable overrides nothing"
    );
    assert_eq!(untouched, config("http://127.0.0.1:9/v1"));
}

#[test]
fn verdict_parsing_is_strict() {
    let ok = |text: &str| parse_verdict(text).unwrap_or_else(|e| panic!("{text:?} rejected: {e}"));
    assert_eq!(
        ok(r#"{"score": 4, "reason": "Close."}"#),
        Verdict {
            score: 4,
            reason: "Close.".into(),
            cached: false
        }
    );
    assert_eq!(
        ok("  \n{\"reason\": \"Wrong year.\", \"score\": 1}\n ").score,
        1
    );
    assert_eq!(
        ok("```json\n{\"score\": 5, \"reason\": \"Same.\"}\n```").score,
        5
    );
    assert_eq!(
        ok("```\n{\"score\": 3, \"reason\": \"Half.\"}\n```").score,
        3
    );
    let long = ok(&format!(
        r#"{{"score": 2, "reason": "{}"}}"#,
        "é".repeat(500)
    ));
    assert_eq!(long.reason.chars().count(), REASON_MAX_CHARS);

    for bad in [
        "I think it's a 4",
        "Score: 4",
        r#"Here you go: {"score": 4, "reason": "ok"}"#,
        r#"{"score": 4, "reason": "ok"} Hope this helps!"#,
        r#"{"score": 4, "reason": "ok"}{"score": 4, "reason": "ok"}"#,
        "```json\n{\"score\": 4, \"reason\": \"ok\"}",
        r#"{"score": 0, "reason": "ok"}"#,
        r#"{"score": 6, "reason": "ok"}"#,
        r#"{"score": -1, "reason": "ok"}"#,
        r#"{"score": 4.0, "reason": "ok"}"#,
        r#"{"score": 4.5, "reason": "ok"}"#,
        r#"{"score": "4", "reason": "ok"}"#,
        r#"{"score": 4}"#,
        r#"{"reason": "ok"}"#,
        r#"{"score": 4, "reason": ""}"#,
        r#"{"score": 4, "reason": "   "}"#,
        r#"{"score": 4, "reason": 7}"#,
        r#"{"score": 4, "reason": "ok", "confidence": 0.9}"#,
        r#"[{"score": 4, "reason": "ok"}]"#,
        "",
    ] {
        match parse_verdict(bad) {
            Err(Error::Invalid(message)) => assert!(!message.is_empty()),
            other => panic!("{bad:?} accepted: {other:?}"),
        }
    }
    // The error quotes the reply so a log shows what the judge said.
    let message = parse_verdict("I think it's a 4")
        .expect_err("prose")
        .to_string();
    assert!(message.contains("I think it's a 4"), "{message}");
}

#[test]
fn rubric_keeps_texts_apart() {
    let item = JudgeItem {
        question: "Who won the 2021 Abu Dhabi GP?".into(),
        reference: "Max Verstappen".into(),
        prediction: "Lewis Hamilton".into(),
    };
    let messages = rubric_messages(&item);
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].role, "system");
    let user = &messages[1].content;
    let q = user.find("Abu Dhabi").expect("question");
    let r = user.find("Max Verstappen").expect("reference");
    let c = user.find("Lewis Hamilton").expect("candidate");
    assert!(q < r && r < c);
    // The system prompt is the same for every item; only the user message varies.
    assert_eq!(
        messages[0],
        rubric_messages(&JudgeItem {
            question: "x".into(),
            ..item
        })[0]
    );
}

#[test]
fn summary_counts_and_mean() {
    let v = |score| {
        Ok(Verdict {
            score,
            reason: "r".into(),
            cached: false,
        })
    };
    let verdicts = vec![
        v(5),
        v(5),
        v(2),
        Err(Error::Invalid("failed".into())),
        v(3),
        v(9),
    ];
    let summary = summarize(&verdicts);
    assert_eq!(
        summary,
        JudgeSummary {
            n: 6,
            scored: 4,
            failed: 2,
            mean_score: Some(15.0 / 4.0),
            distribution: [0, 1, 1, 0, 2]
        }
    );
    let json = serde_json::to_value(&summary).expect("serializes");
    assert_eq!(json["distribution"], serde_json::json!([0, 1, 1, 0, 2]));

    let empty = summarize(&[]);
    assert_eq!(
        (empty.n, empty.scored, empty.failed, empty.mean_score),
        (0, 0, 0, None)
    );
}
