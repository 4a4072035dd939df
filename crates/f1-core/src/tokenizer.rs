//! Text ⇄ token ids for the models `f1-core` runs: a thin layer over the `tokenizers` crate that
//! loads a Hugging Face `tokenizer.json` (with its sibling `tokenizer_config.json`) or rebuilds the
//! tokenizer a GGUF file describes in its `tokenizer.ggml.*` metadata, and adds BOS/EOS handling
//! and a streaming detokenizer on top.
//!
//! The GGUF rebuild follows the way Hugging Face represents the same vocabularies in
//! `tokenizer.json`, with the behaviour of llama.cpp (the writer of the metadata) where the two
//! differ:
//! - `gpt2` (byte-level BPE): the vocabulary and merges as stored, the pre-tokenizer chosen by
//!   `tokenizer.ggml.pre` (SmolLM's digit splitting, Qwen2's and Llama-3's split regexes, else
//!   GPT-2's), a byte-level decoder.
//! - `llama` (SentencePiece BPE): byte fallback, fused unknowns, merges recovered from the token
//!   scores, a `▁` space prefix as a normalizer and the matching decoder.
//!
//! Tokens typed CONTROL (3) become special added tokens, so `<|im_start|>` in text is one id and
//! is dropped by `decode(.., skip_special = true)`; tokens typed USER_DEFINED (4) are added tokens
//! too, matched whole in text, but not special (llama.cpp always prints them).

use std::collections::HashMap;
use std::path::Path;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{
    AddedToken, DecoderWrapper, ModelWrapper, NormalizerWrapper, PostProcessorWrapper,
    PreTokenizerWrapper, SplitDelimiterBehavior,
};

use crate::error::{Error, Result};

/// GGUF `tokenizer.ggml.token_type` value of an ordinary token.
const TOKEN_TYPE_NORMAL: i32 = 1;
/// GGUF token type of the unknown token.
const TOKEN_TYPE_UNKNOWN: i32 = 2;
/// GGUF token type of control tokens (`<s>`, `<|im_start|>`): special.
const TOKEN_TYPE_CONTROL: i32 = 3;
/// GGUF token type of user-defined tokens: matched whole in text, not special.
const TOKEN_TYPE_USER_DEFINED: i32 = 4;
/// GGUF token type of unused placeholder tokens.
const TOKEN_TYPE_UNUSED: i32 = 5;
/// GGUF token type of SentencePiece byte tokens (`<0x41>`).
const TOKEN_TYPE_BYTE: i32 = 6;

/// The split regex of Qwen2's tokenizer (as in its `tokenizer.json`).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// The split regex of Llama-3's tokenizer (as in its `tokenizer.json`).
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// SentencePiece's visible space.
const SPIECE_SPACE: &str = "\u{2581}";

