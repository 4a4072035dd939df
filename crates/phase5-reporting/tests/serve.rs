//! The demo server against the evaluation harness: the real SmolLM2 served in-process on an
//! ephemeral port must give `RemoteBackend` the same log-likelihoods and greedy chat replies as
//! `LocalBackend` gives on a second copy of the model, and speak the OpenAI shapes and errors
//! raw clients expect; several variants (the base and a LoRA adapter written here) are served
//! side by side and picked by `model`; the API key, body and token limits, timeouts and the
//! bounded queue answer with the right status, and a flooded server stays healthy. The model
//! tests are `#[ignore]`d (they need `cargo xtask setup`'s model); `cargo xtask test` runs them.
//! The unreachable-endpoint test needs no model and always runs.

use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::Duration;

use f1_core::lora::{self, LoraConfig, TargetModules};
use f1_core::{load_model, ChatMessage, LoadedModel, ModelOptions};
use phase4_evaluation::remote::{RemoteBackend, RemoteConfig};
use phase4_evaluation::{Backend, Error, LlRequest, LocalBackend, Variant, VariantKind};
use phase5_reporting::serve::{self, ServeOptions, ServedModel, ServerHandle};
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
    remote_model(url, "f1-smollm2")
}

fn remote_model(url: &str, model: &str) -> RemoteBackend {
    RemoteBackend::new(RemoteConfig { endpoint: format!("{url}/v1"), model: model.into(), timeout_secs: 120.0, max_retries: 1, backoff_secs: 0.05, ..Default::default() }).expect("remote backend")
}

/// Serve the base model alone as `f1-smollm2` with `options`.
fn serve_base(options: ServeOptions) -> ServerHandle {
    let models = vec![ServedModel { name: "f1-smollm2".into(), description: "base".into(), loaded: smollm2() }];
    serve::spawn(models, options, "127.0.0.1:0".parse().expect("addr")).expect("start the server")
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
    let server = serve_base(ServeOptions::default());
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
    assert_eq!(serde_json::from_str::<Value>(&health).expect("health JSON"), json!({ "status": "ok", "model": "f1-smollm2", "models": ["f1-smollm2"], "auth_required": false }));
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
    assert!(b["error"]["message"].as_str().is_some_and(|m| m.contains("invalid JSON") && m.contains("line 1")), "malformed JSON names the reason: {b}");
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

/// A LoRA adapter on SmolLM2's attention with random (non-zero) `B`, so that it changes the
/// model's outputs, saved in PEFT's format into `dir`.
fn write_adapter(dir: &Path) {
    tch::manual_seed(7);
    let mut base = smollm2();
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let cfg = LoraConfig { r: 4, lora_alpha: 8.0, lora_dropout: 0.0, target_modules: TargetModules::List(vec!["q_proj".into(), "v_proj".into()]), use_rslora: false, bias: "none".into() };
    lora::attach(&mut base.model, &vs, &cfg).expect("attach");
    tch::no_grad(|| {
        for (name, mut t) in vs.variables() {
            if name.contains("lora_B") {
                let noise = tch::Tensor::randn_like(&t) * 0.1;
                t.copy_(&noise);
            }
        }
    });
    lora::save(dir, &vs, &cfg, "SmolLM2-135M-Instruct").expect("save the adapter");
}

fn load_variant(name: &str, kind: VariantKind, path: Option<&Path>) -> ServedModel {
    let variant = Variant { name: name.into(), kind, path: path.map(Path::to_path_buf) };
    let base = model_path();
    let (loaded, description) = variant.load(base.to_str().expect("utf8 path"), &ModelOptions::cpu()).expect("load the variant");
    ServedModel { name: name.into(), description, loaded }
}

fn post_auth(http: &reqwest::blocking::Client, url: &str, key: Option<&str>, body: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let mut r = http.post(url).header("content-type", "application/json").body(body.to_string());
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    let r = r.send().expect("request");
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.text().expect("body"))
}

