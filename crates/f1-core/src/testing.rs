//! Test fixtures for this crate and the phases: tiny random Llama-family models (the style
//! guide's 2 layers, hidden 64, 4 heads / 2 KV heads) written to disk in Hugging Face and GGUF
//! layouts, with a tiny byte-level BPE tokenizer and ChatML template. Nothing here is used by
//! the engine itself; it lives in the library so every crate's tests share one copy.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;

use crate::gguf::{GgmlType, GgufValue, GgufWriter};
use crate::llama::{Llama, WeightInit};
use crate::load::{permute_qk, hf_name};
use crate::tokenizer::{GgufTokenizerSpec, Tokenizer};
use crate::Config;
use tch::{nn, Device, Kind, Tensor};

/// ChatML, as SmolLM2 ships it (shortened to what the fixtures need).
pub const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// The tiny architecture of the style guide: 2 layers, hidden 64, 4 heads / 2 KV heads.
pub fn tiny_config(model_type: &str) -> Config {
    let json = format!(
        r#"{{"model_type":"{model_type}","vocab_size":272,"hidden_size":64,"intermediate_size":128,
        "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"rope_theta":10000.0,
        "rms_norm_eps":1e-5,"max_position_embeddings":256,"tie_word_embeddings":false,
        "bos_token_id":256,"eos_token_id":258}}"#
    );
    serde_json::from_str(&json).expect("tiny config")
}

/// A model with deterministic random weights drawn from a seeded Rust RNG (not libtorch's
/// process-global one, so tests running in parallel threads still get identical models):
/// matrices N(0, 0.2), norms 1 + N(0, 0.1), biases N(0, 0.1).
pub fn random_model(cfg: &Config, seed: u64) -> (nn::VarStore, Llama) {
    use rand::{Rng, SeedableRng};
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Llama::new(&vs, cfg, WeightInit::Zeros);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut normal = move |std: f64| -> f32 {
        // Box-Muller from two uniforms in (0, 1].
        let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random());
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos() * std) as f32
    };
    // Sorted, so the same seed gives the same model (variables() is a hash map).
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| {
        for (name, mut t) in vars {
            let (std, offset) = if name.contains("norm") { (0.1, 1.0) } else if name.ends_with("bias") { (0.1, 0.0) } else { (0.2, 0.0) };
            let values: Vec<f32> = (0..t.numel()).map(|_| offset + normal(std)).collect();
            t.copy_(&Tensor::from_slice(&values).view(t.size().as_slice()));
        }
    });
    (vs, model)
}

/// GPT-2's byte-to-unicode table: printable bytes map to themselves, the rest to 256+n.
pub fn byte_chars() -> Vec<char> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32).chain(0xA1..=0xAC).chain(0xAE..=0xFF).collect();
    let mut chars = vec!['\0'; 256];
    let mut n = 0;
    for b in 0..256u32 {
        if printable.contains(&b) {
            chars[b as usize] = char::from_u32(b).expect("char");
        } else {
            chars[b as usize] = char::from_u32(256 + n).expect("char");
            n += 1;
        }
    }
    printable.clear();
    chars
}

/// A 272-token byte-level BPE: 256 byte tokens, 3 specials (256 <|im_start|>, 257 <|pad|>,
/// 258 <|im_end|>), and a few merges.
pub fn tiny_tokenizer_spec() -> GgufTokenizerSpec {
    let bytes = byte_chars();
    let mut tokens: Vec<String> = bytes.iter().map(|c| c.to_string()).collect();
    let mut types = vec![1i32; 256];
    for s in ["<|im_start|>", "<|pad|>", "<|im_end|>"] {
        tokens.push(s.into());
        types.push(3);
    }
    let merges = ["t h", "th e", "Ġ th", "Ġth e", "i n", "a n", "e r", "o n", "r e", "a t", "e n", "Ġ a", "s t"];
    for m in merges {
        tokens.push(m.replace(' ', ""));
        types.push(1);
    }
    assert_eq!(tokens.len(), 272);
    GgufTokenizerSpec { model: "gpt2".into(), pre: Some("smollm".into()), tokens, scores: None, token_types: Some(types), merges: Some(merges.iter().map(|m| m.to_string()).collect()), bos_id: Some(256), eos_id: Some(258), unk_id: None, pad_id: Some(257), add_bos: false, add_eos: false }
}

pub fn tiny_tokenizer() -> Tokenizer {
    Tokenizer::from_gguf_spec(tiny_tokenizer_spec(), "tiny test vocabulary").expect("tiny tokenizer")
}

/// Write `vs` as a Hugging Face model directory; `shards` > 1 writes an index and shards.
pub fn write_hf_dir(dir: &Path, cfg: &Config, vs: &nn::VarStore, shards: usize) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(cfg).expect("json")).expect("config");
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    if shards <= 1 {
        Tensor::write_safetensors(&vars, dir.join("model.safetensors")).expect("safetensors");
    } else {
        let mut map = serde_json::Map::new();
        for (i, chunk) in vars.chunks(vars.len().div_ceil(shards)).enumerate() {
            let file = format!("model-{:05}-of-{:05}.safetensors", i + 1, shards);
            Tensor::write_safetensors(chunk, dir.join(&file)).expect("shard");
            for (name, _) in chunk {
                map.insert(name.clone(), file.clone().into());
            }
        }
        let index = serde_json::json!({"metadata": {}, "weight_map": map});
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).expect("index");
    }
    tiny_tokenizer().save(&dir.join("tokenizer.json")).expect("tokenizer.json");
    let tok_cfg = serde_json::json!({"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|pad|>", "chat_template": CHATML, "add_bos_token": false});
    std::fs::write(dir.join("tokenizer_config.json"), tok_cfg.to_string()).expect("tokenizer_config");
}

