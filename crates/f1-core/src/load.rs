//! The one way every phase loads a model: from a Hugging Face safetensors directory (single
//! file or sharded with `model.safetensors.index.json`), a GGUF file, or a hub id. Whatever the
//! source, weights land in a [`Llama`] built on a `VarStore` under Hugging Face names, with the
//! tokenizer and chat template that belong to the model. Foreign names (GGUF's `blk.N.attn_q`)
//! are translated here, at the loader's edge, and llama.cpp's Q/K row permutation is undone.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use tch::{nn, Kind, Tensor};

use crate::chat::ChatTemplate;
use crate::config::{Config, ModelOptions, RopeScaling, TokenIds};
use crate::error::{Error, Result};
use crate::gguf::{GgufFile, GgufValue};
use crate::llama::{Llama, WeightInit};
use crate::tokenizer::{GgufTokenizerSpec, Tokenizer};

/// Where a model's weights live.
#[derive(Debug, Clone, PartialEq)]
pub enum WeightFiles {
    /// Safetensors shards of a Hugging Face directory (one or more).
    Safetensors(Vec<PathBuf>),
    /// A single GGUF file carrying config, tokenizer and weights.
    Gguf(PathBuf),
}

/// A model loaded and ready to run: the network, its var store, tokenizer and chat template.
pub struct LoadedModel {
    /// The network.
    pub model: Llama,
    /// The var store owning the weights (optimizers and savers work on it).
    pub vs: nn::VarStore,
    /// The model's tokenizer.
    pub tokenizer: Tokenizer,
    /// The chat template the model was trained with (or a named fallback).
    pub chat_template: ChatTemplate,
    /// Where the weights came from.
    pub weights: WeightFiles,
    /// The Jinja source of the chat template in use (hashed into run manifests).
    pub chat_template_source: String,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel").field("weights", &self.weights).field("config", self.model.config()).finish()
    }
}

/// The default base model, SmolLM2-135M-Instruct as GGUF, where `cargo xtask setup` puts it:
/// `models/base/` under `F1_ROOT` (set by xtask) or the current directory.
pub fn default_base_model() -> PathBuf {
    let root = std::env::var_os("F1_ROOT").map(PathBuf::from).unwrap_or_default();
    root.join("models/base/SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// Load a model given a path (a directory with `config.json`, or a `.gguf` file) or a hub id
/// (`org/name[@revision]`, downloaded with hf-hub). `chat_template` overrides the model's own
/// template with a named fallback ("chatml", "llama2", "llama3", "mistral", "alpaca").
pub fn load_model(spec: &str, opts: &ModelOptions, chat_template: Option<&str>) -> Result<LoadedModel> {
    let path = PathBuf::from(spec);
    let path = if path.exists() {
        path
    } else if crate::hub::looks_like_hub_id(spec) {
        crate::hub::download(spec)?
    } else {
        return Err(Error::io(&path, std::io::Error::new(std::io::ErrorKind::NotFound, "model path does not exist (hint: run `cargo xtask setup` for the default model, or pass a model directory, a .gguf file or a hub id like org/name)")));
    };
    let _span = tracing::info_span!("load_model", path = %path.display()).entered();
    let started = std::time::Instant::now();
    let loaded = if path.is_file() {
        load_gguf(&path, opts, chat_template)?
    } else {
        load_hf_dir(&path, opts, chat_template)?
    };
    tracing::info!(params = loaded.model.config().num_parameters(), secs = started.elapsed().as_secs_f32(), "model loaded");
    Ok(loaded)
}

/// The tokenizer and chat template of a local model (a `.gguf` file or a Hugging Face model
/// directory) without its weights: what counting the tokens of a dataset needs. A GGUF file's
/// metadata is read and validated as [`load_model`] reads it.
pub fn load_tokenizer(path: &Path, chat_template: Option<&str>) -> Result<(Tokenizer, ChatTemplate)> {
    if path.is_file() {
        let g = GgufFile::open(path)?;
        let tokenizer = Tokenizer::from_gguf_spec(gguf_tokenizer_spec(&g)?, &format!("GGUF metadata of {}", path.display()))?;
        let template = g.get("tokenizer.chat_template").and_then(GgufValue::as_str).map(String::from);
        let (t, _) = choose_template(template, chat_template, &tokenizer)?;
        Ok((tokenizer, t))
    } else if path.is_dir() {
        let tokenizer = Tokenizer::from_file(&path.join("tokenizer.json"))?;
        let (t, _) = choose_template(read_hf_chat_template(path)?, chat_template, &tokenizer)?;
        Ok((tokenizer, t))
    } else {
        Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "no model here (hint: `cargo xtask setup` fetches the default model)")))
    }
}

