//! The architecture configuration of a Llama-family decoder, deserialized unchanged from a
//! Hugging Face `config.json` (as `transformers.LlamaConfig`, `MistralConfig`, `Qwen2Config`
//! read it), plus the runtime options (device, dtype) that are deliberately kept out of it.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind};

use crate::error::{Error, Result};

/// Ceilings on the sizes a config may declare, far above any published Llama-family model
/// (vocabularies reach 256K, widths 16K, depths 126 layers), so a corrupt file is refused before
/// it sizes an allocation.
const MAX_VOCAB: usize = 1 << 22;
/// Ceiling on `hidden_size` (and, times 8, on `intermediate_size`).
const MAX_WIDTH: usize = 1 << 16;
/// Ceiling on `num_hidden_layers`.
const MAX_LAYERS: usize = 1024;
/// Ceiling on attention and key/value heads.
const MAX_HEADS: usize = 1024;
/// Ceiling on an explicit `head_dim`.
const MAX_HEAD_DIM: usize = 4096;
/// Ceiling on `max_position_embeddings`.
const MAX_POSITIONS: usize = 1 << 24;

/// `eos_token_id` is an int in most configs and a list in Llama-3's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    /// A single id.
    One(u32),
    /// Several ids, any of which ends generation.
    Many(Vec<u32>),
}

impl TokenIds {
    /// All ids as a vector.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

/// RoPE scaling parameters (`rope_scaling` in transformers 4, `rope_parameters` in 5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RopeScaling {
    /// "default", "linear" or "llama3".
    #[serde(alias = "type", default)]
    pub rope_type: Option<String>,
    /// Scaling factor (linear and llama3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// Llama-3: wavelengths longer than `original_max / low_freq_factor` are scaled fully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_freq_factor: Option<f64>,
    /// Llama-3: wavelengths shorter than `original_max / high_freq_factor` are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_freq_factor: Option<f64>,
    /// Llama-3: the context length the model was pre-trained with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_max_position_embeddings: Option<f64>,
    /// transformers 5 keeps the RoPE base here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
}

/// A Llama-family architecture as written in Hugging Face `config.json`. Field names are
/// Hugging Face's; missing fields take transformers' defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// "llama", "mistral" or "qwen2".
    #[serde(default = "default_model_type")]
    pub model_type: String,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Number of decoder blocks.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention); defaults to the query heads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_key_value_heads: Option<usize>,
    /// Per-head width; defaults to `hidden_size / num_attention_heads`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    /// Activation of the MLP gate; only "silu" is supported.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Longest context the model supports.
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base (transformers 4 layout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    /// RoPE scaling (transformers 4 layout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<RopeScaling>,
    /// RoPE base and scaling (transformers 5 layout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<RopeScaling>,
    /// Whether the LM head shares the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Llama: bias on q/k/v/o projections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_bias: Option<bool>,
    /// Llama: bias on the MLP projections.
    #[serde(default)]
    pub mlp_bias: bool,
    /// Mistral/Qwen2 sliding-window attention width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding_window: Option<usize>,
    /// Qwen2 only applies the window when this is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_sliding_window: Option<bool>,
    /// Beginning-of-sequence token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<TokenIds>,
    /// Padding token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<u32>,
}

fn default_model_type() -> String {
    "llama".into()
}
fn default_act() -> String {
    "silu".into()
}
fn default_max_pos() -> usize {
    2048
}
fn default_eps() -> f64 {
    1e-6
}