/// Everything needed to build a tokenizer from GGUF `tokenizer.ggml.*` metadata.
///
/// Token ids are positions in `tokens`; the optional arrays, when present, have one entry per
/// token.
#[derive(Debug, Clone, Default)]
pub struct GgufTokenizerSpec {
    /// `tokenizer.ggml.model`: `"gpt2"` (byte-level BPE) or `"llama"` (SentencePiece BPE).
    pub model: String,
    /// `tokenizer.ggml.pre`: the pre-tokenizer name (`"smollm"`, `"qwen2"`, `"llama-bpe"`, ...).
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`: the vocabulary, id = position.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.scores`: SentencePiece piece scores (used to recover merges).
    pub scores: Option<Vec<f32>>,
    /// `tokenizer.ggml.token_type`: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
    /// 6 byte.
    pub token_types: Option<Vec<i32>>,
    /// `tokenizer.ggml.merges`: BPE merges as `"left right"`, best first.
    pub merges: Option<Vec<String>>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos_id: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos_id: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unk_id: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub pad_id: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`: whether encoding with special tokens prepends BOS.
    pub add_bos: bool,
    /// `tokenizer.ggml.add_eos_token`: whether encoding with special tokens appends EOS.
    pub add_eos: bool,
}

/// A tokenizer: the `tokenizers` pipeline plus the model's BOS/EOS/PAD conventions.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    origin: String,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    pad_id: Option<u32>,
    bos_token: Option<String>,
    eos_token: Option<String>,
    add_bos: bool,
    add_eos: bool,
    vocab_size: usize,
}

impl Tokenizer {
    /// Load a Hugging Face `tokenizer.json`.
    ///
    /// A `tokenizer_config.json` beside it, if present, supplies the BOS/EOS/PAD token strings and
    /// `add_bos_token`/`add_eos_token`. Without it, BOS/EOS are those the file's post-processor
    /// adds around a sequence. Truncation and padding stored in the file are switched off: callers
    /// get every token.
    pub fn from_file(path: &Path) -> Result<Self> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut inner = tokenizers::Tokenizer::from_bytes(text.as_bytes()).map_err(|e| {
            Error::Tokenizer { origin: origin.clone(), reason: format!("not a valid tokenizer.json: {e}") }
        })?;
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| Error::Tokenizer {
            origin: origin.clone(),
            reason: format!("cannot disable truncation: {e}"),
        })?;

        let config_path = path.with_file_name("tokenizer_config.json");
        let config = if config_path.is_file() {
            Some(TokenizerConfig::read(&config_path)?)
        } else {
            None
        };
        let config = config.unwrap_or_default();

        // What the post-processor adds around a sequence, for files without a config.
        let probe = |add: bool| -> Result<Vec<u32>> {
            inner
                .encode_fast("a", add)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| Error::Tokenizer { origin: origin.clone(), reason: format!("encoding failed: {e}") })
        };
        let (with, without) = (probe(true)?, probe(false)?);
        let (mut probed_bos, mut probed_eos) = (None, None);
        if let Some(start) = find_subslice(&with, &without) {
            if start == 1 {
                probed_bos = with.first().copied();
            }
            if with.len() == start + without.len() + 1 {
                probed_eos = with.last().copied();
            }
        }

        let id_of = |token: &Option<String>| token.as_deref().and_then(|t| inner.token_to_id(t));
        let bos_id = id_of(&config.bos_token).or(probed_bos);
        let eos_id = id_of(&config.eos_token).or(probed_eos);
        let pad_id = id_of(&config.pad_token);
        let bos_token = config.bos_token.clone().or_else(|| bos_id.and_then(|id| inner.id_to_token(id)));
        let eos_token = config.eos_token.clone().or_else(|| eos_id.and_then(|id| inner.id_to_token(id)));
        let add_bos = config.add_bos_token.unwrap_or(probed_bos.is_some()) && bos_id.is_some();
        let add_eos = config.add_eos_token.unwrap_or(probed_eos.is_some()) && eos_id.is_some();
        let vocab_size = inner
            .get_vocab(true)
            .values()
            .max()
            .map_or(0, |&max| max as usize + 1);

        Ok(Self { inner, origin, bos_id, eos_id, pad_id, bos_token, eos_token, add_bos, add_eos, vocab_size })
    }

    /// Build the tokenizer a GGUF file describes. `origin` names it in errors (for example
    /// `"GGUF metadata of model.gguf"`).
    pub fn from_gguf_spec(spec: GgufTokenizerSpec, origin: &str) -> Result<Self> {
        let err = |reason: String| Error::Tokenizer { origin: origin.to_string(), reason };
        let n = spec.tokens.len();
        if n == 0 {
            return Err(err("tokenizer.ggml.tokens is empty".into()));
        }
        if u32::try_from(n).is_err() {
            return Err(err(format!("{n} tokens do not fit in u32 ids")));
        }
        if let Some(types) = &spec.token_types {
            if types.len() != n {
                return Err(err(format!("{} token types for {n} tokens", types.len())));
            }
        }
        if let Some(scores) = &spec.scores {
            if scores.len() != n {
                return Err(err(format!("{} scores for {n} tokens", scores.len())));
            }
        }
        for (what, id) in [("bos", spec.bos_id), ("eos", spec.eos_id), ("unknown", spec.unk_id), ("padding", spec.pad_id)] {
            if let Some(id) = id {
                if id as usize >= n {
                    return Err(err(format!("{what} token id {id} is outside the {n}-token vocabulary")));
                }
            }
        }

        let token_type = |id: usize| -> i32 {
            spec.token_types.as_ref().and_then(|t| t.get(id).copied()).unwrap_or(TOKEN_TYPE_NORMAL)
        };
        let mut inner = match spec.model.as_str() {
            "gpt2" => build_byte_level(&spec, &token_type, origin)?,
            "llama" => build_sentencepiece(&spec, &token_type, origin)?,
            other => {
                return Err(err(format!(
                    "unsupported tokenizer.ggml.model `{other}` (supported: gpt2, llama)"
                )))
            }
        };

        // Control tokens, and the tokens the file names as BOS/EOS/UNK/PAD, are special; tokens
        // the file marks user-defined are matched whole but kept as text.
        let named: Vec<u32> = [spec.bos_id, spec.eos_id, spec.unk_id, spec.pad_id].into_iter().flatten().collect();
        let mut special = Vec::new();
        let mut user_defined = Vec::new();
        for (id, token) in spec.tokens.iter().enumerate() {
            let ty = token_type(id);
            if ty == TOKEN_TYPE_CONTROL || named.contains(&(id as u32)) {
                special.push(AddedToken::from(token.clone(), true).normalized(false));
            } else if ty == TOKEN_TYPE_USER_DEFINED {
                user_defined.push(AddedToken::from(token.clone(), false).normalized(false));
            }
        }
        inner.add_special_tokens(&special);
        inner.add_tokens(&user_defined);

        let token_of = |id: Option<u32>| id.and_then(|id| spec.tokens.get(id as usize).cloned());
        let bos_token = token_of(spec.bos_id);
        let eos_token = token_of(spec.eos_id);
        let add_bos = spec.add_bos && spec.bos_id.is_some();
        let add_eos = spec.add_eos && spec.eos_id.is_some();
        // Record BOS/EOS in the post-processor too, so a saved tokenizer.json says it.
        let bos = if add_bos { bos_token.as_deref().zip(spec.bos_id) } else { None };
        let eos = if add_eos { eos_token.as_deref().zip(spec.eos_id) } else { None };
        if bos.is_some() || eos.is_some() {
            inner.with_post_processor(Some(bos_eos_post_processor(bos, eos).map_err(err)?));
        }

        Ok(Self {
            inner,
            origin: origin.to_string(),
            bos_id: spec.bos_id,
            eos_id: spec.eos_id,
            pad_id: spec.pad_id,
            bos_token,
            eos_token,
            add_bos,
            add_eos,
            vocab_size: n,
        })
    }

    /// Encode `text`. Special tokens written in the text (like `<|im_start|>`) are always
    /// recognised; `add_special` adds BOS and/or EOS as the model asks for (see
    /// [`add_bos`](Self::add_bos)).
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let encoding = self.inner.encode_fast(text, false).map_err(|e| self.error(format!("encoding failed: {e}")))?;
        let body = encoding.get_ids();
        let mut ids = Vec::with_capacity(body.len() + 2);
        if add_special && self.add_bos {
            ids.extend(self.bos_id);
        }
        ids.extend_from_slice(body);
        if add_special && self.add_eos {
            ids.extend(self.eos_id);
        }
        Ok(ids)
    }

    /// Decode ids to text; `skip_special` leaves special tokens (BOS, `<|im_end|>`, ...) out.
    /// An id outside the vocabulary is an error.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        if let Some(&bad) = ids.iter().find(|&&id| self.inner.id_to_token(id).is_none()) {
            return Err(self.error(format!("token id {bad} is not in the vocabulary of {} tokens", self.vocab_size)));
        }
        self.inner.decode(ids, skip_special).map_err(|e| self.error(format!("decoding failed: {e}")))
    }

    /// The id of a token string (as spelled in the vocabulary), if it exists.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The vocabulary spelling of a token id, if it exists.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Number of ids: the highest id plus one (the rows a model's embedding needs).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The beginning-of-sequence id, if the model has one.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// The end-of-sequence id, if the model has one.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }

    /// The padding id: the model's own, or else its EOS.
    pub fn pad_id(&self) -> Option<u32> {
        self.pad_id.or(self.eos_id)
    }

    /// The beginning-of-sequence token string (for chat templates).
    pub fn bos_token(&self) -> Option<&str> {
        self.bos_token.as_deref()
    }

    /// The end-of-sequence token string (for chat templates).
    pub fn eos_token(&self) -> Option<&str> {
        self.eos_token.as_deref()
    }

    /// Whether [`encode`](Self::encode) with `add_special` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether [`encode`](Self::encode) with `add_special` appends EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    /// Where this tokenizer came from (a path, or a description of GGUF metadata).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The wrapped `tokenizers` pipeline.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Write the pipeline as a Hugging Face `tokenizer.json` at `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = self.inner.to_string(true).map_err(|e| self.error(format!("cannot serialise: {e}")))?;
        Ok(f1_study::fs::write_atomic(path, json.as_bytes())?)
    }

    fn error(&self, reason: String) -> Error {
        Error::Tokenizer { origin: self.origin.clone(), reason }
    }
}

