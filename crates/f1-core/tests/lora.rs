//! LoRA and QLoRA invariants on tiny random models: a fresh adapter changes nothing; merged
//! equals unmerged; save/load is the identity in PEFT's layout; QLoRA equals LoRA on the
//! dequantized base; a merged export loads back as a plain model with the same logits; and a
//! few AdamW steps on the adapters lower the loss while the base stays frozen.

mod common;

use common::*;
use f1_core::gguf::GgmlType;
use f1_core::lora::{self, LoraConfig, TargetModules};
use f1_core::optim::{AdamW, AdamWConfig};
use f1_core::{load_model, ModelOptions};
use tch::{nn, Device, Kind, Tensor};

fn cfg(r: usize, targets: &[&str]) -> LoraConfig {
    LoraConfig { r, lora_alpha: 2.0 * r as f64, lora_dropout: 0.0, target_modules: TargetModules::List(targets.iter().map(|s| s.to_string()).collect()), use_rslora: false, bias: "none".into() }
}

fn input() -> Tensor {
    Tensor::from_slice(&[256i64, 12, 99, 7, 150, 3, 42]).view([1, 7])
}

/// Give every B a random value so adapters actually change the output.
fn randomize_b(lora_vs: &nn::VarStore) {
    tch::no_grad(|| {
        for (name, mut t) in lora_vs.variables() {
            if name.contains("lora_B") {
                t.copy_(&(Tensor::randn(t.size(), (Kind::Float, Device::Cpu)) * 0.05));
            }
        }
    });
}

fn logits(model: &f1_core::Llama) -> Tensor {
    tch::no_grad(|| model.forward(&input(), None, None))
}

#[test]
fn fresh_lora_gives_the_base_logits_exactly() {
    let c = tiny_config("llama");
    let (_vs, mut model) = random_model(&c, 1);
    let base = logits(&model);
    let lora_vs = nn::VarStore::new(Device::Cpu);
    let adapted = lora::attach(&mut model, &lora_vs, &LoraConfig { target_modules: TargetModules::Shorthand("all-linear".into()), ..cfg(4, &[]) }).expect("attach");
    assert_eq!(adapted.len(), 2 * 7);
    assert!(logits(&model).equal(&base));
    // PEFT's names and shapes: A (r, in) Kaiming-uniform within 1/sqrt(in), B (out, r) zeros.
    let vars = lora_vs.variables();
    let a = &vars["model.layers.0.self_attn.q_proj.lora_A.weight"];
    assert_eq!(a.size(), vec![4, 64]);
    assert!(a.abs().max().double_value(&[]) <= 1.0 / 8.0 && a.abs().max().double_value(&[]) > 0.05);
    assert_eq!(vars["model.layers.1.mlp.down_proj.lora_B.weight"].size(), vec![64, 4]);
    assert!(vars["model.layers.1.mlp.down_proj.lora_B.weight"].abs().max().double_value(&[]) == 0.0);
}

#[test]
fn merged_equals_unmerged_and_unmerge_restores_the_base() {
    let c = tiny_config("llama");
    let (vs, mut model) = random_model(&c, 2);
    let before: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(n, t)| (n, t.copy())).collect();
    let lora_vs = nn::VarStore::new(Device::Cpu);
    lora::attach(&mut model, &lora_vs, &cfg(8, &["q_proj", "v_proj", "down_proj"])).expect("attach");
    randomize_b(&lora_vs);
    let unmerged = logits(&model);
    lora::merge(&mut model).expect("merge");
    let merged = logits(&model);
    assert!(max_abs_diff(&unmerged, &merged) < 1e-4, "merged vs unmerged {}", max_abs_diff(&unmerged, &merged));
    assert!(max_abs_diff(&unmerged, &logits(&random_model(&c, 2).1)) > 1e-3, "the adapter must matter");
    lora::unmerge(&mut model);
    assert!(max_abs_diff(&unmerged, &logits(&model)) < 1e-4);
    let vars = vs.variables();
    for (n, t) in before {
        assert!(max_abs_diff(&t, &vars[&n]) < 1e-6, "{n} not restored");
    }
}