impl Config {
    /// Read and validate a `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg: Config = serde_json::from_str(&text).map_err(|e| Error::Config {
            path: path.into(),
            reason: format!("not a valid Hugging Face config.json: {e}"),
        })?;
        cfg.validate().map_err(|reason| Error::Config { path: path.into(), reason })?;
        Ok(cfg)
    }

    /// Check the architecture is one this engine implements, with consistent sizes.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !matches!(self.model_type.as_str(), "llama" | "mistral" | "qwen2") {
            return Err(format!(
                "model_type `{}` is not supported (supported: llama, mistral, qwen2)",
                self.model_type
            ));
        }
        if self.hidden_act != "silu" {
            return Err(format!("hidden_act `{}` is not supported (only silu)", self.hidden_act));
        }
        // Sizes come from files a user may not trust: each is checked against a ceiling well
        // above any published model before it sizes an allocation or a division.
        let sizes = [
            ("vocab_size", self.vocab_size, MAX_VOCAB),
            ("hidden_size", self.hidden_size, MAX_WIDTH),
            ("intermediate_size", self.intermediate_size, MAX_WIDTH * 8),
            ("num_hidden_layers", self.num_hidden_layers, MAX_LAYERS),
            ("num_attention_heads", self.num_attention_heads, MAX_HEADS),
            ("num_key_value_heads", self.num_kv_heads(), MAX_HEADS),
            ("head_dim", self.head_dim.unwrap_or(1), MAX_HEAD_DIM),
            ("max_position_embeddings", self.max_position_embeddings, MAX_POSITIONS),
        ];
        for (key, value, ceiling) in sizes {
            if value == 0 || value > ceiling {
                return Err(format!("{key} = {value} is outside 1..={ceiling}; the config (or GGUF metadata) is corrupt or not a Llama-family model"));
            }
        }
        if self.num_kv_heads() > self.num_attention_heads {
            return Err(format!("num_key_value_heads {} exceeds num_attention_heads {}", self.num_kv_heads(), self.num_attention_heads));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0 && self.rms_norm_eps < 1.0) {
            return Err(format!("rms_norm_eps = {} must be a number in (0, 1)", self.rms_norm_eps));
        }
        let theta = self.rope_theta();
        if !(theta.is_finite() && theta > 1.0) {
            return Err(format!("rope_theta = {theta} must be a finite number above 1"));
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !self.num_attention_heads.is_multiple_of(self.num_kv_heads()) {
            return Err(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads,
                self.num_kv_heads()
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(format!("head_dim {} must be even for RoPE", self.head_dim()));
        }
        let rope = self.rope();
        match rope.rope_type.as_deref().unwrap_or("default") {
            "default" => {}
            "linear" | "llama3" if rope.factor.is_some_and(|f| f.is_finite() && f >= 1.0) => {}
            "linear" | "llama3" if rope.factor.is_some() => return Err(format!("rope scaling factor {:?} must be a finite number of at least 1", rope.factor)),
            "linear" | "llama3" => return Err("rope scaling needs a `factor`".into()),
            other => {
                return Err(format!(
                    "rope scaling type `{other}` is not supported (supported: default, linear, llama3)"
                ))
            }
        }
        Ok(())
    }

    /// Key/value heads.
    pub fn num_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Per-head width.
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Whether q/k/v projections carry a bias (Qwen2 always; Llama when `attention_bias`).
    pub fn qkv_bias(&self) -> bool {
        self.model_type == "qwen2" || self.attention_bias.unwrap_or(false)
    }

    /// Whether the output projection carries a bias (Llama with `attention_bias` only).
    pub fn o_bias(&self) -> bool {
        self.model_type != "qwen2" && self.attention_bias.unwrap_or(false)
    }

    /// The effective RoPE parameters, whichever layout the config used.
    pub fn rope(&self) -> RopeScaling {
        let mut rope = self.rope_parameters.clone().or_else(|| self.rope_scaling.clone()).unwrap_or_default();
        if rope.rope_theta.is_none() {
            rope.rope_theta = self.rope_theta;
        }
        rope
    }

    /// RoPE base frequency.
    pub fn rope_theta(&self) -> f64 {
        self.rope().rope_theta.unwrap_or(10_000.0)
    }

    /// The attention window, when the model uses sliding-window attention.
    pub fn sliding_window(&self) -> Option<usize> {
        match self.model_type.as_str() {
            "mistral" => self.sliding_window,
            "qwen2" if self.use_sliding_window == Some(true) => self.sliding_window,
            _ => None,
        }
    }

    /// End-of-sequence ids from the config (the tokenizer may add more).
    pub fn eos_ids(&self) -> Vec<u32> {
        self.eos_token_id.as_ref().map(TokenIds::to_vec).unwrap_or_default()
    }

    /// The transformers class that loads this architecture (`config.json`'s `architectures`).
    pub fn architecture(&self) -> &'static str {
        match self.model_type.as_str() {
            "mistral" => "MistralForCausalLM",
            "qwen2" => "Qwen2ForCausalLM",
            _ => "LlamaForCausalLM",
        }
    }

    /// Every parameter of the model by Hugging Face name, with its shape: what a checkpoint
    /// must hold, checked before any weight is allocated. [`crate::Llama::new`] creates exactly
    /// these (a test in `llama.rs` holds the two together).
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<i64>)> {
        let dim = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let (h, i, v) = (dim(self.hidden_size), dim(self.intermediate_size), dim(self.vocab_size));
        let q = dim(self.num_attention_heads.saturating_mul(self.head_dim()));
        let kv = dim(self.num_kv_heads().saturating_mul(self.head_dim()));
        let (qkv_bias, o_bias, mlp_bias) = (self.qkv_bias(), self.o_bias(), self.mlp_bias);
        let mut out = vec![("model.embed_tokens.weight".to_string(), vec![v, h])];
        for layer in 0..self.num_hidden_layers {
            let name = |rest: &str| format!("model.layers.{layer}.{rest}");
            out.push((name("input_layernorm.weight"), vec![h]));
            let projections = [
                ("self_attn.q_proj", q, h, qkv_bias),
                ("self_attn.k_proj", kv, h, qkv_bias),
                ("self_attn.v_proj", kv, h, qkv_bias),
                ("self_attn.o_proj", h, q, o_bias),
                ("mlp.gate_proj", i, h, mlp_bias),
                ("mlp.up_proj", i, h, mlp_bias),
                ("mlp.down_proj", h, i, mlp_bias),
            ];
            for (module, out_dim, in_dim, bias) in projections {
                out.push((name(&format!("{module}.weight")), vec![out_dim, in_dim]));
                if bias {
                    out.push((name(&format!("{module}.bias")), vec![out_dim]));
                }
            }
            out.push((name("post_attention_layernorm.weight"), vec![h]));
        }
        out.push(("model.norm.weight".into(), vec![h]));
        if !self.tie_word_embeddings {
            out.push(("lm_head.weight".into(), vec![v, h]));
        }
        out
    }

    /// Total parameter count implied by the config (saturating, so a corrupt config cannot
    /// overflow it).
    pub fn num_parameters(&self) -> usize {
        let total = self.parameter_shapes().iter().map(|(_, shape)| shape.iter().fold(1u64, |n, &d| n.saturating_mul(d.unsigned_abs()))).fold(0u64, u64::saturating_add);
        usize::try_from(total).unwrap_or(usize::MAX)
    }
}