fn error_of(body: &str) -> Value {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "an OpenAI error object: {v}");
    v["error"].clone()
}

/// (6) Two variants side by side: `/v1/models` lists both, `model` picks one (the adapter's
/// scores equal the in-process adapter's and differ from the base's), no `model` gets the first,
/// an unknown one a 404 naming the served ones.
#[test]
#[ignore = "needs the real model (cargo xtask test runs it)"]
fn variants_are_served_side_by_side_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let adapter = dir.path().join("adapter");
    write_adapter(&adapter);
    let models = vec![load_variant("base", VariantKind::Base, None), load_variant("f1-lora", VariantKind::Lora, Some(&adapter))];
    let server = serve::spawn(models, ServeOptions::default(), "127.0.0.1:0".parse().expect("addr")).expect("start the server");
    let url = server.url();
    let http = reqwest::blocking::Client::new();

    let (status, models) = get(&http, &format!("{url}/v1/models"));
    assert_eq!(status, 200);
    let models: Value = serde_json::from_str(&models).expect("models JSON");
    let ids: Vec<&str> = models["data"].as_array().expect("data").iter().map(|m| m["id"].as_str().expect("id")).collect();
    assert_eq!(ids, ["base", "f1-lora"]);
    assert!(models["data"][1]["description"].as_str().is_some_and(|d| d.contains("LoRA")), "{models}");

    let reqs = &requests()[..2];
    let served_lora = remote_model(&url, "f1-lora").loglikelihood(reqs).expect("remote lora");
    let served_base = remote_model(&url, "base").loglikelihood(reqs).expect("remote base");
    let local_lora = LocalBackend::new(load_variant("local-lora", VariantKind::Lora, Some(&adapter)).loaded, "local").loglikelihood(reqs).expect("local lora");
    let mut largest_gap = 0f64;
    for ((l, b), w) in served_lora.iter().flatten().zip(served_base.iter().flatten()).zip(local_lora.iter().flatten()) {
        assert!((l.logprob - w.logprob).abs() < 1e-3, "served adapter {} vs in-process adapter {}", l.logprob, w.logprob);
        largest_gap = largest_gap.max((l.logprob - b.logprob).abs());
    }
    eprintln!("largest |lora - base| log-likelihood gap: {largest_gap:.4}");
    assert!(largest_gap > 1e-2, "the adapter must change the scores, so `model` really picked it");

    // Without `model`, the first variant answers and says so.
    let body = json!({ "prompt": "The Monaco Grand Prix", "max_tokens": 2, "temperature": 0 });
    let (status, c) = post(&http, &format!("{url}/v1/completions"), &body.to_string());
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["model"], "base");
    let body = json!({ "model": "f1-lora", "messages": [{ "role": "user", "content": "Hi" }], "max_tokens": 2, "temperature": 0 });
    let (status, c) = post(&http, &format!("{url}/v1/chat/completions"), &body.to_string());
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["model"], "f1-lora");

    let body = json!({ "model": "gpt-4", "messages": [{ "role": "user", "content": "Hi" }] });
    let (status, c) = post(&http, &format!("{url}/v1/chat/completions"), &body.to_string());
    assert_eq!(status, 404, "{c}");
    assert_eq!((c["error"]["code"].as_str(), c["error"]["param"].as_str()), (Some("model_not_found"), Some("model")));
    let message = c["error"]["message"].as_str().expect("message");
    assert!(message.contains("gpt-4") && message.contains("base") && message.contains("f1-lora"), "{message}");
    server.shutdown().expect("shut down");
}

