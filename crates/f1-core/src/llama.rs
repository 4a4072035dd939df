//! The Llama-family decoder (Llama-2/3, Mistral, TinyLlama, SmolLM2, Qwen2), written after
//! Hugging Face `transformers/models/llama/modeling_llama.py`: RMSNorm, rotary embeddings
//! (rotate-half layout, with Llama-3 and linear scaling), grouped-query attention through
//! `scaled_dot_product_attention`, a SwiGLU MLP and a tied or untied LM head. Parameters carry
//! Hugging Face names (`model.layers.3.self_attn.q_proj.weight`) so checkpoints load as they are.

use std::f64::consts::PI;

use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

use crate::config::Config;
use crate::lora::LoraLayer;
use crate::nf4::Nf4Tensor;

/// How a freshly built model's weights are filled before (optionally) loading a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WeightInit {
    /// Zeros: cheapest when a checkpoint overwrites everything right after.
    Zeros,
    /// Normal(0, std) for matrices and ones for norms, like transformers' `_init_weights`.
    Random {
        /// Standard deviation (`initializer_range`, 0.02 in most configs).
        std: f64,
    },
}

impl WeightInit {
    fn matrix(self) -> Init {
        match self {
            WeightInit::Zeros => Init::Const(0.0),
            WeightInit::Random { std } => Init::Randn { mean: 0.0, stdev: std },
        }
    }
}

/// A linear projection `y = x W^T + b` with the weight named `weight`, as `torch.nn.Linear`.
///
/// The slot can also hold a LoRA adapter (phase 3) and can keep its base weight in NF4 instead
/// of full precision (QLoRA); the base `weight` keeps its name either way, so checkpoints load
/// the same.
#[derive(Debug)]
pub struct Linear {
    /// (out_features, in_features); empty once the base is quantized to NF4.
    pub weight: Tensor,
    /// (out_features,)
    pub bias: Option<Tensor>,
    /// The base weight in NF4, when quantized (QLoRA).
    pub quantized: Option<Nf4Tensor>,
    /// A low-rank adapter added to the base output.
    pub lora: Option<LoraLayer>,
}

impl Linear {
    /// Create `weight` (and `bias`) under `vs`.
    pub fn new(vs: nn::Path, in_dim: usize, out_dim: usize, bias: bool, init: WeightInit) -> Self {
        let weight = vs.var("weight", &[out_dim as i64, in_dim as i64], init.matrix());
        let bias = bias.then(|| vs.var("bias", &[out_dim as i64], Init::Const(0.0)));
        Linear { weight, bias, quantized: None, lora: None }
    }

    /// The base weight in `kind`, dequantized when it is stored in NF4.
    pub fn base_weight(&self, kind: Kind) -> Tensor {
        match &self.quantized {
            Some(q) => q.dequantize(kind),
            None => self.weight.to_kind(kind),
        }
    }

    /// Apply the projection to (..., in) giving (..., out).
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        let base = match &self.quantized {
            Some(q) => xs.linear(&q.dequantize(xs.kind()), self.bias.as_ref()),
            None => xs.linear(&self.weight, self.bias.as_ref()),
        };
        match &self.lora {
            Some(lora) if !lora.merged => base + lora.forward(xs),
            _ => base,
        }
    }
}

/// Root-mean-square layer norm, computed in fp32 as transformers' `LlamaRMSNorm` does.
#[derive(Debug)]
pub struct RmsNorm {
    /// (hidden,)
    pub weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    /// Create `weight` (ones) under `vs`.
    pub fn new(vs: nn::Path, dim: usize, eps: f64) -> Self {
        RmsNorm { weight: vs.var("weight", &[dim as i64], Init::Const(1.0)), eps }
    }

    /// Normalise the last axis.
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        let dtype = xs.kind();
        let xs32 = xs.to_kind(Kind::Float);
        let var = xs32.pow_tensor_scalar(2).mean_dim(-1, true, Kind::Float);
        let normed = xs32 * (var + self.eps).rsqrt();
        &self.weight * normed.to_kind(dtype)
    }
}