#[test]
fn peft_layout_save_then_load_is_the_identity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = tiny_config("llama");
    let (_vs, mut model) = random_model(&c, 3);
    let lora_vs = nn::VarStore::new(Device::Cpu);
    let config = LoraConfig { use_rslora: true, lora_dropout: 0.05, ..cfg(4, &["q_proj", "k_proj", "v_proj", "o_proj"]) };
    lora::attach(&mut model, &lora_vs, &config).expect("attach");
    randomize_b(&lora_vs);
    let want = logits(&model);
    lora::save(dir.path(), &lora_vs, &config, "tiny-base").expect("save");
    // The files are PEFT's: keys under base_model.model., and the config PEFT reads.
    let st = Tensor::read_safetensors(dir.path().join("adapter_model.safetensors")).expect("read");
    assert!(st.iter().any(|(k, _)| k == "base_model.model.model.layers.1.self_attn.o_proj.lora_B.weight"));
    assert_eq!(st.len(), 2 * 4 * 2);
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("adapter_config.json")).expect("cfg")).expect("json");
    assert_eq!((json["peft_type"].as_str(), json["r"].as_u64(), json["use_rslora"].as_bool()), (Some("LORA"), Some(4), Some(true)));
    assert_eq!(json["base_model_name_or_path"], "tiny-base");
    let (_vs2, mut fresh) = random_model(&c, 3);
    let (_lvs, loaded_cfg) = lora::load(dir.path(), &mut fresh).expect("load");
    assert_eq!(loaded_cfg, config);
    let d = max_abs_diff(&logits(&fresh), &want);
    assert!(d == 0.0, "reloaded adapter differs by {d}");
    // rsLoRA scales by alpha / sqrt(r) = 8 / 2.
    assert_eq!(fresh.layers[0].self_attn.q_proj.lora.as_ref().map(|l| l.scale), Some(4.0));
    // An adapter for another rank does not load silently.
    let (_vs3, mut other) = random_model(&c, 3);
    let mut wrong = json.clone();
    wrong["r"] = 8.into();
    std::fs::write(dir.path().join("adapter_config.json"), wrong.to_string()).expect("write");
    let err = lora::load(dir.path(), &mut other).expect_err("rank mismatch").to_string();
    assert!(err.contains("adapter_model.safetensors") && err.contains("lora_A"), "{err}");
}

#[test]
fn qlora_equals_lora_on_the_dequantized_base_and_saves_memory() {
    let c = tiny_config("llama");
    let (_vs, mut q_model) = random_model(&c, 4);
    let (before, after) = lora::quantize_base(&mut q_model);
    // Per layer q, o (64x64), k, v (32x64), gate, up (128x64), down (64x128): 36,864 fp32 weights.
    assert_eq!(before, 2 * 36_864 * 4, "f32 bytes of the block projections");
    let ratio = after as f64 / before as f64;
    assert!((0.125..0.14).contains(&ratio), "NF4 takes {ratio} of fp32");
    // The same model with the dequantized weights written back in full precision.
    let (_vs2, mut deq_model) = random_model(&c, 4);
    let mut deq: Vec<Tensor> = q_model.linears_mut().into_iter().map(|(_, l)| l.base_weight(Kind::Float)).collect();
    for ((_, lin), w) in deq_model.linears_mut().into_iter().zip(deq.iter_mut()) {
        tch::no_grad(|| lin.weight.copy_(w));
    }
    let lvs_q = nn::VarStore::new(Device::Cpu);
    let lvs_d = nn::VarStore::new(Device::Cpu);
    tch::manual_seed(9);
    lora::attach(&mut q_model, &lvs_q, &cfg(4, &["q_proj", "up_proj"])).expect("attach");
    randomize_b(&lvs_q);
    lora::attach(&mut deq_model, &lvs_d, &cfg(4, &["q_proj", "up_proj"])).expect("attach");
    lvs_d.variables().iter().for_each(|(n, t)| tch::no_grad(|| t.shallow_clone().copy_(&lvs_q.variables()[n])));
    let d = max_abs_diff(&logits(&q_model), &logits(&deq_model));
    assert!(d < 1e-4, "QLoRA vs LoRA on dequantized base: {d}");
    // And NF4 is a real approximation of the original weights.
    let (_vs3, orig) = random_model(&c, 4);
    assert!(max_abs_diff(&logits(&orig), &logits(&deq_model)) > 1e-4);
}