/// (7) API key, body size and token limits, malformed JSON: each with its status and an
/// OpenAI error object; the page and /health stay open.
#[test]
#[ignore = "needs the real model (cargo xtask test runs it)"]
fn api_key_and_request_limits_are_enforced() {
    let key = "test-key-0123";
    let allowed = "http://allowed.example";
    let server = serve_base(ServeOptions { api_key: Some(key.into()), max_body_bytes: 4096, max_total_tokens: 64, allowed_origins: vec![allowed.into()], ..ServeOptions::default() });
    let url = server.url();
    let http = reqwest::blocking::Client::new();

    let (status, health) = get(&http, &format!("{url}/health"));
    assert_eq!(status, 200, "/health needs no key");
    assert_eq!(serde_json::from_str::<Value>(&health).expect("JSON")["auth_required"], true);
    let (status, page) = get(&http, &url);
    assert_eq!(status, 200, "the chat page needs no key");
    assert!(page.contains("Authorization"), "the page sends the key it is given");

    let r = http.get(format!("{url}/v1/models")).send().expect("request");
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
    assert_eq!(error_of(&r.text().expect("body"))["code"], "invalid_api_key");
    let r = http.get(format!("{url}/v1/models")).bearer_auth("wrong-key-0123").send().expect("request");
    assert_eq!(r.status().as_u16(), 401, "a wrong key of the right length");
    let r = http.get(format!("{url}/v1/models")).bearer_auth(key).send().expect("request");
    assert_eq!(r.status().as_u16(), 200);

    let chat = format!("{url}/v1/chat/completions");
    let ok = json!({ "messages": [{ "role": "user", "content": "Hi" }], "max_tokens": 2, "temperature": 0 }).to_string();
    let (status, _, body) = post_auth(&http, &chat, None, &ok);
    assert_eq!(status, 401, "{body}");
    let (status, _, body) = post_auth(&http, &chat, Some(key), &ok);
    assert_eq!(status, 200, "{body}");

    let (status, _, body) = post_auth(&http, &chat, Some(key), "{\"messages\": [{\"role\": ");
    assert_eq!(status, 400, "{body}");
    assert!(error_of(&body)["message"].as_str().is_some_and(|m| m.contains("invalid JSON")), "{body}");

    let big = json!({ "messages": [{ "role": "user", "content": "pit stop ".repeat(1000) }], "max_tokens": 1 }).to_string();
    let (status, _, body) = post_auth(&http, &chat, Some(key), &big);
    assert_eq!(status, 413, "{body}");
    let e = error_of(&body);
    assert!(e["code"] == "request_too_large" && e["message"].as_str().is_some_and(|m| m.contains("4096")), "{e}");

    let greedy = json!({ "messages": [{ "role": "user", "content": "Hi" }], "max_tokens": 100 }).to_string();
    let (status, _, body) = post_auth(&http, &chat, Some(key), &greedy);
    assert_eq!(status, 400, "{body}");
    let e = error_of(&body);
    assert_eq!(e["code"], "token_limit_exceeded");
    assert!(e["message"].as_str().is_some_and(|m| m.contains("max_tokens is 100") && m.contains("64 tokens")), "{e}");
    let completions = format!("{url}/v1/completions");
    let long = json!({ "prompt": "pit stop ".repeat(60), "max_tokens": 0, "echo": true, "logprobs": 0 }).to_string();
    let (status, _, body) = post_auth(&http, &completions, Some(key), &long);
    assert_eq!((status, error_of(&body)["code"].as_str()), (400, Some("token_limit_exceeded")), "{body}");
    // Too many prompts or stop strings: 400 with the numbers.
    let many = json!({ "prompt": vec![vec![1u32]; 65], "max_tokens": 0 }).to_string();
    let (status, _, body) = post_auth(&http, &completions, Some(key), &many);
    assert!(status == 400 && error_of(&body)["message"].as_str().is_some_and(|m| m.contains("65 prompts")), "{body}");
    let stops = json!({ "messages": [{ "role": "user", "content": "Hi" }], "max_tokens": 1, "stop": vec!["x"; 17] }).to_string();
    let (status, _, body) = post_auth(&http, &chat, Some(key), &stops);
    assert!(status == 400 && error_of(&body)["param"] == "stop", "{body}");

    // A body not declared JSON (what a web page can post without a preflight) is refused.
    let r = http.post(&chat).bearer_auth(key).header("content-type", "text/plain").body(ok.clone()).send().expect("request");
    assert_eq!(r.status().as_u16(), 415);
    assert_eq!(error_of(&r.text().expect("body"))["code"], "unsupported_media_type");
    let r = http.post(&chat).bearer_auth(key).body(ok.clone()).send().expect("request");
    assert_eq!(r.status().as_u16(), 415, "no Content-Type at all");
    // Another web page's request is refused; the server's own page, and an allowed origin with
    // its preflight, pass.
    let from = |origin: &str| http.post(&chat).bearer_auth(key).header("content-type", "application/json").header("origin", origin).body(ok.clone()).send().expect("request");
    let r = from("http://evil.example");
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(error_of(&r.text().expect("body"))["code"], "origin_not_allowed");
    assert_eq!(from(&url).status().as_u16(), 200, "the server's own origin");
    let r = from(allowed);
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()), Some(allowed));
    let r = http.request(reqwest::Method::OPTIONS, &chat).header("origin", allowed).header("access-control-request-method", "POST").send().expect("preflight");
    assert_eq!(r.status().as_u16(), 204, "the preflight needs no key");
    assert!(r.headers().get("access-control-allow-headers").and_then(|v| v.to_str().ok()).is_some_and(|h| h.contains("authorization")));
    server.shutdown().expect("shut down");
}