/// Streaming detokenizer: feed ids one at a time, get the new text when it forms complete UTF-8
/// (for streaming output). The pieces returned, concatenated, equal
/// [`Tokenizer::decode`] of all the ids fed.
pub struct DecodeStream<'a> {
    tokenizer: &'a Tokenizer,
    inner: tokenizers::DecodeStream<'a, ModelWrapper, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>,
}

impl<'a> DecodeStream<'a> {
    /// A stream over `tok`; `skip_special` as in [`Tokenizer::decode`].
    pub fn new(tok: &'a Tokenizer, skip_special: bool) -> Self {
        Self { tokenizer: tok, inner: tok.inner.decode_stream(skip_special) }
    }

    /// Feed one id: `Some(text)` when it completes new text, `None` while more ids are needed
    /// (for example in the middle of a multi-byte character).
    pub fn step(&mut self, id: u32) -> Result<Option<String>> {
        if self.tokenizer.inner.id_to_token(id).is_none() {
            return Err(self.tokenizer.error(format!("token id {id} is not in the vocabulary")));
        }
        self.inner.step(id).map_err(|e| self.tokenizer.error(format!("stream decoding failed: {e}")))
    }
}

/// The parts of `tokenizer_config.json` this module reads.
#[derive(Debug, Default)]
struct TokenizerConfig {
    bos_token: Option<String>,
    eos_token: Option<String>,
    pad_token: Option<String>,
    add_bos_token: Option<bool>,
    add_eos_token: Option<bool>,
}

impl TokenizerConfig {
    fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Tokenizer {
            origin: path.display().to_string(),
            reason: format!("not valid JSON: {e}"),
        })?;
        // A token is written either as a string or as an AddedToken object with `content`.
        let token = |key: &str| match value.get(key) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Object(o)) => o.get("content").and_then(|c| c.as_str()).map(str::to_string),
            _ => None,
        };
        Ok(Self {
            bos_token: token("bos_token"),
            eos_token: token("eos_token"),
            pad_token: token("pad_token"),
            add_bos_token: value.get("add_bos_token").and_then(serde_json::Value::as_bool),
            add_eos_token: value.get("add_eos_token").and_then(serde_json::Value::as_bool),
        })
    }
}