/// Build the network on a fresh var store in the requested device and dtype (zeros, about to be
/// overwritten by a checkpoint).
fn build(cfg: &Config, opts: &ModelOptions) -> (nn::VarStore, Llama) {
    let mut vs = nn::VarStore::new(opts.device);
    vs.set_kind(opts.dtype);
    let model = Llama::new(&vs, cfg, WeightInit::Zeros);
    (vs, model)
}

/// Copies named tensors into a var store's variables, checking shapes and completeness.
struct Filler {
    vars: HashMap<String, Tensor>,
    missing: BTreeSet<String>,
    tied: bool,
    origin: PathBuf,
}

impl Filler {
    fn new(vs: &nn::VarStore, cfg: &Config, origin: &Path) -> Self {
        let vars = vs.variables();
        let missing = vars.keys().cloned().collect();
        Filler { vars, missing, tied: cfg.tie_word_embeddings, origin: origin.to_path_buf() }
    }

    /// Copy `src` into the variable `name` (casting to the var's dtype and device).
    fn put(&mut self, name: &str, src: &Tensor) -> Result<()> {
        let Some(var) = self.vars.get_mut(name) else {
            // A tied head and RoPE buffers are expected in some checkpoints; anything else is
            // worth a warning (a checkpoint for a different architecture, say).
            let expected = (self.tied && name == "lm_head.weight") || name.ends_with("rotary_emb.inv_freq");
            if !expected {
                tracing::warn!(tensor = name, file = %self.origin.display(), "tensor not used by the model");
            }
            return Ok(());
        };
        if var.size() != src.size() {
            return Err(Error::Tensor { path: self.origin.clone(), name: name.into(), reason: format!("shape {:?} does not match the config's {:?}", src.size(), var.size()) });
        }
        tch::no_grad(|| var.copy_(src));
        self.missing.remove(name);
        Ok(())
    }

    fn finish(self) -> Result<()> {
        match self.missing.iter().next() {
            None => Ok(()),
            Some(first) => Err(Error::Tensor { path: self.origin, name: first.clone(), reason: format!("missing from the checkpoint ({} tensors missing in all)", self.missing.len()) }),
        }
    }
}

fn load_hf_dir(dir: &Path, opts: &ModelOptions, template_override: Option<&str>) -> Result<LoadedModel> {
    let cfg = Config::from_file(&dir.join("config.json"))?;
    let shards = safetensors_files(dir)?;
    let mut declared = HashMap::new();
    for shard in &shards {
        declared.extend(safetensors_shapes(shard)?);
    }
    check_declared(&cfg, &declared, dir)?;
    let (vs, model) = build(&cfg, opts);
    let mut filler = Filler::new(&vs, &cfg, dir);
    for shard in &shards {
        let bytes = std::fs::read(shard).map_err(|e| Error::io(shard, e))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| Error::Tensor { path: shard.clone(), name: "(header)".into(), reason: format!("not a valid safetensors file: {e}") })?;
        let mut tensors = st.tensors();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, view) in tensors {
            let kind = safetensors_kind(view.dtype()).ok_or_else(|| Error::Tensor { path: shard.clone(), name: name.clone(), reason: format!("unsupported dtype {:?} (expected F32, F16 or BF16)", view.dtype()) })?;
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            let tensor = Tensor::f_from_data_size(view.data(), &shape, kind)?;
            filler.put(&name, &tensor)?;
        }
    }
    filler.finish()?;
    let tok_path = dir.join("tokenizer.json");
    let tokenizer = Tokenizer::from_file(&tok_path)?;
    let model_template = read_hf_chat_template(dir)?;
    let (chat_template, chat_template_source) = choose_template(model_template, template_override, &tokenizer)?;
    Ok(LoadedModel { model, vs, tokenizer, chat_template, weights: WeightFiles::Safetensors(shards), chat_template_source })
}