/// The GGUF tensor name of a Hugging Face parameter (inverse of `hf_name`).
fn gguf_name(hf: &str, n_layers: usize) -> String {
    let mut candidates = vec!["token_embd.weight".to_string(), "output_norm.weight".into(), "output.weight".into()];
    for l in 0..n_layers {
        for part in ["attn_norm", "ffn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"] {
            for suffix in ["weight", "bias"] {
                candidates.push(format!("blk.{l}.{part}.{suffix}"));
            }
        }
    }
    candidates.into_iter().find(|c| hf_name(c).as_deref() == Some(hf)).unwrap_or_else(|| panic!("no GGUF name for {hf}"))
}

/// Write `vs` as a GGUF file the way llama.cpp's converter lays it out (Q/K rows permuted
/// for llama; tokenizer and chat template in the metadata), storing matrices as `dtype`.
pub fn write_gguf(path: &Path, cfg: &Config, vs: &nn::VarStore, dtype: GgmlType) {
    gguf_writer(cfg, vs, dtype, |_| true).write(path).expect("write gguf");
}

/// The writer [`write_gguf`] fills, with the tensors whose GGUF name passes `keep`, for tests
/// that corrupt metadata or tensors before writing.
pub fn gguf_writer(cfg: &Config, vs: &nn::VarStore, dtype: GgmlType, keep: impl Fn(&str) -> bool) -> GgufWriter {
    let arch = cfg.model_type.as_str();
    let mut w = GgufWriter::new();
    let u32v = |v: usize| GgufValue::U32(v as u32);
    w.add_metadata("general.architecture", GgufValue::String(arch.into()));
    w.add_metadata("general.name", GgufValue::String("tiny".into()));
    w.add_metadata(&format!("{arch}.block_count"), u32v(cfg.num_hidden_layers));
    w.add_metadata(&format!("{arch}.context_length"), u32v(cfg.max_position_embeddings));
    w.add_metadata(&format!("{arch}.embedding_length"), u32v(cfg.hidden_size));
    w.add_metadata(&format!("{arch}.feed_forward_length"), u32v(cfg.intermediate_size));
    w.add_metadata(&format!("{arch}.attention.head_count"), u32v(cfg.num_attention_heads));
    w.add_metadata(&format!("{arch}.attention.head_count_kv"), u32v(cfg.num_kv_heads()));
    w.add_metadata(&format!("{arch}.attention.layer_norm_rms_epsilon"), GgufValue::F32(cfg.rms_norm_eps as f32));
    w.add_metadata(&format!("{arch}.rope.freq_base"), GgufValue::F32(cfg.rope_theta() as f32));
    let spec = tiny_tokenizer_spec();
    let strs = |v: &[String]| GgufValue::Array(v.iter().map(|s| GgufValue::String(s.clone())).collect());
    w.add_metadata("tokenizer.ggml.model", GgufValue::String(spec.model.clone()));
    w.add_metadata("tokenizer.ggml.pre", GgufValue::String("smollm".into()));
    w.add_metadata("tokenizer.ggml.tokens", strs(&spec.tokens));
    w.add_metadata("tokenizer.ggml.merges", strs(spec.merges.as_deref().unwrap_or_default()));
    w.add_metadata("tokenizer.ggml.token_type", GgufValue::Array(spec.token_types.clone().unwrap_or_default().into_iter().map(GgufValue::I32).collect()));
    w.add_metadata("tokenizer.ggml.bos_token_id", GgufValue::U32(256));
    w.add_metadata("tokenizer.ggml.eos_token_id", GgufValue::U32(258));
    w.add_metadata("tokenizer.ggml.padding_token_id", GgufValue::U32(257));
    w.add_metadata("tokenizer.ggml.add_bos_token", GgufValue::Bool(false));
    w.add_metadata("tokenizer.chat_template", GgufValue::String(CHATML.into()));
    let vars: HashMap<String, Tensor> = vs.variables();
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    for name in names {
        let mut t = vars[name].detach();
        if arch != "qwen2" && name.contains("q_proj") {
            t = permute_qk(&t, cfg.num_attention_heads as i64);
        } else if arch != "qwen2" && name.contains("k_proj") {
            t = permute_qk(&t, cfg.num_kv_heads() as i64);
        }
        let gguf = gguf_name(name, cfg.num_hidden_layers);
        if !keep(&gguf) {
            continue;
        }
        let data = Vec::<f32>::try_from(t.flatten(0, -1)).expect("f32 data");
        let ty = if t.dim() == 2 { dtype } else { GgmlType::F32 };
        w.add_tensor(&gguf, &t.size(), &data, ty).expect("tensor");
    }
    w
}

/// Largest absolute difference between two tensors.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Float) - b.to_kind(Kind::Float)).abs().max().double_value(&[])
}