/// Where and in which precision the model runs: runtime choices, never part of [`Config`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelOptions {
    /// Compute device.
    pub device: Device,
    /// Compute dtype of weights and activations.
    pub dtype: Kind,
}

impl ModelOptions {
    /// CUDA in bf16 when a GPU is visible, else CPU in fp32 (bf16 matmul on CPU is ~70x slower).
    pub fn auto() -> Self {
        Self::parse("auto", "auto").unwrap_or(ModelOptions { device: Device::Cpu, dtype: Kind::Float })
    }

    /// Resolve `device` ("auto", "cpu", "cuda", "cuda:N") and `dtype` ("auto", "f32", "bf16",
    /// "f16") as written in a config file.
    pub fn parse(device: &str, dtype: &str) -> Result<Self> {
        let device = match device.trim().to_ascii_lowercase().as_str() {
            "auto" => Device::cuda_if_available(),
            "cpu" => Device::Cpu,
            "cuda" | "gpu" => Device::Cuda(0),
            other => match other.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()) {
                Some(n) => Device::Cuda(n),
                None => {
                    return Err(Error::Invalid(format!(
                        "device `{other}`: use auto, cpu, cuda or cuda:N"
                    )))
                }
            },
        };
        if let Device::Cuda(n) = device {
            if !tch::Cuda::is_available() || n >= tch::Cuda::device_count() as usize {
                return Err(Error::Invalid(format!(
                    "device cuda:{n} requested but libtorch sees {} CUDA device(s); use device: cpu",
                    if tch::Cuda::is_available() { tch::Cuda::device_count() } else { 0 }
                )));
            }
        }
        let dtype = match dtype.trim().to_ascii_lowercase().as_str() {
            "auto" if device.is_cuda() => Kind::BFloat16,
            "auto" | "f32" | "fp32" | "float32" => Kind::Float,
            "bf16" | "bfloat16" => Kind::BFloat16,
            "f16" | "fp16" | "float16" => Kind::Half,
            other => {
                return Err(Error::Invalid(format!("dtype `{other}`: use auto, f32, bf16 or f16")))
            }
        };
        Ok(ModelOptions { device, dtype })
    }

    /// Options for CPU fp32 (tests, the CPU default).
    pub fn cpu() -> Self {
        ModelOptions { device: Device::Cpu, dtype: Kind::Float }
    }
}