/// Where `needle` starts inside `haystack`, if it does.
fn find_subslice(haystack: &[u32], needle: &[u32]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// GPT-2's byte-to-character table: printable Latin-1 bytes stand for themselves, the other 68
/// bytes map, in byte order, to U+0100 onwards.
fn byte_level_chars() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for (byte, slot) in table.iter_mut().enumerate() {
        let b = byte as u32;
        let printable = (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        let code = if printable {
            b
        } else {
            next += 1;
            next - 1
        };
        *slot = char::from_u32(code).unwrap_or('\0');
    }
    table
}

/// Vocabulary map with the first id of each token string (GGUF vocabularies can repeat a string).
fn vocab_map(tokens: &[String]) -> (HashMap<String, u32>, usize) {
    let mut vocab = HashMap::with_capacity(tokens.len());
    let mut duplicates = 0;
    for (id, token) in tokens.iter().enumerate() {
        if vocab.contains_key(token) {
            duplicates += 1;
        } else {
            vocab.insert(token.clone(), id as u32);
        }
    }
    (vocab, duplicates)
}

fn parse_merges(merges: &[String], origin: &str) -> Result<Vec<(String, String)>> {
    merges
        .iter()
        .enumerate()
        .map(|(i, m)| {
            m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())).ok_or_else(|| Error::Tokenizer {
                origin: origin.to_string(),
                reason: format!("merge {i} `{m}` is not two tokens separated by a space"),
            })
        })
        .collect()
}

/// Merges implied by a vocabulary: every eligible token that is the concatenation of two
/// eligible tokens `a` + `b` gives the merge `(a, b)`. Ordered by the merged token's priority
/// (higher first), ties by the ids of `a` and `b`.
fn derive_merges(
    tokens: &[String],
    vocab: &HashMap<String, u32>,
    priority: impl Fn(usize) -> f32,
    eligible: impl Fn(usize) -> bool,
) -> Vec<(String, String)> {
    let mut found: Vec<(f32, u32, u32)> = Vec::new();
    for (id, token) in tokens.iter().enumerate() {
        if !eligible(id) || vocab.get(token) != Some(&(id as u32)) {
            continue;
        }
        for (split, _) in token.char_indices().skip(1) {
            let (a, b) = token.split_at(split);
            if let (Some(&ia), Some(&ib)) = (vocab.get(a), vocab.get(b)) {
                if eligible(ia as usize) && eligible(ib as usize) {
                    found.push((priority(id), ia, ib));
                }
            }
        }
    }
    found.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
    found
        .into_iter()
        .filter_map(|(_, a, b)| Some((tokens.get(a as usize)?.clone(), tokens.get(b as usize)?.clone())))
        .collect()
}

fn byte_level_pre_tokenizer(pre: Option<&str>, origin: &str) -> Result<(PreTokenizerWrapper, bool)> {
    let split = |pattern: &str| -> Result<PreTokenizerWrapper> {
        let split = Split::new(SplitPattern::Regex(pattern.to_string()), SplitDelimiterBehavior::Isolated, false)
            .map_err(|e| Error::Tokenizer { origin: origin.to_string(), reason: format!("bad split regex: {e}") })?;
        Ok(PreTokenizerSequence::new(vec![split.into(), ByteLevel::new(false, true, false).into()]).into())
    };
    // The bool: whether the BPE model uses whole vocabulary words before merging (Llama-3 does).
    Ok(match pre {
        Some("smollm") => (
            PreTokenizerSequence::new(vec![Digits::new(true).into(), ByteLevel::new(false, true, true).into()]).into(),
            false,
        ),
        Some("qwen2") => (split(QWEN2_SPLIT)?, false),
        Some("llama-bpe" | "llama3" | "llama-v3") => (split(LLAMA3_SPLIT)?, true),
        None | Some("default" | "gpt2" | "gpt-2") => (ByteLevel::new(false, true, true).into(), false),
        Some(other) => {
            tracing::warn!(
                origin,
                pre = other,
                "unknown tokenizer.ggml.pre; splitting text like GPT-2, which may differ from the model's tokenizer"
            );
            (ByteLevel::new(false, true, true).into(), false)
        }
    })
}

fn build_byte_level(spec: &GgufTokenizerSpec, token_type: &dyn Fn(usize) -> i32, origin: &str) -> Result<tokenizers::Tokenizer> {
    let err = |reason: String| Error::Tokenizer { origin: origin.to_string(), reason };
    // Byte-level vocabularies spell every byte with one of 256 characters; an ordinary token
    // written in raw text instead (seen in some conversions) is respelled so it can match.
    let table = byte_level_chars();
    let alphabet: std::collections::HashSet<char> = table.iter().copied().collect();
    let mut respelled = 0usize;
    let tokens: Vec<String> = spec
        .tokens
        .iter()
        .enumerate()
        .map(|(id, t)| {
            let ty = token_type(id);
            if (ty == TOKEN_TYPE_NORMAL || ty == TOKEN_TYPE_BYTE) && !t.chars().all(|c| alphabet.contains(&c)) {
                respelled += 1;
                t.bytes().map(|b| table[b as usize]).collect()
            } else {
                t.clone()
            }
        })
        .collect();
    if respelled > 0 {
        tracing::warn!(origin, respelled, "respelled tokens written outside the byte-level alphabet");
    }
    let (vocab, duplicates) = vocab_map(&tokens);
    if duplicates > 0 {
        tracing::warn!(origin, duplicates, "vocabulary repeats token strings; the first id of each is used");
    }
    let merges = match &spec.merges {
        Some(m) => parse_merges(m, origin)?,
        None => derive_merges(&tokens, &vocab, |id| -(id as f32), |id| token_type(id) == TOKEN_TYPE_NORMAL),
    };
    let (pre_tokenizer, ignore_merges) = byte_level_pre_tokenizer(spec.pre.as_deref(), origin)?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab.into_iter().collect::<Vocab>(), merges)
        .ignore_merges(ignore_merges)
        .build()
        .map_err(|e| err(format!("cannot build the BPE model: {e}")))?;
    let mut tokenizer = tokenizers::Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    tokenizer.with_decoder(Some(ByteLevel::new(false, true, true)));
    Ok(tokenizer)
}

