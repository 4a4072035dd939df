//! The demo server against the evaluation harness: the real SmolLM2 served in-process on an
//! ephemeral port must give `RemoteBackend` the same log-likelihoods and greedy chat replies as
//! `LocalBackend` gives on a second copy of the model, and speak the OpenAI shapes and errors
//! raw clients expect. The model tests are `#[ignore]`d (they need `cargo xtask setup`'s model);
//! `cargo xtask test` runs them. The unreachable-endpoint test needs no model and always runs.

use std::path::PathBuf;

use f1_core::{load_model, ChatMessage, LoadedModel, ModelOptions};
use phase4_evaluation::remote::{RemoteBackend, RemoteConfig};
use phase4_evaluation::{Backend, Error, LlRequest, LocalBackend};
use phase5_reporting::serve;
use serde_json::{json, Value};

fn model_path() -> PathBuf {
    let p = std::env::var_os("F1_MODEL_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/base/SmolLM2-135M-Instruct.Q4_1.gguf"));
    assert!(p.exists(), "{} does not exist: run `cargo xtask setup` (or set F1_MODEL_GGUF)", p.display());
    p
}

fn smollm2() -> LoadedModel {
    let path = model_path();
    load_model(path.to_str().expect("utf8 path"), &ModelOptions::cpu(), None).expect("load SmolLM2")
}

fn remote(url: &str) -> RemoteBackend {
    RemoteBackend::new(RemoteConfig { endpoint: format!("{url}/v1"), timeout_secs: 120.0, max_retries: 1, backoff_secs: 0.05, ..Default::default() }).expect("remote backend")
}

fn requests() -> Vec<LlRequest> {
    let ask = |q: &str, options: &[&str]| LlRequest { context: format!("Question: {q}\nAnswer:"), continuations: options.iter().map(|o| o.to_string()).collect() };
    vec![
        ask("Which team does Lewis Hamilton drive for in 2020?", &[" Mercedes", " Ferrari", " McLaren", " Williams"]),
        ask("Which country hosts the Monaco Grand Prix?", &[" Monaco", " France", " Italy", " Spain"]),
        ask("How many points does a race win score?", &[" 25", " 18", " 10", " 1"]),
        // A trailing space in the context moves to the continuation, as in lm-evaluation-harness.
        LlRequest { context: "The colour of the flag that ends a race is ".into(), continuations: vec!["chequered".into(), "red".into(), "blue and white".into()] },
    ]
}

#[test]
#[ignore = "needs the real model (cargo xtask test runs it)"]
fn served_model_matches_local_backend_and_speaks_openai() {
    let server = serve::spawn(smollm2(), "f1-smollm2".into(), "127.0.0.1:0".parse().expect("addr")).expect("start the server");
    let url = server.url();
    eprintln!("serving on {url}");
    let mut local = LocalBackend::new(smollm2(), "local");
    let mut remote = remote(&url);

    // (1) Log-likelihoods through /v1/completions (echo + logprobs) equal the local ones.
    let reqs = requests();
    let got = remote.loglikelihood(&reqs).expect("remote loglikelihood");
    let want = local.loglikelihood(&reqs).expect("local loglikelihood");
    for ((req, g), w) in reqs.iter().zip(&got).zip(&want) {
        for ((cont, g), w) in req.continuations.iter().zip(g).zip(w) {
            eprintln!("{:?} + {cont:?}: remote {:.5} ({} tok, greedy {}) local {:.5} ({} tok, greedy {})", req.context, g.logprob, g.n_tokens, g.is_greedy, w.logprob, w.n_tokens, w.is_greedy);
            assert!((g.logprob - w.logprob).abs() < 1e-3, "{cont:?}: remote {} vs local {}", g.logprob, w.logprob);
            assert_eq!((g.is_greedy, g.n_tokens, g.greedy_tokens), (w.is_greedy, w.n_tokens, w.greedy_tokens), "{cont:?}");
        }
    }

    // (2) Streamed greedy chat equals the local greedy reply, with sane timings.
    let conv = vec![vec![ChatMessage::user("Who won the 2021 Formula One World Championship?")]];
    let g = remote.chat(&conv, 16, 1).expect("remote chat").remove(0);
    let w = local.chat(&conv, 16, 1).expect("local chat").remove(0);
    eprintln!("chat: remote {:?} ({} ms to first token, {} ms) local {:?}", g.text, g.ttft_ms, g.total_ms, w.text);
    assert_eq!(g.text, w.text);
    assert_eq!((g.prompt_tokens, g.completion_tokens, g.finish_reason.as_str()), (w.prompt_tokens, w.completion_tokens, w.finish_reason.as_str()));
    assert!(g.ttft_ms > 0.0 && g.ttft_ms <= g.total_ms, "ttft {} total {}", g.ttft_ms, g.total_ms);

    let http = reqwest::blocking::Client::new();
    check_openai_shapes(&http, &url, &w.text);
    check_errors(&http, &url);
    server.shutdown().expect("shut down");
}

