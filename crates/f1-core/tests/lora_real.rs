//! PEFT interoperability on the real SmolLM2 (gated: `cargo xtask test` sets `F1_MODEL_GGUF`
//! and `F1_PYTHON`, a venv with transformers and peft): an adapter we save loads in Python PEFT
//! on the same base and gives the same logits, and an adapter PEFT saves loads here and gives
//! PEFT's logits.

use std::path::PathBuf;
use std::process::Command;

use f1_core::lora::{self, LoraConfig, TargetModules};
use f1_core::{load_model, ModelOptions};
use tch::{nn, Device, Kind, Tensor};

fn env_path(var: &str) -> PathBuf {
    let p = PathBuf::from(std::env::var_os(var).unwrap_or_else(|| panic!("{var} is not set: run with `cargo xtask test`")));
    assert!(p.exists(), "{var}={} does not exist: run `cargo xtask setup`", p.display());
    p
}

fn read_f32(path: &std::path::Path, rows: i64) -> Tensor {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Tensor::from_slice(&v).view([rows, -1])
}

#[test]
#[ignore = "needs the real model and the venv with peft: run `cargo xtask test`"]
fn adapters_round_trip_between_us_and_peft() {
    let gguf = env_path("F1_MODEL_GGUF");
    let python = env_path("F1_PYTHON");
    let mut m = load_model(gguf.to_str().expect("utf8"), &ModelOptions::cpu(), None).expect("load");
    let ids: Vec<u32> = m.tokenizer.encode("Ayrton Senna won the 1988 championship with McLaren.", false).expect("encode");
    let input = Tensor::from_slice(&ids.iter().map(|&t| t as i64).collect::<Vec<_>>()).unsqueeze(0);
    let rows = ids.len() as i64;

    // Ours: r=8 on q_proj and v_proj with non-zero B.
    let cfg = LoraConfig { r: 8, lora_alpha: 16.0, lora_dropout: 0.0, target_modules: TargetModules::List(vec!["q_proj".into(), "v_proj".into()]), use_rslora: false, bias: "none".into() };
    let lora_vs = nn::VarStore::new(Device::Cpu);
    lora::attach(&mut m.model, &lora_vs, &cfg).expect("attach");
    tch::manual_seed(1);
    tch::no_grad(|| {
        for (name, mut t) in lora_vs.variables() {
            if name.contains("lora_B") {
                t.copy_(&(Tensor::randn(t.size(), (Kind::Float, Device::Cpu)) * 0.02));
            }
        }
    });
    let ours = tch::no_grad(|| m.model.forward(&input, None, None)).squeeze_dim(0);
    let dir = tempfile::tempdir().expect("tempdir");
    let our_dir = dir.path().join("ours");
    lora::save(&our_dir, &lora_vs, &cfg, &gguf.display().to_string()).expect("save");
    let request = dir.path().join("request.json");
    std::fs::write(&request, serde_json::json!({ "ids": ids }).to_string()).expect("request");
    let out = dir.path().join("logits");
    let peft_dir = dir.path().join("peft");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/peft_roundtrip.py");
    let status = Command::new(&python).arg(&script).arg(&gguf).arg(&our_dir).arg(&request).arg(&out).arg(&peft_dir).env("HF_HUB_OFFLINE", "1").status().expect("python");
    assert!(status.success(), "{} failed", script.display());

    let theirs = read_f32(&out.with_extension("ours.f32"), rows);
    let d = (&ours - &theirs).abs().max().double_value(&[]);
    eprintln!("our adapter in PEFT: max abs logit diff {d:.2e}");
    assert!(d < 1e-3, "our adapter gives different logits in PEFT: {d}");

    // PEFT's adapter (r=4 on k_proj and down_proj) loaded here.
    let mut base = load_model(gguf.to_str().expect("utf8"), &ModelOptions::cpu(), None).expect("load");
    let (_vs, peft_cfg) = lora::load(&peft_dir, &mut base.model).expect("load the PEFT adapter");
    assert_eq!((peft_cfg.r, peft_cfg.lora_alpha), (4, 16.0));
    let ours_on_peft = tch::no_grad(|| base.model.forward(&input, None, None)).squeeze_dim(0);
    let want = read_f32(&out.with_extension("peft.f32"), rows);
    let d = (&ours_on_peft - &want).abs().max().double_value(&[]);
    eprintln!("PEFT adapter here: max abs logit diff {d:.2e}");
    assert!(d < 1e-3, "PEFT's adapter gives different logits here: {d}");
}