/// (8) The time limit: a stream past its deadline ends with an error event, a request queued
/// behind it gets 504, and the server answers normally once its worker is free again.
#[test]
#[ignore = "needs the real model (cargo xtask test runs it)"]
fn requests_past_their_time_limit_end_with_timeout_errors() {
    let server = serve_base(ServeOptions { timeout: Duration::from_secs(1), ..ServeOptions::default() });
    let url = server.url();
    let chat = format!("{url}/v1/chat/completions");
    let http = reqwest::blocking::Client::new();
    // 64 tokens take several seconds on a CPU: well past the 1 s limit.
    let long = |stream: bool| json!({ "messages": [{ "role": "user", "content": "Tell me about Monaco." }], "max_tokens": 64, "temperature": 0, "stream": stream }).to_string();
    let (status, _, body) = post_auth(&http, &chat, None, &long(true));
    assert_eq!(status, 200, "the stream starts: {body}");
    let data: Vec<&str> = body.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{body}");
    let last: Value = serde_json::from_str(data[data.len() - 2]).expect("JSON event");
    assert_eq!(last["error"]["code"], "timeout", "the stream ends with a timeout error: {body}");
    // The stream's generation stopped at its deadline; this one runs past its own and gets 504.
    let (status, _, body) = post_auth(&http, &chat, None, &long(false));
    assert_eq!(status, 504, "{body}");
    assert_eq!(error_of(&body)["code"], "timeout");
    let short = json!({ "messages": [{ "role": "user", "content": "Hi" }], "max_tokens": 1, "temperature": 0 }).to_string();
    let recovered = (0..60).any(|_| {
        std::thread::sleep(Duration::from_millis(250));
        post_auth(&http, &chat, None, &short).0 == 200
    });
    assert!(recovered, "the server answers again once its worker is free");
    server.shutdown().expect("shut down");
}