fn post(http: &reqwest::blocking::Client, url: &str, body: &str) -> (u16, Value) {
    let r = http.post(url).header("content-type", "application/json").body(body.to_string()).send().expect("request");
    let status = r.status().as_u16();
    let text = r.text().expect("body");
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {text}")))
}

fn get(http: &reqwest::blocking::Client, url: &str) -> (u16, String) {
    let r = http.get(url).send().expect("request");
    (r.status().as_u16(), r.text().expect("body"))
}

/// (3) Raw OpenAI shapes: models, health, a non-streamed chat completion, a legacy completion.
fn check_openai_shapes(http: &reqwest::blocking::Client, url: &str, greedy_reply: &str) {
    let (status, models) = get(http, &format!("{url}/v1/models"));
    assert_eq!(status, 200);
    let models: Value = serde_json::from_str(&models).expect("models JSON");
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "f1-smollm2");
    assert_eq!(models["data"][0]["object"], "model");

    let (status, health) = get(http, &format!("{url}/health"));
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&health).expect("health JSON"), json!({ "status": "ok", "model": "f1-smollm2" }));
    let (status, page) = get(http, url);
    assert_eq!(status, 200);
    assert!(page.contains("/v1/chat/completions") && !page.contains("http://") && !page.contains("https://"), "the page is self-contained");

    let body = json!({ "model": "f1-smollm2", "messages": [{ "role": "user", "content": "Who won the 2021 Formula One World Championship?" }], "max_tokens": 16, "temperature": 0 });
    let (status, c) = post(http, &format!("{url}/v1/chat/completions"), &body.to_string());
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["object"], "chat.completion");
    assert!(c["id"].as_str().is_some_and(|id| id.starts_with("chatcmpl-")));
    assert_eq!(c["model"], "f1-smollm2");
    assert_eq!(c["choices"][0]["index"], 0);
    assert_eq!(c["choices"][0]["message"]["role"], "assistant");
    assert_eq!(c["choices"][0]["message"]["content"], greedy_reply, "non-streamed greedy reply equals the streamed one");
    assert!(matches!(c["choices"][0]["finish_reason"].as_str(), Some("stop" | "length")));
    let u = &c["usage"];
    assert_eq!(u["total_tokens"].as_u64(), Some(u["prompt_tokens"].as_u64().expect("prompt_tokens") + u["completion_tokens"].as_u64().expect("completion_tokens")));

    // Legacy completion: echoed prompt with its tokens, then greedy text with logprobs too.
    let prompt = "Question: Which team does Lewis Hamilton drive for in 2020?\nAnswer:";
    let body = json!({ "model": "f1-smollm2", "prompt": prompt, "max_tokens": 4, "temperature": 0, "echo": true, "logprobs": 2 });
    let (status, c) = post(http, &format!("{url}/v1/completions"), &body.to_string());
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["object"], "text_completion");
    let text = c["choices"][0]["text"].as_str().expect("text");
    assert!(text.starts_with(prompt), "echo returns the prompt: {text:?}");
    let lp = &c["choices"][0]["logprobs"];
    let tokens: Vec<&str> = lp["tokens"].as_array().expect("tokens").iter().map(|t| t.as_str().expect("token")).collect();
    let offsets: Vec<usize> = lp["text_offset"].as_array().expect("offsets").iter().map(|o| o.as_u64().expect("offset") as usize).collect();
    assert_eq!(tokens.concat(), text, "tokens spell the text");
    let mut at = 0;
    for (t, &o) in tokens.iter().zip(&offsets) {
        assert_eq!(o, at, "offset of {t:?}");
        at += t.chars().count();
    }
    assert!(lp["token_logprobs"][0].is_null() && lp["top_logprobs"][0].is_null());
    assert_eq!(lp["token_logprobs"].as_array().map(Vec::len), Some(tokens.len()));
    let n_prompt = c["usage"]["prompt_tokens"].as_u64().expect("prompt_tokens") as usize;
    // A stop token is counted in usage but, like OpenAI's, not returned as text or token.
    let produced = c["usage"]["completion_tokens"].as_u64().expect("completion_tokens") as usize;
    assert!(tokens.len() > n_prompt && tokens.len() <= n_prompt + produced, "{} tokens for {n_prompt} + {produced}", tokens.len());
    assert!(offsets.contains(&prompt.chars().count()), "a token starts where the completion starts");
    // Greedy generation: every generated token is the argmax of its position.
    for i in n_prompt..tokens.len() {
        let best = lp["top_logprobs"][i].as_object().expect("top").values().filter_map(Value::as_f64).fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(lp["token_logprobs"][i].as_f64(), Some(best), "generated token {i} is greedy");
    }
}