/// A short human description of a dtype ("f32", "bf16", ...).
pub fn dtype_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Float => "f32",
        Kind::BFloat16 => "bf16",
        Kind::Half => "f16",
        Kind::Double => "f64",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smollm2_config_parses_with_defaults() {
        let json = r#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":49152,
            "hidden_size":576,"intermediate_size":1536,"num_hidden_layers":30,"num_attention_heads":9,
            "num_key_value_heads":3,"rope_theta":100000,"rms_norm_eps":1e-5,"tie_word_embeddings":true,
            "max_position_embeddings":8192,"bos_token_id":1,"eos_token_id":2,"hidden_act":"silu"}"#;
        let cfg: Config = serde_json::from_str(json).expect("parses");
        assert!(cfg.validate().is_ok());
        assert_eq!(cfg.head_dim(), 64);
        assert_eq!(cfg.num_kv_heads(), 3);
        assert_eq!(cfg.rope_theta(), 100000.0);
        assert!(!cfg.qkv_bias());
        // SmolLM2-135M has 134,515,008 parameters.
        assert_eq!(cfg.num_parameters(), 134_515_008);
    }

    #[test]
    fn llama3_and_qwen2_fields() {
        let json = r#"{"model_type":"llama","vocab_size":128256,"hidden_size":2048,"intermediate_size":8192,
            "num_hidden_layers":16,"num_attention_heads":32,"num_key_value_heads":8,"head_dim":64,
            "rope_theta":500000.0,"eos_token_id":[128001,128008,128009],
            "rope_scaling":{"factor":32.0,"high_freq_factor":4.0,"low_freq_factor":1.0,
            "original_max_position_embeddings":8192,"rope_type":"llama3"}}"#;
        let cfg: Config = serde_json::from_str(json).expect("parses");
        assert!(cfg.validate().is_ok());
        assert_eq!(cfg.eos_ids(), vec![128001, 128008, 128009]);
        assert_eq!(cfg.rope().rope_type.as_deref(), Some("llama3"));
        let qwen: Config = serde_json::from_str(
            r#"{"model_type":"qwen2","vocab_size":10,"hidden_size":8,"intermediate_size":16,
            "num_hidden_layers":1,"num_attention_heads":2,"sliding_window":4,"use_sliding_window":false}"#,
        )
        .expect("parses");
        assert!(qwen.qkv_bias() && !qwen.o_bias());
        assert_eq!(qwen.sliding_window(), None);
    }

    #[test]
    fn bad_config_names_file_and_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"model_type":"gpt_neox","vocab_size":1,"hidden_size":8,
            "intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2}"#)
        .expect("write");
        let err = Config::from_file(&path).expect_err("unsupported").to_string();
        assert!(err.contains("config.json") && err.contains("gpt_neox"), "{err}");
        std::fs::write(&path, "{not json").expect("write");
        let err = Config::from_file(&path).expect_err("malformed").to_string();
        assert!(err.contains("config.json") && err.contains("not a valid"), "{err}");
    }

    #[test]
    fn device_and_dtype_strings() {
        let o = ModelOptions::parse("cpu", "auto").expect("cpu");
        assert_eq!((o.device, o.dtype), (Device::Cpu, Kind::Float));
        assert_eq!(ModelOptions::parse("cpu", "bf16").expect("bf16").dtype, Kind::BFloat16);
        assert!(ModelOptions::parse("tpu", "auto").is_err());
        assert!(ModelOptions::parse("cpu", "int3").is_err());
    }
}

/// The `model:` section of a study document with `model.profiles.<profile>` merged over it
/// and the `profiles` key dropped. A profile need not touch the model (`quick` does not), so a
/// profile missing here is no error; the phases' own sections name unknown profiles.
pub fn study_model_section(doc: &serde_yaml::Value, profile: &str) -> serde_yaml::Value {
    let mut section = doc.get("model").cloned().unwrap_or(serde_yaml::Value::Mapping(Default::default()));
    let over = section.get("profiles").and_then(|p| p.get(profile)).cloned();
    if let serde_yaml::Value::Mapping(m) = &mut section {
        m.remove("profiles");
    }
    if let Some(over) = over.filter(|_| profile != "default") {
        merge_yaml(&mut section, over);
    }
    section
}

/// Deep-merge `over` into `base`: mappings merge key by key, anything else replaces. This is
/// how a named profile (`quick`, `gpu`) overrides a config section.
pub fn merge_yaml(base: &mut serde_yaml::Value, over: serde_yaml::Value) {
    match (base, over) {
        (serde_yaml::Value::Mapping(b), serde_yaml::Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge_yaml(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}
