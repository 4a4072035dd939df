//! What the harness evaluates: a model behind the [`Backend`] trait, either in this process
//! ([`LocalBackend`], over `f1-core`) or behind an OpenAI-compatible HTTP endpoint
//! (`remote::RemoteBackend`). Scoring code sees only the trait, so a base model, an adapter,
//! a merged export and a served model are measured by the same lines.
//!
//! Log-likelihood requests follow lm-evaluation-harness: a plain-text context and
//! continuations; the context and the whole text are tokenized and the continuation tokens are
//! the tail of the whole (so a token that straddles the boundary is scored as the model sees it).

use std::time::Duration;

use f1_core::generate::{encode_prompt, generate_ids, GenerationConfig};
use f1_core::{ChatMessage, LoadedModel, LogLikelihood, ScoreGroup};
use serde::{Deserialize, Serialize};

use crate::Result;

/// One generated reply and its timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// The reply text (special tokens removed, not trimmed).
    pub text: String,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
    /// Time to first token, milliseconds.
    pub ttft_ms: f64,
    /// Total time of the request, milliseconds.
    pub total_ms: f64,
    /// `stop` or `length`.
    pub finish_reason: String,
}

/// A context and the continuations to score after it (plain text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlRequest {
    /// The context, e.g. `Question: ...\nAnswer:`.
    pub context: String,
    /// The continuations, e.g. ` Monaco`.
    pub continuations: Vec<String>,
}

/// A model the harness can measure.
pub trait Backend {
    /// Short description for logs and result files (model path or URL, adapter).
    fn describe(&self) -> String;

    /// Log-likelihood of each continuation after its context, in request order.
    fn loglikelihood(&mut self, requests: &[LlRequest]) -> Result<Vec<Vec<LogLikelihood>>>;

    /// Greedy chat replies of at most `max_new_tokens` tokens, one per conversation, each
    /// rendered with the model's own chat template. `batch` > 1 lets a local backend decode
    /// several conversations at once (timings then describe the batch, not one request).
    fn chat(&mut self, conversations: &[Vec<ChatMessage>], max_new_tokens: usize, batch: usize) -> Result<Vec<Generation>>;

    /// The conversation rendered as the prompt text the model sees before its reply, when the
    /// backend knows its template (lets log-likelihood contexts use the chat format).
    fn render_chat(&self, messages: &[ChatMessage]) -> Option<String>;
}

/// A model loaded in this process.
pub struct LocalBackend {
    /// The model, tokenizer and chat template.
    pub loaded: LoadedModel,
    /// What it is (base path, adapter path, method).
    pub description: String,
    /// Padded tokens per log-likelihood forward pass (memory bound).
    pub max_batch_tokens: usize,
}

impl LocalBackend {
    /// Wrap a loaded model.
    pub fn new(loaded: LoadedModel, description: impl Into<String>) -> Self {
        LocalBackend { loaded, description: description.into(), max_batch_tokens: 4096 }
    }
}

/// Tokenize one request the lm-evaluation-harness way: trailing spaces of the context move to
/// the continuation, and each continuation is the tail of the whole text's tokens. If a token
/// straddles the boundary for some option, the shared context shrinks to the prefix all
/// options agree on, so every option is still scored from the same context.
pub fn encode_request(tok: &f1_core::Tokenizer, req: &LlRequest) -> Result<ScoreGroup> {
    let trimmed = req.context.trim_end_matches(' ');
    let moved = &req.context[trimmed.len()..];
    let context = encode_prompt(tok, trimmed)?;
    let wholes = req.continuations.iter().map(|c| encode_prompt(tok, &format!("{trimmed}{moved}{c}"))).collect::<f1_core::Result<Vec<_>>>()?;
    let split = wholes.iter().map(|w| common_prefix(w, &context)).min().unwrap_or(context.len());
    // Keep at least one context token so the first continuation token has a predecessor.
    let split = split.max(1).min(context.len());
    let continuations = wholes.iter().map(|w| w[split.min(w.len())..].to_vec()).collect();
    Ok(ScoreGroup { context: context[..split].to_vec(), continuations })
}

/// Log-likelihood of every request's continuations under a model loaded in this process (what
/// [`LocalBackend`] does; also used by phase 3's in-training probe on the model it trains).
pub fn score_requests(loaded: &LoadedModel, requests: &[LlRequest], max_batch_tokens: usize) -> Result<Vec<Vec<LogLikelihood>>> {
    let groups = requests.iter().map(|r| encode_request(&loaded.tokenizer, r)).collect::<Result<Vec<_>>>()?;
    Ok(f1_core::loglikelihood_grouped(&loaded.model, &loaded.tokenizer, &groups, max_batch_tokens)?)
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl Backend for LocalBackend {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn loglikelihood(&mut self, requests: &[LlRequest]) -> Result<Vec<Vec<LogLikelihood>>> {
        score_requests(&self.loaded, requests, self.max_batch_tokens)
    }

    fn chat(&mut self, conversations: &[Vec<ChatMessage>], max_new_tokens: usize, batch: usize) -> Result<Vec<Generation>> {
        let cfg = GenerationConfig::greedy(max_new_tokens);
        let mut out = Vec::with_capacity(conversations.len());
        for chunk in conversations.chunks(batch.max(1)) {
            let ids = chunk
                .iter()
                .map(|m| encode_prompt(&self.loaded.tokenizer, &self.loaded.chat_template.render(m, true)?))
                .collect::<f1_core::Result<Vec<_>>>()?;
            for g in generate_ids(&self.loaded.model, &self.loaded.tokenizer, &ids, &cfg, |_, _| {})? {
                out.push(Generation {
                    text: g.text,
                    prompt_tokens: g.prompt_tokens,
                    completion_tokens: g.completion_tokens,
                    ttft_ms: ms(g.time_to_first_token),
                    total_ms: ms(g.elapsed),
                    finish_reason: format!("{:?}", g.finish_reason).to_lowercase(),
                });
            }
        }
        Ok(out)
    }

    fn render_chat(&self, messages: &[ChatMessage]) -> Option<String> {
        self.loaded.chat_template.render(messages, true).ok()
    }
}

/// Milliseconds of a duration.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
