//! Low-rank adaptation (LoRA, Hu et al. 2021, arXiv:2106.09685) as Hugging Face PEFT implements
//! it for `nn.Linear`: `y = W x + (alpha / r) * B A dropout(x)` with `A` (r, in) drawn
//! Kaiming-uniform (bound `1/sqrt(in)`, PEFT's `kaiming_uniform_(a=sqrt(5))`) and `B` (out, r)
//! zeros, so a fresh adapter changes nothing; rsLoRA (Kalajdzievski 2023) scales by
//! `alpha / sqrt(r)` instead. Adapters live in their own var store (the optimizer sees only
//! them) and are saved exactly as PEFT saves them: `adapter_model.safetensors` with keys
//! `base_model.model.<module>.lora_A.weight`, and `adapter_config.json`, so PEFT loads ours and
//! we load PEFT's. Merging adds `scale * B A` into the base weight; unmerging subtracts it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use f1_study::fs::write_atomic_with;
use tch::{nn, Kind, Tensor};

use crate::error::{Error, Result};
use crate::llama::Llama;

/// PEFT's prefix for LoRA weights of a causal LM (`PeftModelForCausalLM.base_model.model`).
pub const PEFT_PREFIX: &str = "base_model.model.";
/// File names PEFT uses.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
/// File names PEFT uses.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";

/// Ceiling on a LoRA rank read from a file (no layer of a supported model is wider).
const MAX_RANK: usize = 1 << 16;

/// Which projections get an adapter: a list of module names (`q_proj`, `v_proj`, ...) or
/// PEFT's shorthand `"all-linear"` (every projection of the blocks, not the LM head).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    /// Module names matched against the last component of each projection's name.
    List(Vec<String>),
    /// `"all-linear"`.
    Shorthand(String),
}

impl TargetModules {
    fn matches(&self, module: &str) -> bool {
        let last = module.rsplit('.').next().unwrap_or(module);
        match self {
            TargetModules::List(names) => names.iter().any(|n| n == last || module.ends_with(&format!(".{n}"))),
            TargetModules::Shorthand(s) => s == "all-linear",
        }
    }
}

/// LoRA hyper-parameters, with PEFT's `LoraConfig` field names (what `adapter_config.json` holds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Rank.
    pub r: usize,
    /// Scaling numerator.
    pub lora_alpha: f64,
    /// Dropout on the adapter's input during training.
    #[serde(default)]
    pub lora_dropout: f64,
    /// Projections to adapt.
    pub target_modules: TargetModules,
    /// Scale by alpha / sqrt(r) (rsLoRA) instead of alpha / r.
    #[serde(default)]
    pub use_rslora: bool,
    /// Only "none" is supported (biases are not trained).
    #[serde(default = "default_bias")]
    pub bias: String,
}

fn default_bias() -> String {
    "none".into()
}

impl LoraConfig {
    /// The factor applied to `B A x`.
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.lora_alpha / (self.r as f64).sqrt()
        } else {
            self.lora_alpha / self.r as f64
        }
    }

    /// Check values a user could get wrong in a config file.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.r == 0 || self.r > MAX_RANK {
            return Err(format!("r must be in 1..={MAX_RANK}, got {}", self.r));
        }
        if !self.lora_alpha.is_finite() || self.lora_alpha <= 0.0 {
            return Err(format!("lora_alpha = {} must be a positive number", self.lora_alpha));
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return Err(format!("lora_dropout must be in [0, 1), got {}", self.lora_dropout));
        }
        if self.bias != "none" {
            return Err(format!("bias `{}` is not supported (only \"none\")", self.bias));
        }
        if let TargetModules::Shorthand(s) = &self.target_modules {
            if s != "all-linear" {
                return Err(format!("target_modules `{s}`: give a list of module names or \"all-linear\""));
            }
        }
        Ok(())
    }
}

/// The adapter held by one projection.
#[derive(Debug)]
pub struct LoraLayer {
    /// (r, in_features)
    pub a: Tensor,
    /// (out_features, r)
    pub b: Tensor,
    /// alpha / r (or alpha / sqrt(r)).
    pub scale: f64,
    /// Input dropout probability.
    pub dropout: f64,
    /// Dropout active.
    pub training: bool,
    /// Whether `scale * B A` is currently added into the base weight.
    pub merged: bool,
}