#[test]
fn merged_export_loads_back_as_a_plain_model_with_the_same_logits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = tiny_config("llama");
    let (vs, _) = random_model(&c, 5);
    let gguf = dir.path().join("base.gguf");
    write_gguf(&gguf, &c, &vs, GgmlType::F32);
    let mut m = load_model(gguf.to_str().expect("utf8"), &ModelOptions::cpu(), None).expect("load");
    let lora_vs = nn::VarStore::new(Device::Cpu);
    lora::attach(&mut m.model, &lora_vs, &cfg(4, &["v_proj", "gate_proj"])).expect("attach");
    randomize_b(&lora_vs);
    let want = logits(&m.model);
    let out = dir.path().join("merged");
    lora::save_merged(&out, &mut m, Kind::Float).expect("export");
    let merged = load_model(out.to_str().expect("utf8"), &ModelOptions::cpu(), None).expect("load merged");
    assert!(max_abs_diff(&want, &logits(&merged.model)) < 1e-4);
    let cfg_json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).expect("config")).expect("json");
    assert_eq!(cfg_json["architectures"][0], "LlamaForCausalLM");
    assert_eq!(merged.chat_template.render(&[f1_core::ChatMessage::user("hi")], true).expect("render"), m.chat_template.render(&[f1_core::ChatMessage::user("hi")], true).expect("render"));
}

#[test]
fn adapters_train_while_the_base_stays_frozen() {
    let c = tiny_config("llama");
    let (mut vs, mut model) = random_model(&c, 6);
    vs.freeze();
    let base_before: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(n, t)| (n, t.copy())).collect();
    let lora_vs = nn::VarStore::new(Device::Cpu);
    lora::attach(&mut model, &lora_vs, &LoraConfig { target_modules: TargetModules::Shorthand("all-linear".into()), ..cfg(8, &[]) }).expect("attach");
    model.set_training(true);
    let mut opt = AdamW::new(lora_vs.variables(), AdamWConfig::default());
    let x = input();
    let targets = Tensor::from_slice(&[12i64, 99, 7, 150, 3, 42, 258]);
    let mut losses = vec![];
    for _ in 0..30 {
        let logits = model.forward(&x, None, None).squeeze_dim(0);
        let loss = logits.cross_entropy_for_logits(&targets);
        opt.zero_grad();
        loss.backward();
        opt.step(1e-2);
        losses.push(loss.double_value(&[]));
    }
    assert!(losses[29] < 0.5 * losses[0], "loss {:.3} -> {:.3}", losses[0], losses[29]);
    let vars = vs.variables();
    for (n, t) in base_before {
        assert!(t.equal(&vars[&n]), "{n} changed");
    }
}

#[test]
fn bad_lora_configs_are_rejected_with_the_reason() {
    let c = tiny_config("llama");
    let (_vs, mut model) = random_model(&c, 7);
    let lora_vs = nn::VarStore::new(Device::Cpu);
    let err = lora::attach(&mut model, &lora_vs, &cfg(4, &["c_attn"])).expect_err("no match").to_string();
    assert!(err.contains("c_attn") && err.contains("q_proj"), "{err}");
    let err = lora::attach(&mut model, &lora_vs, &cfg(0, &["q_proj"])).expect_err("r=0").to_string();
    assert!(err.contains("r must be"), "{err}");
    // A rank above a projection's smaller side (k_proj is 32 x 64 here) is refused before
    // anything is allocated; so is one no layer could have.
    let err = lora::attach(&mut model, &lora_vs, &cfg(33, &["k_proj"])).expect_err("r > dims").to_string();
    assert!(err.contains("k_proj") && err.contains("32 x 64") && err.contains("at most 32"), "{err}");
    let err = lora::attach(&mut model, &lora_vs, &cfg(1 << 40, &["k_proj"])).expect_err("huge r").to_string();
    assert!(err.contains("r must be"), "{err}");
    assert!(lora::attach(&mut model, &lora_vs, &cfg(32, &["k_proj"])).is_ok());
}