/// (4) Errors are OpenAI error objects with the right status.
fn check_errors(http: &reqwest::blocking::Client, url: &str) {
    let chat = format!("{url}/v1/chat/completions");
    let completions = format!("{url}/v1/completions");
    let is_error = |status: u16, body: &Value, want: u16| {
        assert_eq!(status, want, "{body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        assert!(body["error"]["type"].is_string(), "{body}");
    };
    let (s, b) = post(http, &chat, "{\"messages\": [");
    is_error(s, &b, 400);
    let (s, b) = post(http, &chat, r#"{"messages": []}"#);
    is_error(s, &b, 400);
    let (s, b) = post(http, &chat, r#"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": -1}"#);
    is_error(s, &b, 400);
    let (s, b) = post(http, &completions, r#"{"prompt": "hi", "logprobs": 9}"#);
    is_error(s, &b, 400);
    let (s, b) = post(http, &completions, r#"{"prompt": "hi", "temperature": -1}"#);
    is_error(s, &b, 400);
    let long = " pit stop".repeat(9000);
    let (s, b) = post(http, &completions, &json!({ "prompt": long, "max_tokens": 0, "echo": true, "logprobs": 1 }).to_string());
    is_error(s, &b, 400);
    assert_eq!(b["error"]["code"], "context_length_exceeded");
    let (s, b) = post(http, &format!("{url}/v1/nothing"), "{}");
    is_error(s, &b, 404);
}

/// (5) Nothing listening: the backend gives up after its retries with an error naming the URL.
#[test]
fn unreachable_endpoint_fails_with_the_url_after_retries() {
    // A port that was free a moment ago and has nobody listening now.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut backend = RemoteBackend::new(RemoteConfig { endpoint: format!("http://127.0.0.1:{port}/v1"), timeout_secs: 5.0, max_retries: 2, backoff_secs: 0.01, ..Default::default() }).expect("backend");
    let req = [LlRequest { context: "a".into(), continuations: vec![" b".into()] }];
    match backend.loglikelihood(&req) {
        Err(Error::Remote { url, reason }) => {
            assert_eq!(url, format!("http://127.0.0.1:{port}/v1/completions"));
            assert!(reason.contains("3 attempts"), "{reason}");
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
    let conv = [vec![ChatMessage::user("hi")]];
    let err = backend.chat(&conv, 4, 1).expect_err("nothing listens");
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}/v1/chat/completions")), "{err}");
}