/// Check that a checkpoint declares every parameter of `cfg` with its shape (`declared`: Hugging
/// Face names and shapes read from the file's header alone), before the model's variables are
/// allocated: a corrupt size (a `vocab_size` of 4 billion beside a 10-row embedding, a Q
/// projection of the wrong rank) is refused here, naming the tensor, instead of asking libtorch
/// for terabytes or reshaping by the wrong head count.
fn check_declared(cfg: &Config, declared: &HashMap<String, Vec<i64>>, origin: &Path) -> Result<()> {
    let mut missing = vec![];
    for (name, shape) in cfg.parameter_shapes() {
        match declared.get(&name) {
            None => missing.push(name),
            Some(found) if *found != shape => return Err(Error::Tensor { path: origin.into(), name, reason: format!("shape {found:?} does not match the config's {shape:?}") }),
            Some(_) => {}
        }
    }
    match missing.first() {
        None => Ok(()),
        Some(first) => Err(Error::Tensor { path: origin.into(), name: first.clone(), reason: format!("missing from the checkpoint ({} tensors missing in all)", missing.len()) }),
    }
}

/// The tensor names and shapes a safetensors file declares, read from its header alone (the
/// 8-byte length and the JSON that follows), the length checked against the file's size.
fn safetensors_shapes(path: &Path) -> Result<HashMap<String, Vec<i64>>> {
    use std::io::Read;
    let bad = |reason: String| Error::Tensor { path: path.into(), name: "(header)".into(), reason: format!("not a valid safetensors file: {reason}") };
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|e| bad(format!("no header length ({e})")))?;
    let header_len = u64::from_le_bytes(len);
    // The format caps the header at 100 MB.
    if header_len > 100_000_000 || header_len > file_len.saturating_sub(8) {
        return Err(bad(format!("header length {header_len} does not fit a file of {file_len} bytes")));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(|e| bad(format!("truncated header ({e})")))?;
    let json: HashMap<String, serde_json::Value> = serde_json::from_slice(&header).map_err(|e| bad(format!("header is not JSON: {e}")))?;
    let mut shapes = HashMap::new();
    for (name, entry) in json.into_iter().filter(|(name, _)| name != "__metadata__") {
        let shape: Option<Vec<i64>> = entry.get("shape").and_then(|s| s.as_array()).and_then(|dims| dims.iter().map(|d| d.as_i64()).collect());
        let shape = shape.ok_or_else(|| bad(format!("tensor `{name}` has no shape of integers")))?;
        shapes.insert(name, shape);
    }
    Ok(shapes)
}

/// The libtorch kind of a safetensors floating-point dtype.
pub fn safetensors_kind(dtype: safetensors::Dtype) -> Option<Kind> {
    use safetensors::Dtype;
    match dtype {
        Dtype::F32 => Some(Kind::Float),
        Dtype::F16 => Some(Kind::Half),
        Dtype::BF16 => Some(Kind::BFloat16),
        Dtype::F64 => Some(Kind::Double),
        _ => None,
    }
}

/// The safetensors files of a model directory: the shards named by the index, else
/// `model.safetensors`.
pub fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Config { path: index.clone(), reason: format!("not valid JSON: {e}") })?;
        let map = json.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| Error::Config { path: index.clone(), reason: "no `weight_map` object".into() })?;
        let files: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    Err(Error::Config { path: dir.into(), reason: "no model.safetensors or model.safetensors.index.json in this directory (PyTorch .bin checkpoints are not read: convert them to safetensors)".into() })
}