fn build_sentencepiece(spec: &GgufTokenizerSpec, token_type: &dyn Fn(usize) -> i32, origin: &str) -> Result<tokenizers::Tokenizer> {
    let err = |reason: String| Error::Tokenizer { origin: origin.to_string(), reason };
    let tokens = &spec.tokens;
    let (vocab, duplicates) = vocab_map(tokens);
    if duplicates > 0 {
        tracing::warn!(origin, duplicates, "vocabulary repeats token strings; the first id of each is used");
    }
    let merges = match &spec.merges {
        Some(m) => parse_merges(m, origin)?,
        None => {
            let scores = spec.scores.as_deref();
            derive_merges(
                tokens,
                &vocab,
                |id| scores.and_then(|s| s.get(id).copied()).unwrap_or(-(id as f32)),
                |id| {
                    let ty = token_type(id);
                    ty != TOKEN_TYPE_CONTROL && ty != TOKEN_TYPE_UNKNOWN && ty != TOKEN_TYPE_BYTE && ty != TOKEN_TYPE_UNUSED
                },
            )
        }
    };
    let unk = spec
        .unk_id
        .and_then(|id| tokens.get(id as usize).cloned())
        .or_else(|| vocab.contains_key("<unk>").then(|| "<unk>".to_string()));
    let mut builder = BPE::builder().vocab_and_merges(vocab.into_iter().collect::<Vocab>(), merges).byte_fallback(true).fuse_unk(true);
    if let Some(unk) = unk {
        builder = builder.unk_token(unk);
    }
    let bpe = builder.build().map_err(|e| err(format!("cannot build the BPE model: {e}")))?;
    let replace = |from: &str, to: &str| {
        Replace::new(from, to).map_err(|e| err(format!("cannot build a replace step: {e}")))
    };
    let normalizer = NormalizerSequence::new(vec![
        Prepend::new(SPIECE_SPACE.to_string()).into(),
        replace(" ", SPIECE_SPACE)?.into(),
    ]);
    let decoder = DecoderSequence::new(vec![
        replace(SPIECE_SPACE, " ")?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
        Strip::new(' ', 1, 0).into(),
    ]);
    let mut tokenizer = tokenizers::Tokenizer::new(bpe);
    tokenizer.with_normalizer(Some(normalizer));
    tokenizer.with_decoder(Some(decoder));
    Ok(tokenizer)
}