/// Precomputed rotary tables: `cos`/`sin` of shape (positions, head_dim), in fp32.
#[derive(Debug)]
pub struct Rotary {
    inv_freq: Tensor,
    cos: Tensor,
    sin: Tensor,
}

/// Rotary tables are precomputed up to this many positions; longer contexts compute on the fly.
const ROPE_TABLE_LEN: usize = 8192;

impl Rotary {
    /// Build the inverse frequencies (with the config's scaling) and the tables on `device`.
    pub fn new(cfg: &Config, device: Device) -> Self {
        let inv_freq = Tensor::from_slice(&inv_frequencies(cfg)).to_device(device);
        let n = cfg.max_position_embeddings.min(ROPE_TABLE_LEN) as i64;
        let pos = Tensor::arange(n, (Kind::Float, device));
        let (cos, sin) = Self::tables(&inv_freq, &pos);
        Rotary { inv_freq, cos, sin }
    }

    fn tables(inv_freq: &Tensor, pos: &Tensor) -> (Tensor, Tensor) {
        let freqs = pos.unsqueeze(-1) * inv_freq.unsqueeze(0); // (..., head_dim/2)
        let emb = Tensor::cat(&[&freqs, &freqs], -1); // (..., head_dim)
        (emb.cos(), emb.sin())
    }

    /// `cos`, `sin` for position ids (B, T), shaped (B, 1, T, head_dim) in `dtype`. `bound`,
    /// when the caller knows one, is a limit the ids stay below; without it the largest id is
    /// read back from the device (a host synchronisation the decode loop avoids).
    pub fn at(&self, position_ids: &Tensor, bound: Option<i64>, dtype: Kind) -> (Tensor, Tensor) {
        let max_pos = bound.map_or_else(|| position_ids.max().int64_value(&[]), |b| b - 1);
        let (cos, sin) = if max_pos < self.cos.size()[0] {
            let flat = position_ids.flatten(0, -1);
            let mut shape = position_ids.size();
            shape.push(-1);
            (self.cos.index_select(0, &flat).view(shape.as_slice()), self.sin.index_select(0, &flat).view(shape.as_slice()))
        } else {
            Self::tables(&self.inv_freq, &position_ids.to_kind(Kind::Float))
        };
        (cos.unsqueeze(1).to_kind(dtype), sin.unsqueeze(1).to_kind(dtype))
    }
}