impl LoraLayer {
    /// `scale * B A dropout(x)` for x (..., in).
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        let xs = if self.training && self.dropout > 0.0 { xs.dropout(self.dropout, true) } else { xs.shallow_clone() };
        xs.linear::<Tensor>(&self.a.to_kind(xs.kind()), None).linear::<Tensor>(&self.b.to_kind(xs.kind()), None) * self.scale
    }

    /// The weight update `scale * B A` (out, in) in fp32.
    pub fn delta(&self) -> Tensor {
        self.b.to_kind(Kind::Float).matmul(&self.a.to_kind(Kind::Float)) * self.scale
    }
}

fn path_of<'a>(vs: &'a nn::VarStore, module: &str) -> nn::Path<'a> {
    module.split('.').fold(vs.root(), |p, part| p / part)
}

/// Give every targeted projection of `model` a fresh adapter whose parameters are created in
/// `lora_vs` (same device as the model; fp32 master weights). Returns the adapted module names.
pub fn attach(model: &mut Llama, lora_vs: &nn::VarStore, cfg: &LoraConfig) -> Result<Vec<String>> {
    cfg.validate().map_err(|e| Error::Invalid(format!("LoRA config: {e}")))?;
    let dims = |lin: &crate::llama::Linear| match &lin.quantized {
        Some(q) => (q.shape()[0], q.shape()[1]),
        None => (lin.weight.size()[0], lin.weight.size()[1]),
    };
    // The rank sizes two allocations per layer; one above a layer's smaller side cannot add
    // rank. Every targeted layer is checked before any adapter is created.
    for (name, lin) in model.linears_mut() {
        let (out_dim, in_dim) = dims(&*lin);
        if cfg.target_modules.matches(&name) && cfg.r as i64 > in_dim.min(out_dim) {
            return Err(Error::Invalid(format!("LoRA r = {} exceeds {name}'s dimensions ({out_dim} x {in_dim}); choose r at most {}", cfg.r, in_dim.min(out_dim))));
        }
    }
    let mut adapted = vec![];
    for (name, lin) in model.linears_mut() {
        if !cfg.target_modules.matches(&name) {
            continue;
        }
        let (out_dim, in_dim) = dims(&*lin);
        let p = path_of(lora_vs, &name);
        let bound = 1.0 / (in_dim as f64).sqrt();
        let a = (&p / "lora_A").var("weight", &[cfg.r as i64, in_dim], nn::Init::Uniform { lo: -bound, up: bound });
        let b = (&p / "lora_B").var("weight", &[out_dim, cfg.r as i64], nn::Init::Const(0.0));
        lin.lora = Some(LoraLayer { a, b, scale: cfg.scale(), dropout: cfg.lora_dropout, training: false, merged: false });
        adapted.push(name);
    }
    if adapted.is_empty() {
        return Err(Error::Invalid(format!("LoRA target_modules {:?} match no projection (names are q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, or \"all-linear\")", cfg.target_modules)));
    }
    Ok(adapted)
}

/// Add every adapter into its base weight (inference without the adapter's extra matmuls).
/// Quantized bases cannot absorb a delta; use [`merged_weights`] to export those.
pub fn merge(model: &mut Llama) -> Result<()> {
    for (name, lin) in model.linears_mut() {
        let Some(lora) = lin.lora.as_mut() else { continue };
        if lora.merged {
            continue;
        }
        if lin.quantized.is_some() {
            return Err(Error::Invalid(format!("{name}: cannot merge into an NF4 base in place; export with merged_weights instead")));
        }
        let delta = lora.delta().to_kind(lin.weight.kind());
        tch::no_grad(|| {
            let _ = lin.weight.g_add_(&delta);
        });
        lora.merged = true;
    }
    Ok(())
}

/// Undo [`merge`].
pub fn unmerge(model: &mut Llama) {
    for (_, lin) in model.linears_mut() {
        let Some(lora) = lin.lora.as_mut() else { continue };
        if !lora.merged {
            continue;
        }
        let delta = lora.delta().to_kind(lin.weight.kind());
        tch::no_grad(|| {
            let _ = lin.weight.g_sub_(&delta);
        });
        lora.merged = false;
    }
}