/// A `TemplateProcessing` post-processor putting BOS before and/or EOS after each sequence,
/// built through its serialised form (which takes token strings verbatim, colons included).
fn bos_eos_post_processor(bos: Option<(&str, u32)>, eos: Option<(&str, u32)>) -> std::result::Result<PostProcessorWrapper, String> {
    use serde_json::json;
    let special = |token: &str| json!({ "SpecialToken": { "id": token, "type_id": 0 } });
    let sequence = |id: &str, type_id: u32| json!({ "Sequence": { "id": id, "type_id": type_id } });
    let mut single = Vec::new();
    let mut pair = Vec::new();
    let mut special_tokens = serde_json::Map::new();
    for (seq, type_id) in [("A", 0), ("B", 1)] {
        let pieces = if seq == "A" { &mut single } else { &mut pair };
        if let Some((token, _)) = bos {
            pieces.push(special(token));
        }
        pieces.push(sequence(seq, type_id));
        if let Some((token, _)) = eos {
            pieces.push(special(token));
        }
    }
    pair.splice(0..0, single.clone());
    for (token, id) in bos.into_iter().chain(eos) {
        special_tokens.insert(token.to_string(), json!({ "id": token, "ids": [id], "tokens": [token] }));
    }
    let value = json!({
        "type": "TemplateProcessing",
        "single": single,
        "pair": pair,
        "special_tokens": special_tokens,
    });
    serde_json::from_value(value).map_err(|e| format!("cannot build the BOS/EOS post-processor: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Merges of the tiny byte-level vocabulary; merged tokens get ids 259.. in this order.
    const TINY_MERGES: &[&str] = &[
        "Ġ t", "h e", "Ġt he", "l l", "e ll", "H ell", "Hell o", "o r", "w or", "Ġ wor", "l d", "Ġwor ld", "1 2",
    ];

    /// Id of a byte-level character in the tiny vocabulary (3 specials, then the 256 characters
    /// in code-point order).
    fn tiny_char_id(c: char) -> u32 {
        let mut chars: Vec<char> = byte_level_chars().to_vec();
        chars.sort_unstable();
        3 + chars.iter().position(|&x| x == c).expect("a byte-level char") as u32
    }

    fn tiny_gpt2_spec(pre: Option<&str>) -> GgufTokenizerSpec {
        let mut tokens: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"].iter().map(|s| s.to_string()).collect();
        let mut chars: Vec<char> = byte_level_chars().to_vec();
        chars.sort_unstable();
        tokens.extend(chars.iter().map(|c| c.to_string()));
        tokens.extend(TINY_MERGES.iter().map(|m| m.replace(' ', "")));
        let mut types = vec![TOKEN_TYPE_NORMAL; tokens.len()];
        types[..3].fill(TOKEN_TYPE_CONTROL);
        GgufTokenizerSpec {
            model: "gpt2".into(),
            pre: pre.map(str::to_string),
            tokens,
            token_types: Some(types),
            merges: Some(TINY_MERGES.iter().map(|s| s.to_string()).collect()),
            bos_id: Some(1),
            eos_id: Some(2),
            unk_id: Some(0),
            ..Default::default()
        }
    }

    /// Tiny SentencePiece vocabulary: `<unk> <s> </s>`, the 256 byte tokens (ids 3..=258), then
    /// pieces with falling scores.
    const TINY_PIECES: &[&str] = &[
        "▁", "H", "e", "l", "o", "w", "r", "d", "▁H", "ll", "▁He", "▁Hell", "▁Hello", "▁w", "or", "▁wor", "ld",
        "▁world",
    ];

    fn tiny_llama_spec() -> GgufTokenizerSpec {
        let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>"].iter().map(|s| s.to_string()).collect();
        let mut types = vec![TOKEN_TYPE_UNKNOWN, TOKEN_TYPE_CONTROL, TOKEN_TYPE_CONTROL];
        for b in 0..=255u8 {
            tokens.push(format!("<0x{b:02X}>"));
            types.push(TOKEN_TYPE_BYTE);
        }
        for piece in TINY_PIECES {
            tokens.push(piece.to_string());
            types.push(TOKEN_TYPE_NORMAL);
        }
        let scores = (0..tokens.len()).map(|i| if i < 259 { 0.0 } else { -(i as f32) }).collect();
        GgufTokenizerSpec {
            model: "llama".into(),
            tokens,
            scores: Some(scores),
            token_types: Some(types),
            bos_id: Some(1),
            eos_id: Some(2),
            unk_id: Some(0),
            add_bos: true,
            ..Default::default()
        }
    }

    fn piece_id(piece: &str) -> u32 {
        259 + TINY_PIECES.iter().position(|p| *p == piece).expect("a tiny piece") as u32
    }

    const UNICODE_SAMPLES: &[&str] = &[
        "Hello world",
        "café naïve résumé Ærø",
        "🦀 emoji 👍🏽 and 🏎️💨",
        "日本語のテキスト、中文字符",
        "line one\nline two\r\n\ttabbed\n\n",
        "  leading and trailing spaces  ",
        "Lap 1:23.456 in 2021 — P1!",
        "",
    ];

    #[test]
    fn byte_level_table_is_gpt2s() {
        let table = byte_level_chars();
        assert_eq!(table[b'!' as usize], '!');
        assert_eq!(table[b' ' as usize], 'Ġ');
        assert_eq!(table[b'\n' as usize], 'Ċ');
        assert_eq!(table[0], 'Ā');
        assert_eq!(table[0xAD], 'Ń');
        let distinct: std::collections::HashSet<char> = table.iter().copied().collect();
        let alphabet: std::collections::HashSet<char> = ByteLevel::alphabet().into_iter().collect();
        assert_eq!(distinct, alphabet);
    }

    #[test]
    fn tiny_gpt2_exact_ids() {
        let tok = Tokenizer::from_gguf_spec(tiny_gpt2_spec(Some("smollm")), "tiny gpt2").unwrap();
        assert_eq!(tok.vocab_size(), 3 + 256 + TINY_MERGES.len());
        // "Hello" and "Ġworld" are the merged tokens 265 and 270.
        assert_eq!(tok.encode("Hello world", false).unwrap(), vec![265, 270]);
        assert_eq!(tok.id_to_token(265).as_deref(), Some("Hello"));
        assert_eq!(tok.token_to_id("Ġthe"), Some(261));
        // ASCII printable characters sit at 3 + (byte - 0x21); space is 'Ġ' = U+0120 (id 223).
        assert_eq!(tok.encode(" the!", false).unwrap(), vec![261, 3]);
        assert_eq!(tok.encode("H  x", false).unwrap(), vec![42, 223, 223, 3 + (b'x' - 0x21) as u32]);
        assert_eq!(tiny_char_id('Ġ'), 223);
    }

    #[test]
    fn smollm_splits_digits_individually() {
        let smollm = Tokenizer::from_gguf_spec(tiny_gpt2_spec(Some("smollm")), "tiny").unwrap();
        let gpt2 = Tokenizer::from_gguf_spec(tiny_gpt2_spec(None), "tiny").unwrap();
        let (one, two, three) = (tiny_char_id('1'), tiny_char_id('2'), tiny_char_id('3'));
        let twelve = smollm.token_to_id("12").unwrap();
        // The merge "1 2" exists, but SmolLM's pre-tokenizer never lets digits meet.
        assert_eq!(smollm.encode("123", false).unwrap(), vec![one, two, three]);
        assert_eq!(gpt2.encode("123", false).unwrap(), vec![twelve, three]);
        assert_eq!(smollm.encode(" 12", false).unwrap(), vec![223, one, two]);
    }

    #[test]
    fn special_tokens_are_recognised_and_skippable() {
        let tok = Tokenizer::from_gguf_spec(tiny_gpt2_spec(Some("smollm")), "tiny").unwrap();
        let text = "<|im_start|>user\nHello<|im_end|>";
        let ids = tok.encode(text, false).unwrap();
        let expected: Vec<u32> = std::iter::once(1)
            .chain("user".chars().map(tiny_char_id))
            .chain([tiny_char_id('Ċ'), 265, 2])
            .collect();
        assert_eq!(ids, expected);
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
        assert_eq!(tok.decode(&ids, true).unwrap(), "user\nHello");
        assert_eq!(tok.bos_token(), Some("<|im_start|>"));
        assert_eq!(tok.eos_token(), Some("<|im_end|>"));
        // add_bos is off in this spec, so add_special adds nothing; pad falls back to EOS.
        assert!(!tok.add_bos());
        assert_eq!(tok.encode("Hello", true).unwrap(), vec![265]);
        assert_eq!(tok.pad_id(), Some(2));
    }

    #[test]
    fn gpt2_round_trips_unicode() {
        for pre in [Some("smollm"), Some("qwen2"), Some("llama-bpe"), None, Some("mystery")] {
            let tok = Tokenizer::from_gguf_spec(tiny_gpt2_spec(pre), "tiny").unwrap();
            for s in UNICODE_SAMPLES {
                let ids = tok.encode(s, false).unwrap();
                assert_eq!(tok.decode(&ids, false).unwrap(), *s, "pre {pre:?}, text {s:?}");
            }
        }
    }

    #[test]
    fn qwen2_and_llama3_split_numbers_differently() {
        let qwen = Tokenizer::from_gguf_spec(tiny_gpt2_spec(Some("qwen2")), "tiny").unwrap();
        let llama3 = Tokenizer::from_gguf_spec(tiny_gpt2_spec(Some("llama-bpe")), "tiny").unwrap();
        let (one, two, three) = (tiny_char_id('1'), tiny_char_id('2'), tiny_char_id('3'));
        assert_eq!(qwen.encode("123", false).unwrap(), vec![one, two, three]);
        assert_eq!(llama3.encode("123", false).unwrap(), vec![llama3.token_to_id("12").unwrap(), three]);
    }

    #[test]
    fn llama_exact_ids_and_byte_fallback() {
        let tok = Tokenizer::from_gguf_spec(tiny_llama_spec(), "tiny llama").unwrap();
        assert_eq!(tok.encode("Hello world", false).unwrap(), vec![piece_id("▁Hello"), piece_id("▁world")]);
        assert_eq!(tok.encode("Hello world", true).unwrap(), vec![1, piece_id("▁Hello"), piece_id("▁world")]);
        // 'i' is not a piece: it falls back to its byte token <0x69> (id 3 + 0x69).
        assert_eq!(tok.encode("Hi", false).unwrap(), vec![piece_id("▁H"), 3 + 0x69]);
        // "é" is two bytes.
        assert_eq!(tok.encode("é", false).unwrap(), vec![piece_id("▁"), 3 + 0xC3, 3 + 0xA9]);
        assert_eq!(tok.encode("<s>Hello", false).unwrap(), vec![1, piece_id("▁Hello")]);
        assert!(tok.add_bos());
        assert_eq!(tok.bos_token(), Some("<s>"));
    }

    #[test]
    fn llama_round_trips_unicode() {
        let tok = Tokenizer::from_gguf_spec(tiny_llama_spec(), "tiny llama").unwrap();
        for s in UNICODE_SAMPLES {
            let ids = tok.encode(s, true).unwrap();
            assert_eq!(tok.decode(&ids, true).unwrap(), *s, "text {s:?}");
        }
    }

    #[test]
    fn derived_merges_follow_scores_then_ids() {
        let tokens: Vec<String> = ["a", "b", "c", "ab", "bc", "abc"].iter().map(|s| s.to_string()).collect();
        let (vocab, _) = vocab_map(&tokens);
        let scores = [0.0, 0.0, 0.0, -2.0, -1.0, -1.0];
        let merges = derive_merges(&tokens, &vocab, |i| scores[i], |_| true);
        let merges: Vec<(&str, &str)> = merges.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        // "bc" and "abc" tie at -1: "abc"'s splits (a, bc) ids (0, 4) and (ab, c) ids (3, 2),
        // "bc"'s split (b, c) ids (1, 2); then "ab" at -2.
        assert_eq!(merges, vec![("a", "bc"), ("b", "c"), ("ab", "c"), ("a", "b")]);
    }

    #[test]
    fn decode_stream_waits_for_complete_characters() {
        let tok = Tokenizer::from_gguf_spec(tiny_gpt2_spec(Some("smollm")), "tiny").unwrap();
        let ids = tok.encode("a🦀b", false).unwrap();
        assert_eq!(ids.len(), 6, "a, four bytes of the crab, b");
        let mut stream = DecodeStream::new(&tok, false);
        let steps: Vec<Option<String>> = ids.iter().map(|&id| stream.step(id).unwrap()).collect();
        assert_eq!(
            steps,
            vec![Some("a".into()), None, None, None, Some("🦀".into()), Some("b".into())]
        );
        for spec in [tiny_gpt2_spec(Some("smollm")), tiny_llama_spec()] {
            let tok = Tokenizer::from_gguf_spec(spec, "tiny").unwrap();
            for s in UNICODE_SAMPLES {
                let ids = tok.encode(s, true).unwrap();
                let mut stream = DecodeStream::new(&tok, true);
                let mut text = String::new();
                for &id in &ids {
                    if let Some(piece) = stream.step(id).unwrap() {
                        text.push_str(&piece);
                    }
                }
                assert_eq!(text, tok.decode(&ids, true).unwrap(), "text {s:?}");
            }
        }
    }

    #[test]
    fn llama_stream_emits_multibyte_when_complete() {
        let tok = Tokenizer::from_gguf_spec(tiny_llama_spec(), "tiny").unwrap();
        let ids = tok.encode("Hello é", false).unwrap();
        assert_eq!(ids, vec![piece_id("▁Hello"), piece_id("▁"), 3 + 0xC3, 3 + 0xA9]);
        let mut stream = DecodeStream::new(&tok, false);
        let steps: Vec<Option<String>> = ids.iter().map(|&id| stream.step(id).unwrap()).collect();
        assert_eq!(steps, vec![Some("Hello".into()), Some(" ".into()), None, Some("é".into())]);
    }

    #[test]
    fn bad_ids_are_errors() {
        let tok = Tokenizer::from_gguf_spec(tiny_gpt2_spec(None), "tiny").unwrap();
        assert!(matches!(tok.decode(&[99_999], false), Err(Error::Tokenizer { .. })));
        assert!(DecodeStream::new(&tok, false).step(99_999).is_err());
    }

    #[test]
    fn bad_specs_are_errors() {
        let mut spec = tiny_gpt2_spec(None);
        spec.model = "wordpiece".into();
        let err = Tokenizer::from_gguf_spec(spec, "x").unwrap_err().to_string();
        assert!(err.contains("wordpiece") && err.contains("gpt2"), "{err}");
        let mut spec = tiny_gpt2_spec(None);
        spec.bos_id = Some(1_000_000);
        assert!(matches!(Tokenizer::from_gguf_spec(spec, "x"), Err(Error::Tokenizer { .. })));
        let mut spec = tiny_gpt2_spec(None);
        spec.merges = Some(vec!["nospace".into()]);
        assert!(matches!(Tokenizer::from_gguf_spec(spec, "x"), Err(Error::Tokenizer { .. })));
        let mut spec = tiny_gpt2_spec(None);
        spec.token_types = Some(vec![1]);
        assert!(matches!(Tokenizer::from_gguf_spec(spec, "x"), Err(Error::Tokenizer { .. })));
    }

    #[test]
    fn saved_tokenizer_json_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        for (name, spec) in [("gpt2", tiny_gpt2_spec(Some("smollm"))), ("llama", tiny_llama_spec())] {
            let built = Tokenizer::from_gguf_spec(spec, "tiny").unwrap();
            let sub = dir.path().join(name);
            std::fs::create_dir(&sub).unwrap();
            let path = sub.join("tokenizer.json");
            built.save(&path).unwrap();
            let loaded = Tokenizer::from_file(&path).unwrap();
            for s in UNICODE_SAMPLES.iter().chain(&["<|im_start|>a<|im_end|>", "<s>x</s>", "123"]) {
                let ids = built.encode(s, true).unwrap();
                assert_eq!(loaded.encode(s, true).unwrap(), ids, "{name}: {s:?}");
                assert_eq!(loaded.decode(&ids, true).unwrap(), built.decode(&ids, true).unwrap());
            }
            assert_eq!(loaded.vocab_size(), built.vocab_size());
            // Without a tokenizer_config.json, BOS is known only if the post-processor adds it.
            assert_eq!(loaded.add_bos(), built.add_bos(), "{name}");
            if built.add_bos() {
                assert_eq!(loaded.bos_id(), built.bos_id());
                assert_eq!(loaded.bos_token(), built.bos_token());
            }
        }
    }

    #[test]
    fn tokenizer_config_supplies_special_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        Tokenizer::from_gguf_spec(tiny_llama_spec(), "tiny").unwrap().save(&path).unwrap();
        std::fs::write(
            dir.path().join("tokenizer_config.json"),
            r#"{"add_bos_token": false, "add_eos_token": true,
                "bos_token": {"content": "<s>", "special": true}, "eos_token": "</s>", "pad_token": "<unk>"}"#,
        )
        .unwrap();
        let tok = Tokenizer::from_file(&path).unwrap();
        assert_eq!((tok.bos_id(), tok.eos_id(), tok.pad_id()), (Some(1), Some(2), Some(0)));
        assert_eq!((tok.bos_token(), tok.eos_token()), (Some("<s>"), Some("</s>")));
        assert!(!tok.add_bos());
        assert_eq!(tok.encode("Hello", true).unwrap(), vec![piece_id("▁Hello"), 2]);
    }

    #[test]
    fn malformed_tokenizer_json_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, r#"{"model": {"type": "BPE", "vocab": 3}}"#).unwrap();
        match Tokenizer::from_file(&path) {
            Err(Error::Tokenizer { origin, reason }) => {
                assert!(origin.contains("tokenizer.json"), "{origin}");
                assert!(!reason.is_empty());
            }
            other => panic!("expected a tokenizer error, got {other:?}"),
        }
        let missing = dir.path().join("absent.json");
        assert!(matches!(Tokenizer::from_file(&missing), Err(Error::Io { .. })));
    }
}