/// Inverse RoPE frequencies `1 / theta^(2i/d)`, scaled as the config asks (Llama-3's
/// wavelength-dependent scaling from `_compute_llama3_parameters`, or linear division).
pub fn inv_frequencies(cfg: &Config) -> Vec<f32> {
    let d = cfg.head_dim();
    let theta = cfg.rope_theta();
    let base: Vec<f64> = (0..d / 2).map(|i| 1.0 / theta.powf((2 * i) as f64 / d as f64)).collect();
    let rope = cfg.rope();
    let factor = rope.factor.unwrap_or(1.0);
    let scaled: Vec<f64> = match rope.rope_type.as_deref() {
        Some("linear") => base.iter().map(|f| f / factor).collect(),
        Some("llama3") => {
            let low = rope.low_freq_factor.unwrap_or(1.0);
            let high = rope.high_freq_factor.unwrap_or(4.0);
            let old_ctx = rope.original_max_position_embeddings.unwrap_or(8192.0);
            let low_wavelen = old_ctx / low;
            let high_wavelen = old_ctx / high;
            base.iter()
                .map(|&f| {
                    let wavelen = 2.0 * PI / f;
                    if wavelen < high_wavelen {
                        f
                    } else if wavelen > low_wavelen {
                        f / factor
                    } else {
                        let smooth = (old_ctx / wavelen - low) / (high - low);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect()
        }
        _ => base,
    };
    scaled.into_iter().map(|f| f as f32).collect()
}

fn rotate_half(xs: &Tensor) -> Tensor {
    let half = xs.size()[3] / 2;
    let x1 = xs.narrow(3, 0, half);
    let x2 = xs.narrow(3, half, half);
    Tensor::cat(&[&x2.neg(), &x1], 3)
}

fn apply_rotary(xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
    xs * cos + rotate_half(xs) * sin
}

/// Preallocated key/value cache for incremental decoding: one (B, n_kv, capacity, head_dim)
/// buffer pair per layer written in place, so the decode loop does not re-allocate.
#[derive(Debug)]
pub struct KvCache {
    keys: Vec<Tensor>,
    values: Vec<Tensor>,
    /// Tokens held so far (the same for every row: rows are left-padded).
    len: usize,
    capacity: usize,
}

impl KvCache {
    /// A cache for `batch` rows of at most `capacity` tokens.
    pub fn new(cfg: &Config, batch: usize, capacity: usize, device: Device, dtype: Kind) -> Self {
        let shape = [batch as i64, cfg.num_kv_heads() as i64, capacity as i64, cfg.head_dim() as i64];
        let keys = (0..cfg.num_hidden_layers).map(|_| Tensor::zeros(shape, (dtype, device))).collect();
        let values = (0..cfg.num_hidden_layers).map(|_| Tensor::zeros(shape, (dtype, device))).collect();
        KvCache { keys, values, len: 0, capacity }
    }

    /// Tokens already cached.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maximum tokens the cache holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Store new (B, n_kv, T, hd) keys/values of `layer` after the cached ones and return
    /// views of everything cached so far.
    fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> (Tensor, Tensor) {
        let t = k.size()[2];
        let start = self.len as i64;
        self.keys[layer].narrow(2, start, t).copy_(k);
        self.values[layer].narrow(2, start, t).copy_(v);
        (self.keys[layer].narrow(2, 0, start + t), self.values[layer].narrow(2, 0, start + t))
    }
}

/// Multi-head self-attention with grouped key/value heads.
#[derive(Debug)]
pub struct Attention {
    /// Query projection.
    pub q_proj: Linear,
    /// Key projection.
    pub k_proj: Linear,
    /// Value projection.
    pub v_proj: Linear,
    /// Output projection.
    pub o_proj: Linear,
    n_head: i64,
    n_kv_head: i64,
    head_dim: i64,
}

impl Attention {
    fn new(vs: nn::Path, cfg: &Config, init: WeightInit) -> Self {
        let (h, hd) = (cfg.hidden_size, cfg.head_dim());
        let (nh, nkv) = (cfg.num_attention_heads, cfg.num_kv_heads());
        Attention {
            q_proj: Linear::new(&vs / "q_proj", h, nh * hd, cfg.qkv_bias(), init),
            k_proj: Linear::new(&vs / "k_proj", h, nkv * hd, cfg.qkv_bias(), init),
            v_proj: Linear::new(&vs / "v_proj", h, nkv * hd, cfg.qkv_bias(), init),
            o_proj: Linear::new(&vs / "o_proj", nh * hd, h, cfg.o_bias(), init),
            n_head: nh as i64,
            n_kv_head: nkv as i64,
            head_dim: hd as i64,
        }
    }

    fn forward(&self, xs: &Tensor, rope: &(Tensor, Tensor), mask: &Tensor, cache: Option<(&mut KvCache, usize)>) -> Tensor {
        let (b, t, _) = xs.size3().expect("attention input is (B, T, C)");
        let q = self.q_proj.forward(xs).view([b, t, self.n_head, self.head_dim]).transpose(1, 2);
        let k = self.k_proj.forward(xs).view([b, t, self.n_kv_head, self.head_dim]).transpose(1, 2);
        let v = self.v_proj.forward(xs).view([b, t, self.n_kv_head, self.head_dim]).transpose(1, 2);
        // (B, n_head, T, head_dim) and (B, n_kv_head, T, head_dim)
        let q = apply_rotary(&q, &rope.0, &rope.1);
        let k = apply_rotary(&k, &rope.0, &rope.1);
        let (k, v) = match cache {
            Some((cache, layer)) => cache.append(layer, &k, &v),
            None => (k, v),
        };
        let y = Tensor::scaled_dot_product_attention(&q, &k, &v, Some(mask), 0.0, false, None, self.n_kv_head != self.n_head);
        // (B, n_head, T, head_dim) -> (B, T, n_head * head_dim)
        let y = y.transpose(1, 2).contiguous().view([b, t, self.n_head * self.head_dim]);
        self.o_proj.forward(&y)
    }
}

/// The SwiGLU feed-forward block: `down(silu(gate(x)) * up(x))`.
#[derive(Debug)]
pub struct Mlp {
    /// Gate projection.
    pub gate_proj: Linear,
    /// Up projection.
    pub up_proj: Linear,
    /// Down projection.
    pub down_proj: Linear,
}

impl Mlp {
    fn new(vs: nn::Path, cfg: &Config, init: WeightInit) -> Self {
        let (h, i, b) = (cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias);
        Mlp {
            gate_proj: Linear::new(&vs / "gate_proj", h, i, b, init),
            up_proj: Linear::new(&vs / "up_proj", h, i, b, init),
            down_proj: Linear::new(&vs / "down_proj", i, h, b, init),
        }
    }

    fn forward(&self, xs: &Tensor) -> Tensor {
        self.down_proj.forward(&(self.gate_proj.forward(xs).silu() * self.up_proj.forward(xs)))
    }
}

/// One pre-norm decoder block.
#[derive(Debug)]
pub struct Block {
    /// Norm before attention.
    pub input_layernorm: RmsNorm,
    /// Self-attention.
    pub self_attn: Attention,
    /// Norm before the MLP.
    pub post_attention_layernorm: RmsNorm,
    /// Feed-forward.
    pub mlp: Mlp,
}

impl Block {
    fn new(vs: nn::Path, cfg: &Config, init: WeightInit) -> Self {
        Block {
            input_layernorm: RmsNorm::new(&vs / "input_layernorm", cfg.hidden_size, cfg.rms_norm_eps),
            self_attn: Attention::new(&vs / "self_attn", cfg, init),
            post_attention_layernorm: RmsNorm::new(&vs / "post_attention_layernorm", cfg.hidden_size, cfg.rms_norm_eps),
            mlp: Mlp::new(&vs / "mlp", cfg, init),
        }
    }

    fn forward(&self, xs: &Tensor, rope: &(Tensor, Tensor), mask: &Tensor, cache: Option<(&mut KvCache, usize)>) -> Tensor {
        let xs = xs + self.self_attn.forward(&self.input_layernorm.forward(xs), rope, mask, cache);
        &xs + self.mlp.forward(&self.post_attention_layernorm.forward(&xs))
    }
}

/// A Llama-family causal language model (`LlamaForCausalLM`).
#[derive(Debug)]
pub struct Llama {
    /// Token embedding (vocab, hidden).
    pub embed_tokens: Tensor,
    /// Decoder blocks.
    pub layers: Vec<Block>,
    /// Final norm.
    pub norm: RmsNorm,
    /// LM head (vocab, hidden); the embedding itself when tied.
    pub lm_head: Tensor,
    rotary: Rotary,
    cfg: Config,
    dtype: Kind,
    device: Device,
}

impl Llama {
    /// Create every parameter under `vs` with Hugging Face names (`model.*`, `lm_head.weight`),
    /// in the var store's device and kind. Load a checkpoint into `vs` afterwards, or keep the
    /// random init (tests).
    pub fn new(vs: &nn::VarStore, cfg: &Config, init: WeightInit) -> Self {
        let root = vs.root();
        let model = &root / "model";
        let embed_init = match init {
            WeightInit::Zeros => Init::Const(0.0),
            WeightInit::Random { std } => Init::Randn { mean: 0.0, stdev: std },
        };
        let embed_tokens = (&model / "embed_tokens").var("weight", &[cfg.vocab_size as i64, cfg.hidden_size as i64], embed_init);
        let layers = (0..cfg.num_hidden_layers).map(|i| Block::new(&model / "layers" / i, cfg, init)).collect();
        let norm = RmsNorm::new(&model / "norm", cfg.hidden_size, cfg.rms_norm_eps);
        let lm_head = if cfg.tie_word_embeddings {
            embed_tokens.shallow_clone()
        } else {
            (&root / "lm_head").var("weight", &[cfg.vocab_size as i64, cfg.hidden_size as i64], init.matrix())
        };
        Llama { embed_tokens, layers, norm, lm_head, rotary: Rotary::new(cfg, vs.device()), cfg: cfg.clone(), dtype: vs.kind(), device: vs.device() }
    }

    /// Every projection of the decoder blocks with its Hugging Face module name
    /// (`model.layers.0.self_attn.q_proj`), in a fixed order. The LM head is not included.
    pub fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let mut out = Vec::with_capacity(self.layers.len() * 7);
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let a = &mut layer.self_attn;
            let m = &mut layer.mlp;
            for (name, lin) in [("self_attn.q_proj", &mut a.q_proj), ("self_attn.k_proj", &mut a.k_proj), ("self_attn.v_proj", &mut a.v_proj), ("self_attn.o_proj", &mut a.o_proj), ("mlp.gate_proj", &mut m.gate_proj), ("mlp.up_proj", &mut m.up_proj), ("mlp.down_proj", &mut m.down_proj)] {
                out.push((format!("model.layers.{i}.{name}"), lin));
            }
        }
        out
    }

    /// Switch training behaviour (LoRA dropout) on or off.
    pub fn set_training(&mut self, training: bool) {
        for (_, lin) in self.linears_mut() {
            if let Some(lora) = lin.lora.as_mut() {
                lora.training = training;
            }
        }
    }

    /// The architecture.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Compute dtype.
    pub fn dtype(&self) -> Kind {
        self.dtype
    }

    /// Compute device.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Final hidden states (B, T, hidden) for `input_ids` (B, T).
    ///
    /// `attention_mask` (B, past + T) marks real tokens with 1 and padding with 0 (left padding
    /// for generation, right padding for scoring); `None` means no padding. With a `cache`, the
    /// new tokens attend to everything cached and are appended to it.
    pub fn forward_hidden(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>, cache: Option<&mut KvCache>) -> Tensor {
        let (b, t) = input_ids.size2().expect("input_ids is (B, T)");
        let past = cache.as_ref().map_or(0, |c| c.len() as i64);
        let total = past + t;
        let device = self.device;
        let attn = match attention_mask {
            Some(m) => m.to_device(device).to_kind(Kind::Bool),
            None => Tensor::ones([b, total], (Kind::Bool, device)),
        };
        assert_eq!(attn.size(), vec![b, total], "attention_mask must be (B, past + T)");
        // Position of a token = number of real tokens before it, as transformers derives it
        // from the mask, so left padding does not shift positions.
        let positions = (attn.to_kind(Kind::Int64).cumsum(1, Kind::Int64) - 1).clamp_min(0);
        let position_ids = positions.narrow(1, past, t); // (B, T)
        let mask = self.attention_mask(&attn, past, t);
        // A position counts real tokens before it, so it stays below past + T.
        self.run(input_ids, &position_ids, Some(total), &mask, cache)
    }

    /// Hidden states for packed sequences: several examples share a row, told apart by
    /// `segment_ids` (B, T) (1, 2, ... per example; 0 for padding), with `position_ids` (B, T)
    /// restarting at 0 for each example. A token attends only to earlier tokens of its own
    /// example, so packing changes nothing about what each example sees.
    pub fn forward_hidden_packed(&self, input_ids: &Tensor, segment_ids: &Tensor, position_ids: &Tensor) -> Tensor {
        let device = self.device;
        let seg = segment_ids.to_device(device);
        let t = seg.size()[1];
        let causal = Tensor::ones([t, t], (Kind::Bool, device)).tril(0).unsqueeze(0); // (1, T, T)
        let same = seg.unsqueeze(2).eq_tensor(&seg.unsqueeze(1)).logical_and(&seg.ne(0).unsqueeze(1)); // (B, T, T)
        let diag = Tensor::eye(t, (Kind::Bool, device)).unsqueeze(0);
        let mask = same.logical_and(&causal).logical_or(&diag).unsqueeze(1);
        self.run(input_ids, &position_ids.to_device(device), None, &mask, None)
    }

    /// Hidden states under an explicit attention pattern: `mask` (B, T, T) is true where query i
    /// may attend key j, `position_ids` (B, T) give each token's rotary position. This is what
    /// scores several continuations of one shared context in a single pass (each continuation
    /// sees the context and itself, never its siblings). Every query also sees itself, so a
    /// padded row never softmaxes over nothing. The sliding window, if any, is not applied:
    /// callers keep rows shorter than it.
    pub fn forward_hidden_masked(&self, input_ids: &Tensor, position_ids: &Tensor, mask: &Tensor) -> Tensor {
        let device = self.device;
        let t = input_ids.size()[1];
        let diag = Tensor::eye(t, (Kind::Bool, device)).unsqueeze(0);
        let mask = mask.to_device(device).to_kind(Kind::Bool).logical_or(&diag).unsqueeze(1); // (B, 1, T, T)
        self.run(input_ids, &position_ids.to_device(device), None, &mask, None)
    }

    /// Boolean mask (B, 1, T, past + T): query i (absolute past + i) may attend key j when j is
    /// a real token, j <= past + i, and j lies inside the sliding window if the model has one.
    /// Every query also sees itself, so padded query rows never softmax over nothing (their
    /// outputs are ignored, but NaNs would otherwise spread through the KV cache).
    fn attention_mask(&self, attn: &Tensor, past: i64, t: i64) -> Tensor {
        let total = past + t;
        let q_pos = Tensor::arange_start(past, total, (Kind::Int64, self.device)).unsqueeze(1); // (T, 1)
        let k_pos = Tensor::arange(total, (Kind::Int64, self.device)).unsqueeze(0); // (1, total)
        let mut allowed = k_pos.le_tensor(&q_pos);
        if let Some(w) = self.cfg.sliding_window() {
            allowed = allowed.logical_and(&(&q_pos - &k_pos).lt(w as i64));
        }
        let diag = k_pos.eq_tensor(&q_pos);
        let mask = allowed.unsqueeze(0).logical_and(&attn.unsqueeze(1)); // (B, T, total)
        mask.logical_or(&diag.unsqueeze(0)).unsqueeze(1)
    }

    /// The decoder stack on boolean `mask` (B, 1, T, keys). The mask becomes additive (0 or
    /// -inf in the compute dtype) once here rather than in each layer's attention, which would
    /// otherwise convert it per call.
    fn run(&self, input_ids: &Tensor, position_ids: &Tensor, pos_bound: Option<i64>, mask: &Tensor, mut cache: Option<&mut KvCache>) -> Tensor {
        let t = input_ids.size()[1];
        let rope = self.rotary.at(position_ids, pos_bound, self.dtype);
        let mask = Tensor::zeros(mask.size(), (self.dtype, self.device)).masked_fill(&mask.logical_not(), f64::NEG_INFINITY);
        let mask = &mask;
        let mut xs = Tensor::embedding(&self.embed_tokens, &input_ids.to_device(self.device), -1, false, false);
        for (i, layer) in self.layers.iter().enumerate() {
            xs = layer.forward(&xs, &rope, mask, cache.as_deref_mut().map(|c| (c, i)));
        }
        if let Some(cache) = cache {
            cache.len += t as usize;
        }
        self.norm.forward(&xs)
    }

    /// Project hidden states (..., hidden) to vocabulary logits (..., vocab).
    pub fn logits(&self, hidden: &Tensor) -> Tensor {
        hidden.linear::<Tensor>(&self.lm_head, None)
    }

    /// Logits (B, T, vocab) for `input_ids` (B, T): [`Self::forward_hidden`] then the LM head.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>, cache: Option<&mut KvCache>) -> Tensor {
        self.logits(&self.forward_hidden(input_ids, attention_mask, cache))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn tiny_config() -> Config {
        serde_json::from_str(
            r#"{"model_type":"llama","vocab_size":96,"hidden_size":64,"intermediate_size":128,
            "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"rope_theta":10000.0,
            "rms_norm_eps":1e-5,"max_position_embeddings":128,"tie_word_embeddings":false}"#,
        )
        .expect("tiny config")
    }

    #[test]
    fn parameter_names_are_hugging_face_names() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = tiny_config();
        let _m = Llama::new(&vs, &cfg, WeightInit::Random { std: 0.02 });
        let names = vs.variables();
        for name in ["model.embed_tokens.weight", "model.layers.1.self_attn.q_proj.weight", "model.layers.0.mlp.down_proj.weight", "model.layers.0.post_attention_layernorm.weight", "model.norm.weight", "lm_head.weight"] {
            assert!(names.contains_key(name), "missing {name}");
        }
        let total: i64 = names.values().map(|t| t.numel() as i64).sum();
        assert_eq!(total as usize, cfg.num_parameters());
        assert_eq!(names["model.layers.0.self_attn.k_proj.weight"].size(), vec![32, 64]);
    }

    #[test]
    fn parameter_shapes_are_exactly_the_variables_the_model_creates() {
        let mut configs = vec![tiny_config()];
        let mut tied = tiny_config();
        tied.tie_word_embeddings = true;
        let mut biased = tiny_config();
        (biased.attention_bias, biased.mlp_bias) = (Some(true), true);
        let mut qwen = tiny_config();
        qwen.model_type = "qwen2".into();
        let mut wide_heads = tiny_config();
        wide_heads.head_dim = Some(32);
        configs.extend([tied, biased, qwen, wide_heads]);
        for cfg in configs {
            let vs = nn::VarStore::new(Device::Cpu);
            let _m = Llama::new(&vs, &cfg, WeightInit::Zeros);
            let made: std::collections::BTreeMap<String, Vec<i64>> = vs.variables().into_iter().map(|(n, t)| (n, t.size())).collect();
            let declared: std::collections::BTreeMap<String, Vec<i64>> = cfg.parameter_shapes().into_iter().collect();
            assert_eq!(made, declared, "{cfg:?}");
            assert_eq!(made.values().map(|s| s.iter().product::<i64>()).sum::<i64>() as usize, cfg.num_parameters());
        }
    }

    #[test]
    fn llama3_rope_scaling_matches_reference_values() {
        // Values from transformers' `_compute_llama3_parameters` for head_dim 8, theta 500000,
        // factor 8, low 1, high 4, original context 8192 (computed by hand from the formula).
        let mut cfg = tiny_config();
        cfg.hidden_size = 32;
        cfg.num_attention_heads = 4;
        cfg.rope_theta = Some(500000.0);
        cfg.rope_scaling = Some(crate::config::RopeScaling { rope_type: Some("llama3".into()), factor: Some(8.0), low_freq_factor: Some(1.0), high_freq_factor: Some(4.0), original_max_position_embeddings: Some(8192.0), rope_theta: None });
        let f = inv_frequencies(&cfg);
        let base: Vec<f64> = (0..4).map(|i| 1.0 / 500000f64.powf(2.0 * i as f64 / 8.0)).collect();
        // Wavelengths 2*pi/f: 6.3 and 167 (< 8192/4: kept), 4443 (between 2048 and 8192:
        // smoothly interpolated), 118,143 (> 8192: divided by the factor).
        let wavelen = 2.0 * PI / base[2];
        let smooth = (8192.0 / wavelen - 1.0) / 3.0;
        let mid = (1.0 - smooth) * base[2] / 8.0 + smooth * base[2];
        let rel = |a: f32, b: f64| ((a as f64 - b) / b).abs();
        assert!(rel(f[0], base[0]) < 1e-6);
        assert!(rel(f[1], base[1]) < 1e-6);
        assert!(rel(f[2], mid) < 1e-6 && rel(f[2], base[2]) > 0.1);
        assert!(rel(f[3], base[3] / 8.0) < 1e-6);
    }
}