/// The model's own chat template: `chat_template.jinja` (transformers 5) or the
/// `chat_template` field of `tokenizer_config.json`.
fn read_hf_chat_template(dir: &Path) -> Result<Option<String>> {
    let jinja = dir.join("chat_template.jinja");
    if jinja.exists() {
        return std::fs::read_to_string(&jinja).map(Some).map_err(|e| Error::io(&jinja, e));
    }
    let cfg_path = dir.join("tokenizer_config.json");
    if !cfg_path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Config { path: cfg_path.clone(), reason: format!("not valid JSON: {e}") })?;
    Ok(match json.get("chat_template") {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        // A list of named templates: use the one called "default".
        Some(serde_json::Value::Array(list)) => list.iter().find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default")).and_then(|t| t.get("template")).and_then(|t| t.as_str()).map(String::from),
        _ => None,
    })
}

fn choose_template(model_template: Option<String>, override_name: Option<&str>, tok: &Tokenizer) -> Result<(ChatTemplate, String)> {
    let (bos, eos) = (tok.bos_token(), tok.eos_token());
    match (override_name, model_template) {
        (Some(name), _) => {
            let t = ChatTemplate::fallback(name, bos, eos)?;
            Ok((t, format!("fallback:{name}")))
        }
        (None, Some(src)) => Ok((ChatTemplate::new(&src, "model", bos, eos)?, src)),
        (None, None) => {
            tracing::warn!("the model has no chat template; using the ChatML fallback");
            Ok((ChatTemplate::fallback("chatml", bos, eos)?, "fallback:chatml".into()))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// GGUF

fn gguf_err(path: &Path, reason: String) -> Error {
    Error::Config { path: path.into(), reason }
}

/// Map GGUF metadata (`general.architecture` and `<arch>.*` keys) to the Hugging Face config.
pub fn gguf_config(g: &GgufFile) -> Result<Config> {
    let path = &g.path;
    let arch = g.get("general.architecture").and_then(GgufValue::as_str).ok_or_else(|| gguf_err(path, "no general.architecture".into()))?.to_string();
    let model_type = match arch.as_str() {
        "llama" => "llama",
        "mistral" => "mistral",
        "qwen2" => "qwen2",
        other => return Err(gguf_err(path, format!("architecture `{other}` is not supported (supported: llama, mistral, qwen2)"))),
    };
    let key = |k: &str| format!("{arch}.{k}");
    let uint = |k: &str| g.get(&key(k)).and_then(GgufValue::as_u64).map(|v| v as usize);
    let float = |k: &str| g.get(&key(k)).and_then(GgufValue::as_f64);
    let need = |k: &str| uint(k).ok_or_else(|| gguf_err(path, format!("metadata key `{}` is missing", key(k))));
    let n_vocab = match uint("vocab_size") {
        Some(n) => n,
        None => g.get("tokenizer.ggml.tokens").and_then(GgufValue::as_array).map(<[GgufValue]>::len).ok_or_else(|| gguf_err(path, "neither vocab_size nor tokenizer.ggml.tokens is present".into()))?,
    };
    let hidden = need("embedding_length")?;
    let n_head = need("attention.head_count")?;
    let head_dim = uint("attention.key_length").or_else(|| uint("rope.dimension_count"));
    let mut rope_scaling = None;
    match g.get(&key("rope.scaling.type")).and_then(GgufValue::as_str) {
        Some("linear") => rope_scaling = Some(RopeScaling { rope_type: Some("linear".into()), factor: float("rope.scaling.factor"), ..Default::default() }),
        Some("none") | None => {}
        Some(other) => return Err(gguf_err(path, format!("rope scaling `{other}` is not supported"))),
    }
    if g.tensor("rope_freqs.weight").is_some() {
        // Llama-3.1+ GGUFs store the per-frequency divisors instead of the scaling parameters;
        // the largest divisor is the factor, the rest are Llama-3's defaults (low 1, high 4).
        let (divisors, _) = g.dequantize("rope_freqs.weight")?;
        let factor = divisors.iter().cloned().fold(1.0f32, f32::max) as f64;
        rope_scaling = Some(RopeScaling { rope_type: Some("llama3".into()), factor: Some(factor), low_freq_factor: Some(1.0), high_freq_factor: Some(4.0), original_max_position_embeddings: Some(8192.0), rope_theta: None });
    }
    let tok_id = |k: &str| g.get(k).and_then(GgufValue::as_u64).map(|v| v as u32);
    let cfg = Config {
        model_type: model_type.into(),
        vocab_size: n_vocab,
        hidden_size: hidden,
        intermediate_size: need("feed_forward_length")?,
        num_hidden_layers: need("block_count")?,
        num_attention_heads: n_head,
        num_key_value_heads: Some(uint("attention.head_count_kv").unwrap_or(n_head)),
        head_dim: head_dim.filter(|&d| Some(d) != hidden.checked_div(n_head)),
        hidden_act: "silu".into(),
        max_position_embeddings: uint("context_length").unwrap_or(2048),
        rms_norm_eps: float("attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
        rope_theta: Some(float("rope.freq_base").unwrap_or(10_000.0)),
        rope_scaling,
        rope_parameters: None,
        tie_word_embeddings: g.tensor("output.weight").is_none(),
        attention_bias: None,
        mlp_bias: false,
        sliding_window: uint("attention.sliding_window"),
        use_sliding_window: None,
        bos_token_id: tok_id("tokenizer.ggml.bos_token_id"),
        eos_token_id: tok_id("tokenizer.ggml.eos_token_id").map(TokenIds::One),
        pad_token_id: tok_id("tokenizer.ggml.padding_token_id"),
    };
    cfg.validate().map_err(|reason| gguf_err(path, reason))?;
    Ok(cfg)
}

/// The Hugging Face name of a GGUF tensor (`blk.3.attn_q.weight` -> `model.layers.3.self_attn.q_proj.weight`).
pub fn hf_name(gguf_name: &str) -> Option<String> {
    let fixed = match gguf_name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(name) = fixed {
        return Some(name.into());
    }
    let rest = gguf_name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (part, suffix) = rest.split_once('.')?;
    let module = match part {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{module}.{suffix}"))
}

/// Undo llama.cpp's Q/K row permutation (it interleaves the two rotary halves of each head).
/// `w` is (n_head * head_dim, n_in) or a bias (n_head * head_dim,).
pub fn unpermute_qk(w: &Tensor, n_head: i64) -> Tensor {
    let shape = w.size();
    let n_out = shape[0];
    let n_in = if shape.len() == 2 { shape[1] } else { 1 };
    w.reshape([n_head, n_out / n_head / 2, 2, n_in]).transpose(1, 2).reshape(shape.as_slice())
}

/// Apply llama.cpp's permutation (the inverse of [`unpermute_qk`]); used when writing GGUF.
pub fn permute_qk(w: &Tensor, n_head: i64) -> Tensor {
    let shape = w.size();
    let n_out = shape[0];
    let n_in = if shape.len() == 2 { shape[1] } else { 1 };
    w.reshape([n_head, 2, n_out / n_head / 2, n_in]).transpose(1, 2).reshape(shape.as_slice())
}

/// The tokenizer spec in a GGUF's `tokenizer.ggml.*` metadata.
pub fn gguf_tokenizer_spec(g: &GgufFile) -> Result<GgufTokenizerSpec> {
    let strings = |k: &str| -> Option<Vec<String>> { g.get(k)?.as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect()) };
    let tok_id = |k: &str| g.get(k).and_then(GgufValue::as_u64).map(|v| v as u32);
    let flag = |k: &str| g.get(k).and_then(GgufValue::as_bool);
    let model = g.get("tokenizer.ggml.model").and_then(GgufValue::as_str).ok_or_else(|| Error::Tokenizer { origin: format!("GGUF metadata of {}", g.path.display()), reason: "no tokenizer.ggml.model key".into() })?.to_string();
    let tokens = strings("tokenizer.ggml.tokens").ok_or_else(|| Error::Tokenizer { origin: format!("GGUF metadata of {}", g.path.display()), reason: "no tokenizer.ggml.tokens".into() })?;
    Ok(GgufTokenizerSpec {
        add_bos: flag("tokenizer.ggml.add_bos_token").unwrap_or(model == "llama"),
        add_eos: flag("tokenizer.ggml.add_eos_token").unwrap_or(false),
        pre: g.get("tokenizer.ggml.pre").and_then(GgufValue::as_str).map(String::from),
        scores: g.get("tokenizer.ggml.scores").and_then(GgufValue::as_array).map(|a| a.iter().filter_map(|v| v.as_f64().map(|f| f as f32)).collect()),
        token_types: g.get("tokenizer.ggml.token_type").and_then(GgufValue::as_array).map(|a| a.iter().filter_map(|v| v.as_f64().map(|f| f as i32)).collect()),
        merges: strings("tokenizer.ggml.merges"),
        bos_id: tok_id("tokenizer.ggml.bos_token_id"),
        eos_id: tok_id("tokenizer.ggml.eos_token_id"),
        unk_id: tok_id("tokenizer.ggml.unknown_token_id"),
        pad_id: tok_id("tokenizer.ggml.padding_token_id"),
        model,
        tokens,
    })
}

fn load_gguf(path: &Path, opts: &ModelOptions, template_override: Option<&str>) -> Result<LoadedModel> {
    let g = GgufFile::open(path)?;
    let cfg = gguf_config(&g)?;
    let declared: HashMap<String, Vec<i64>> = g.tensors.iter().filter_map(|t| Some((hf_name(&t.name)?, t.shape()))).collect();
    check_declared(&cfg, &declared, path)?;
    let (vs, model) = build(&cfg, opts);
    let mut filler = Filler::new(&vs, &cfg, path);
    let permute = cfg.model_type != "qwen2";
    for info in &g.tensors {
        let Some(name) = hf_name(&info.name) else {
            if info.name != "rope_freqs.weight" {
                tracing::warn!(tensor = %info.name, "GGUF tensor not used by the model");
            }
            continue;
        };
        let (values, shape) = g.dequantize(&info.name)?;
        let mut tensor = Tensor::from_slice(&values).reshape(shape.as_slice());
        if permute && name.contains("self_attn.q_proj") {
            tensor = unpermute_qk(&tensor, cfg.num_attention_heads as i64);
        } else if permute && name.contains("self_attn.k_proj") {
            tensor = unpermute_qk(&tensor, cfg.num_kv_heads() as i64);
        }
        filler.put(&name, &tensor)?;
    }
    filler.finish()?;
    let origin = format!("GGUF metadata of {}", path.display());
    let tokenizer = Tokenizer::from_gguf_spec(gguf_tokenizer_spec(&g)?, &origin)?;
    let template = g.get("tokenizer.chat_template").and_then(GgufValue::as_str).map(String::from);
    let (chat_template, chat_template_source) = choose_template(template, template_override, &tokenizer)?;
    Ok(LoadedModel { model, vs, tokenizer, chat_template, weights: WeightFiles::Gguf(path.into()), chat_template_source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_names_map_to_hugging_face_names() {
        assert_eq!(hf_name("blk.12.attn_q.weight").as_deref(), Some("model.layers.12.self_attn.q_proj.weight"));
        assert_eq!(hf_name("blk.0.ffn_down.weight").as_deref(), Some("model.layers.0.mlp.down_proj.weight"));
        assert_eq!(hf_name("blk.0.attn_k.bias").as_deref(), Some("model.layers.0.self_attn.k_proj.bias"));
        assert_eq!(hf_name("token_embd.weight").as_deref(), Some("model.embed_tokens.weight"));
        assert_eq!(hf_name("rope_freqs.weight"), None);
    }

    #[test]
    fn qk_permutation_round_trips_and_interleaves_halves() {
        // One head of dim 4 over 1 input: HF rows [a0 a1 b0 b1] (halves a, b) become llama.cpp's
        // interleaved [a0 b0 a1 b1].
        let w = Tensor::from_slice(&[0f32, 1., 2., 3.]).reshape([4, 1]);
        let p = permute_qk(&w, 1);
        assert_eq!(Vec::<f32>::try_from(p.flatten(0, -1)).expect("vec"), vec![0., 2., 1., 3.]);
        let w = Tensor::randn([2 * 8, 5], (Kind::Float, tch::Device::Cpu));
        assert!(unpermute_qk(&permute_qk(&w, 2), 2).equal(&w));
    }
}