/// The full set of base weights with every adapter folded in, under Hugging Face names, in
/// `kind` (NF4 bases are dequantized first). What [`save_merged`] writes.
pub fn merged_weights(model: &mut Llama, base_vs: &nn::VarStore, kind: Kind) -> Vec<(String, Tensor)> {
    let _guard = tch::no_grad_guard();
    let mut overrides = std::collections::HashMap::new();
    for (name, lin) in model.linears_mut() {
        let needs = lin.quantized.is_some() || lin.lora.as_ref().is_some_and(|l| !l.merged);
        if needs {
            let mut w = lin.base_weight(Kind::Float).detach();
            if let Some(l) = lin.lora.as_ref().filter(|l| !l.merged) {
                w = w + l.delta();
            }
            overrides.insert(format!("{name}.weight"), w.to_kind(kind));
        }
    }
    let mut out: Vec<(String, Tensor)> = base_vs
        .variables()
        .into_iter()
        .map(|(name, t)| {
            let t = overrides.remove(&name).unwrap_or_else(|| t.detach().to_kind(kind));
            (name, t)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Save the adapters in `lora_vs` as PEFT does, into `dir`.
pub fn save(dir: &Path, lora_vs: &nn::VarStore, cfg: &LoraConfig, base_model: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tensors: Vec<(String, Tensor)> = lora_vs.variables().into_iter().map(|(n, t)| (format!("{PEFT_PREFIX}{n}"), t.detach().to_kind(Kind::Float).contiguous())).collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let weights = dir.join(ADAPTER_WEIGHTS);
    write_atomic_with(&weights, |tmp| Tensor::write_safetensors(&tensors, tmp).map_err(Error::from))?;
    let mut json = serde_json::to_value(cfg).map_err(|e| Error::Invalid(e.to_string()))?;
    let extra = serde_json::json!({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model,
        "inference_mode": true, "fan_in_fan_out": false, "init_lora_weights": true,
        "modules_to_save": null, "layers_to_transform": null, "layers_pattern": null,
        "rank_pattern": {}, "alpha_pattern": {}, "use_dora": false, "revision": null,
    });
    if let (Some(obj), Some(extra)) = (json.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            obj.insert(k.clone(), v.clone());
        }
    }
    let config = dir.join(ADAPTER_CONFIG);
    let text = serde_json::to_string_pretty(&json).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(f1_study::fs::write_atomic(&config, text.as_bytes())?)
}

/// Read a PEFT `adapter_config.json`.
pub fn read_config(dir: &Path) -> Result<LoraConfig> {
    let path = dir.join(ADAPTER_CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Config { path: path.clone(), reason: format!("not valid JSON: {e}") })?;
    if let Some(t) = json.get("peft_type").and_then(|v| v.as_str()) {
        if t != "LORA" {
            return Err(Error::Config { path, reason: format!("peft_type {t} is not supported (only LORA)") });
        }
    }
    if json.get("use_dora").and_then(|v| v.as_bool()) == Some(true) {
        return Err(Error::Config { path, reason: "DoRA adapters are not supported".into() });
    }
    let cfg: LoraConfig = serde_json::from_value(json).map_err(|e| Error::Config { path: path.clone(), reason: format!("not a LoRA adapter config: {e}") })?;
    cfg.validate().map_err(|reason| Error::Config { path, reason })?;
    Ok(cfg)
}

/// Load a PEFT LoRA adapter from `dir` onto `model`: attach adapters as its config says and
/// fill them from `adapter_model.safetensors`. Returns the adapters' var store and config.
pub fn load(dir: &Path, model: &mut Llama) -> Result<(nn::VarStore, LoraConfig)> {
    let cfg = read_config(dir)?;
    let vs = nn::VarStore::new(model.device());
    attach(model, &vs, &cfg)?;
    let path: PathBuf = dir.join(ADAPTER_WEIGHTS);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| Error::Tensor { path: path.clone(), name: "(header)".into(), reason: format!("not a valid safetensors file: {e}") })?;
    let mut vars = vs.variables();
    // Header order is a hash map's: sort so a mismatch always names the same (first) tensor.
    let mut tensors = st.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, view) in tensors {
        // PEFT strips the adapter name ("default") when saving; accept it if present anyway.
        let name = key.strip_prefix(PEFT_PREFIX).unwrap_or(&key).replace(".default.", ".");
        let Some(var) = vars.get_mut(&name) else {
            return Err(Error::Tensor { path: path.clone(), name: key.clone(), reason: "does not match any adapted module of this model (different base or target_modules?)".into() });
        };
        let kind = crate::load::safetensors_kind(view.dtype()).ok_or_else(|| Error::Tensor { path: path.clone(), name: key.clone(), reason: format!("unsupported dtype {:?}", view.dtype()) })?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        if shape != var.size() {
            return Err(Error::Tensor { path: path.clone(), name: key.clone(), reason: format!("shape {shape:?} does not match the model's {:?} (different base model or r?)", var.size()) });
        }
        let src = Tensor::f_from_data_size(view.data(), &shape, kind)?;
        tch::no_grad(|| var.copy_(&src));
        vars.remove(&name);
    }
    if let Some(name) = vars.keys().next() {
        return Err(Error::Tensor { path, name: format!("{PEFT_PREFIX}{name}"), reason: format!("missing ({} adapter tensors missing in all)", vars.len()) });
    }
    Ok((vs, cfg))
}