/// (9) A flood on one worker with a queue of one: the excess gets 429 with `Retry-After`, every
/// admitted request succeeds, and the server is healthy afterwards.
#[test]
#[ignore = "needs the real model (cargo xtask test runs it)"]
fn a_flood_gets_429s_and_leaves_the_server_healthy() {
    let server = serve_base(ServeOptions { workers: 1, queue: 1, ..ServeOptions::default() });
    let url = server.url();
    let chat = format!("{url}/v1/chat/completions");
    let clients = 6;
    let start = Barrier::new(clients);
    let body = json!({ "messages": [{ "role": "user", "content": "Name a Formula One team." }], "max_tokens": 12, "temperature": 0 }).to_string();
    let outcomes: Vec<(u16, Option<String>, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| {
                    let http = reqwest::blocking::Client::new();
                    start.wait();
                    let (status, headers, text) = post_auth(&http, &chat, None, &body);
                    (status, headers.get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string), text)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client thread")).collect()
    });
    let ok = outcomes.iter().filter(|o| o.0 == 200).count();
    let busy: Vec<_> = outcomes.iter().filter(|o| o.0 == 429).collect();
    eprintln!("flood of {clients}: {ok} ok, {} rejected with 429", busy.len());
    assert_eq!(ok + busy.len(), clients, "only 200 and 429: {outcomes:?}");
    assert!(!busy.is_empty() && ok >= 1, "one worker and a queue of one cannot take {clients} at once: {outcomes:?}");
    for (_, retry_after, text) in &busy {
        assert_eq!(retry_after.as_deref(), Some("1"), "429 says when to retry");
        assert_eq!(error_of(text)["code"], "server_busy");
    }
    let http = reqwest::blocking::Client::new();
    assert_eq!(get(&http, &format!("{url}/health")).0, 200);
    let (status, _, text) = post_auth(&http, &chat, None, &body);
    assert_eq!(status, 200, "the server still answers: {text}");
    server.shutdown().expect("shut down");
}

#[test]
fn serve_refuses_a_timeout_no_duration_holds_before_loading_anything() {
    // `--timeout-secs 1e20` panicked in `Duration::from_secs_f64` at start.
    for bad in ["1e20", "0", "-1", "NaN", "inf"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_phase5-reporting"))
            .args(["serve", "--model", "/nonexistent/model.gguf", &format!("--timeout-secs={bad}")])
            .output()
            .expect("run phase5-reporting");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad}: {stderr}");
        assert!(stderr.contains("--timeout-secs must be") && !stderr.contains("panicked"), "{bad}: {stderr}");
    }
}

/// (9) A client that disconnects mid-stream frees its worker within a token or two: a request
/// behind it is answered long before the abandoned generation would have ended.
#[test]
#[ignore = "needs the real model (cargo xtask test runs it)"]
fn a_client_that_disconnects_mid_stream_frees_its_worker() {
    let server = serve_base(ServeOptions { workers: 1, queue: 2, ..ServeOptions::default() });
    let url = server.url();
    let chat = format!("{url}/v1/chat/completions");
    let http = reqwest::blocking::Client::new();
    let counting = |stream: bool| json!({ "messages": [{ "role": "user", "content": "Count from 1 to 300, separated by commas." }], "max_tokens": 240, "temperature": 0, "stream": stream }).to_string();
    // How long the whole generation takes when nobody leaves.
    let started = std::time::Instant::now();
    let (status, _, body) = post_auth(&http, &chat, None, &counting(false));
    let whole = started.elapsed();
    assert_eq!(status, 200, "{body}");
    let full: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(full["usage"]["completion_tokens"], 240, "the reply must run to max_tokens for this test to mean anything: {full}");
    // The same request streamed, read for a few chunks, then dropped.
    let mut r = http.post(&chat).header("content-type", "application/json").body(counting(true)).send().expect("stream");
    let mut buf = [0u8; 256];
    let mut read = 0;
    while read < 1024 {
        let n = std::io::Read::read(&mut r, &mut buf).expect("read the stream");
        assert!(n > 0, "the stream ended early");
        read += n;
    }
    drop(r);
    let left = std::time::Instant::now();
    let short = json!({ "messages": [{ "role": "user", "content": "Hi" }], "max_tokens": 1, "temperature": 0 }).to_string();
    let (status, _, body) = post_auth(&http, &chat, None, &short);
    let waited = left.elapsed();
    assert_eq!(status, 200, "{body}");
    eprintln!("whole generation {whole:?}; a request after the disconnect waited {waited:?}");
    assert!(waited < whole / 3, "the next request waited {waited:?}, the abandoned generation takes {whole:?}");
    server.shutdown().expect("shut down");
}