/// Quantize the base weight of every block projection to NF4 (QLoRA) and release the full
/// precision copy. Returns (bytes before, bytes after) for the quantized weights.
pub fn quantize_base(model: &mut Llama) -> (usize, usize) {
    let (mut before, mut after) = (0, 0);
    for (_, lin) in model.linears_mut() {
        if lin.quantized.is_some() {
            continue;
        }
        before += lin.weight.numel() * lin.weight.kind().elt_size_in_bytes();
        let q = crate::nf4::Nf4Tensor::quantize(&lin.weight);
        after += q.nbytes();
        // `set_data` swaps the storage under every shallow clone (the var store's too), so
        // the full-precision matrix is actually freed.
        tch::no_grad(|| lin.weight.set_data(&Tensor::empty([0], (lin.weight.kind(), lin.weight.device()))));
        lin.quantized = Some(q);
    }
    (before, after)
}

/// Keep a dequantized copy of every NF4 base weight in `kind` for inference (see
/// [`crate::nf4::Nf4Tensor::cache_dequantized`]); returns the bytes the copies take.
pub fn cache_dequantized_base(model: &mut Llama, kind: Kind) -> usize {
    let mut bytes = 0;
    for (_, lin) in model.linears_mut() {
        if let Some(q) = lin.quantized.as_mut() {
            q.cache_dequantized(kind);
            bytes += q.cache_nbytes();
        }
    }
    bytes
}

/// Export the model with its adapters folded in as a Hugging Face model directory that
/// `transformers.AutoModelForCausalLM.from_pretrained` (and [`crate::load_model`]) loads:
/// `config.json`, `model.safetensors` in `kind`, `tokenizer.json`, `tokenizer_config.json`
/// (with the chat template, unless it was one of our named fallbacks).
pub fn save_merged(dir: &Path, loaded: &mut crate::LoadedModel, kind: Kind) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let weights = merged_weights(&mut loaded.model, &loaded.vs, kind);
    let path = dir.join("model.safetensors");
    write_atomic_with(&path, |tmp| Tensor::write_safetensors(&weights, tmp).map_err(Error::from))?;
    let cfg = loaded.model.config();
    let mut json = serde_json::to_value(cfg).map_err(|e| Error::Invalid(e.to_string()))?;
    if let Some(obj) = json.as_object_mut() {
        obj.insert("architectures".into(), serde_json::json!([cfg.architecture()]));
        obj.insert("torch_dtype".into(), serde_json::json!(match kind { Kind::BFloat16 => "bfloat16", Kind::Half => "float16", _ => "float32" }));
    }
    let write_json = |name: &str, value: &serde_json::Value| -> Result<()> {
        let p = dir.join(name);
        let text = serde_json::to_string_pretty(value).map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(f1_study::fs::write_atomic(&p, text.as_bytes())?)
    };
    write_json("config.json", &json)?;
    loaded.tokenizer.save(&dir.join("tokenizer.json"))?;
    let mut tok_cfg = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": loaded.tokenizer.bos_token(),
        "eos_token": loaded.tokenizer.eos_token(),
        "add_bos_token": loaded.tokenizer.add_bos(),
    });
    if !loaded.chat_template_source.starts_with("fallback:") {
        tok_cfg["chat_template"] = serde_json::json!(loaded.chat_template_source);
    }
    write_json("tokenizer_config.json", &tok_cfg)
}
