//! The inference threads: each takes admitted jobs from one channel, locks the variant a job
//! names, and generates or scores; a panic fails that request only.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::{mpsc as std_mpsc, Mutex, PoisonError};
use std::time::Instant;

use f1_core::generate::{encode_prompt, generate_ids_until, GenerationConfig, GenerationOutput};
use f1_core::tokenizer::DecodeStream;
use f1_core::{ChatMessage, FinishReason, Llama, LoadedModel, Tokenizer};
use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

use super::api::{ApiError, Prompt};
use super::{DEFAULT_CHAT_MAX_TOKENS, DEFAULT_COMPLETION_MAX_TOKENS, SCORE_CHUNK};

/// One admitted request for the inference threads.
pub(super) struct Job {
    /// Index of the variant in the served list.
    pub(super) model: usize,
    /// When the client stops waiting.
    pub(super) deadline: Instant,
    /// The server's prompt + `max_tokens` budget.
    pub(super) max_total_tokens: usize,
    /// Admission slot, given back once the answer is complete.
    pub(super) permit: OwnedSemaphorePermit,
    pub(super) work: Work,
}

/// What a job asks for.
pub(super) enum Work {
    /// A chat completion; progress and result go to `events`.
    Chat { messages: Vec<ChatMessage>, cfg: GenerationConfig, max_tokens: Option<usize>, events: mpsc::UnboundedSender<ChatEvent> },
    /// A legacy completion of one or more prompts.
    Complete { prompts: Vec<Prompt>, cfg: GenerationConfig, max_tokens: Option<usize>, echo: bool, logprobs: Option<usize>, reply: oneshot::Sender<Result<Vec<Choice>, ApiError>> },
}

impl Work {
    /// The client has stopped waiting (timed out or disconnected).
    fn abandoned(&self) -> bool {
        match self {
            Work::Chat { events, .. } => events.is_closed(),
            Work::Complete { reply, .. } => reply.is_closed(),
        }
    }
}

/// What the inference thread reports about a chat job.
pub(super) enum ChatEvent {
    /// The prompt fits and generation begins.
    Started { prompt_tokens: usize },
    /// Final text (it can no longer turn into a stop string).
    Text(String),
    /// Generation ended.
    Done(GenerationOutput),
    /// The request cannot be served.
    Failed(ApiError),
}

/// One prompt's legacy completion.
pub(super) struct Choice {
    pub(super) text: String,
    pub(super) logprobs: Option<Value>,
    pub(super) finish_reason: FinishReason,
    pub(super) prompt_tokens: usize,
    pub(super) completion_tokens: usize,
}

pub(super) fn inference_loop(models: &[Mutex<LoadedModel>], inbox: &Mutex<std_mpsc::Receiver<Job>>) {
    loop {
        // The lock is held only to take one job; idle workers wait on it, busy ones do not.
        let Ok(job) = inbox.lock().unwrap_or_else(PoisonError::into_inner).recv() else { break };
        if job.work.abandoned() || Instant::now() >= job.deadline {
            // Its handler has answered (504) or its client left: running it would only delay
            // the requests behind it.
            tracing::debug!("dropping a queued request whose client stopped waiting");
            continue;
        }
        // Inference only reads the weights, so a lock poisoned by a panicking request leaves
        // the model as good as it was.
        let model = models[job.model].lock().unwrap_or_else(PoisonError::into_inner);
        // A panic in the model (a shape bug) fails this request only: its reply channel is
        // dropped while unwinding, which the handler reports as a 500.
        if std::panic::catch_unwind(AssertUnwindSafe(|| run_job(&model, job))).is_err() {
            tracing::error!("the model panicked on a request; the server keeps running");
        }
    }
    tracing::debug!("inference thread stops: the server is shutting down");
}

fn run_job(m: &LoadedModel, job: Job) {
    let Job { max_total_tokens, permit, work, deadline, .. } = job;
    // The slot is given back just before the answer completes, so a client that sends its next
    // request as soon as it has this answer finds the slot free.
    match work {
        Work::Chat { messages, cfg, max_tokens, events } => {
            // A client that disconnected or whose time ran out stops its generation at the next
            // token, which frees this worker for the requests behind it.
            let cancelled = || events.is_closed() || Instant::now() >= deadline;
            let result = run_chat(m, &messages, cfg, max_tokens, max_total_tokens, &events, &cancelled);
            drop(permit);
            let _ = events.send(match result {
                Ok(out) => ChatEvent::Done(out),
                Err(e) => ChatEvent::Failed(e),
            });
        }
        Work::Complete { prompts, cfg, max_tokens, echo, logprobs, reply } => {
            let cancelled = || reply.is_closed() || Instant::now() >= deadline;
            let result = prompts
                .iter()
                .map(|p| if cancelled() { Err(ApiError::internal("the client stopped waiting".into())) } else { complete(m, p, &cfg, max_tokens, max_total_tokens, echo, logprobs, &cancelled) })
                .collect();
            drop(permit);
            // The client may have gone; nothing to do then.
            let _ = reply.send(result);
        }
    }
}

fn run_chat(m: &LoadedModel, messages: &[ChatMessage], cfg: GenerationConfig, max_tokens: Option<usize>, max_total_tokens: usize, events: &mpsc::UnboundedSender<ChatEvent>, cancelled: &dyn Fn() -> bool) -> Result<GenerationOutput, ApiError> {
    let prompt = m.chat_template.render(messages, true)?;
    let ids = encode_prompt(&m.tokenizer, &prompt)?;
    let context = m.model.config().max_position_embeddings;
    if ids.len() >= context {
        return Err(ApiError::too_long(format!("the conversation is {} tokens; the model's context is {context} tokens, with room needed for the reply", ids.len())));
    }
    let cfg = GenerationConfig { max_new_tokens: new_tokens(ids.len(), max_tokens, DEFAULT_CHAT_MAX_TOKENS, max_total_tokens, context)?, ..cfg };
    let _ = events.send(ChatEvent::Started { prompt_tokens: ids.len() });
    let out = generate_ids_until(
        &m.model,
        &m.tokenizer,
        &[ids],
        &cfg,
        |_, t| {
            let _ = events.send(ChatEvent::Text(t.to_string()));
        },
        cancelled,
    )?;
    out.into_iter().next().ok_or_else(|| ApiError::internal("generation returned no row".into()))
}

/// One prompt of a legacy completion: optional generation, then, if asked, the
/// log-probability of every returned token from one scoring pass over prompt + completion.
#[allow(clippy::too_many_arguments)]
fn complete(m: &LoadedModel, prompt: &Prompt, cfg: &GenerationConfig, max_tokens: Option<usize>, max_total_tokens: usize, echo: bool, logprobs: Option<usize>, cancelled: &dyn Fn() -> bool) -> Result<Choice, ApiError> {
    let tok = &m.tokenizer;
    let (ids, added_bos) = match prompt {
        Prompt::Text(s) => {
            // As `encode_prompt` decides: BOS is added when the model wants one and the text
            // does not already start with it.
            let has_bos = tok.bos_token().is_some_and(|b| !b.is_empty() && s.starts_with(b));
            (encode_prompt(tok, s)?, tok.add_bos() && !has_bos)
        }
        Prompt::Ids(ids) => {
            if let Some(bad) = ids.iter().find(|&&id| id as usize >= tok.vocab_size()) {
                return Err(ApiError::bad_request(format!("token id {bad} is outside the vocabulary of {} tokens", tok.vocab_size())));
            }
            (ids.clone(), false)
        }
    };
    if ids.is_empty() {
        return Err(ApiError::bad_request("`prompt` is empty".into()));
    }
    let context = m.model.config().max_position_embeddings;
    if ids.len() > context || (max_tokens != Some(0) && ids.len() >= context) {
        return Err(ApiError::too_long(format!("the prompt is {} tokens; the model's context is {context} tokens", ids.len())));
    }
    let cfg = &GenerationConfig { max_new_tokens: new_tokens(ids.len(), max_tokens, DEFAULT_COMPLETION_MAX_TOKENS, max_total_tokens, context)?, ..cfg.clone() };
    let (completion_text, mut completion_ids, finish_reason, produced) = if cfg.max_new_tokens > 0 {
        let out = generate_ids_until(&m.model, tok, std::slice::from_ref(&ids), cfg, |_, _| {}, cancelled)?;
        let out = out.into_iter().next().ok_or_else(|| ApiError::internal("generation returned no row".into()))?;
        (out.text, out.token_ids, out.finish_reason, out.completion_tokens)
    } else {
        // Nothing generated: OpenAI and vLLM report `length`.
        (String::new(), vec![], FinishReason::Length, 0)
    };
    let prompt_pieces = pieces(tok, &ids, added_bos, false)?;
    let prompt_text: String = prompt_pieces.concat();
    // The completion's pieces decode as `generate_ids` decoded its text (special tokens
    // skipped), cut where a stop string cut the text.
    let mut completion_pieces = pieces(tok, &completion_ids, false, true)?;
    fit_pieces(&mut completion_pieces, &completion_text);
    completion_ids.truncate(completion_pieces.len());
    let text = if echo { format!("{prompt_text}{completion_text}") } else { completion_text };

    let logprobs = match logprobs {
        None => None,
        Some(k) => {
            let all: Vec<u32> = ids.iter().chain(&completion_ids).copied().collect();
            let scores = score(&m.model, &all, k)?;
            let all_pieces: Vec<&String> = prompt_pieces.iter().chain(&completion_pieces).collect();
            // Without echo only the completion's tokens are returned; their offsets still count
            // from the start of prompt + completion, as in the OpenAI legacy API.
            let (first, mut offset) = if echo { (0, 0) } else { (ids.len(), prompt_text.chars().count()) };
            let (mut tokens, mut token_logprobs, mut top_logprobs, mut text_offset) = (vec![], vec![], vec![], vec![]);
            for i in first..all.len() {
                tokens.push(Value::String(all_pieces[i].clone()));
                text_offset.push(offset);
                offset += all_pieces[i].chars().count();
                if i == 0 {
                    // The first token has no context to be predicted from.
                    token_logprobs.push(Value::Null);
                    top_logprobs.push(Value::Null);
                    continue;
                }
                let s = &scores[i - 1];
                token_logprobs.push(json!(s.logprob));
                // The token itself plus the top-k alternatives, as OpenAI returns them. The token
                // goes in first so that, should two ids decode to the same text, the
                // alternative's (higher) value wins and a greedy check stays honest.
                let mut top = BTreeMap::new();
                top.insert(tok.decode(&[all[i]], false)?, s.logprob);
                for &(id, lp) in s.top.iter().take(k) {
                    top.insert(tok.decode(&[id], false)?, lp);
                }
                top_logprobs.push(json!(top));
            }
            Some(json!({ "tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top_logprobs, "text_offset": text_offset }))
        }
    };
    Ok(Choice { text, logprobs, finish_reason, prompt_tokens: ids.len(), completion_tokens: produced })
}

/// The text each token adds, decoded as a stream so that concatenating the pieces gives the
/// decoded text exactly (a token inside a multi-byte character adds `""`, the one completing it
/// adds the character). `skip_first` leaves out a BOS the tokenizer added (piece `""`).
fn pieces(tok: &Tokenizer, ids: &[u32], skip_first: bool, skip_special: bool) -> Result<Vec<String>, ApiError> {
    let mut stream = DecodeStream::new(tok, skip_special);
    let mut out = Vec::with_capacity(ids.len());
    for (i, &id) in ids.iter().enumerate() {
        if i == 0 && skip_first {
            out.push(String::new());
            continue;
        }
        out.push(stream.step(id)?.unwrap_or_default());
    }
    Ok(out)
}

/// Keep the pieces that make up `text` (a prefix of their concatenation) and cut the last one
/// to fit: what a stop string removed from the text leaves the token list too.
fn fit_pieces(pieces: &mut Vec<String>, text: &str) {
    let mut at = 0;
    let mut keep = 0;
    for p in pieces.iter_mut() {
        if at >= text.len() && !p.is_empty() {
            break;
        }
        let end = (at + p.len()).min(text.len());
        if end < at + p.len() {
            *p = text.get(at..end).unwrap_or_default().to_string();
        }
        at = end;
        keep += 1;
    }
    pieces.truncate(keep);
}

/// Log-probability of token `i` given tokens `..i`, for `i` in `1..ids.len()`, with the `k`
/// most likely alternatives (at least one is computed: greedy checks need the argmax).
struct TokenScore {
    logprob: f32,
    top: Vec<(u32, f32)>,
}

fn score(model: &Llama, ids: &[u32], k: usize) -> Result<Vec<TokenScore>, ApiError> {
    if ids.len() < 2 {
        return Ok(vec![]);
    }
    let device = model.device();
    let _guard = tch::no_grad_guard();
    let input = Tensor::from_slice(&ids.iter().map(|&t| i64::from(t)).collect::<Vec<_>>()).unsqueeze(0).to_device(device);
    let hidden = model.forward_hidden(&input, None, None).squeeze_dim(0); // (T, C)
    let k = k.max(1);
    let n = ids.len() - 1;
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(SCORE_CHUNK) {
        let len = SCORE_CHUNK.min(n - start);
        let logp = model.logits(&hidden.narrow(0, start as i64, len as i64)).to_kind(Kind::Float).log_softmax(-1, Kind::Float); // (len, V)
        let targets = Tensor::from_slice(&ids[start + 1..start + 1 + len].iter().map(|&t| i64::from(t)).collect::<Vec<_>>()).to_device(device);
        let lp = Vec::<f32>::try_from(logp.gather(1, &targets.unsqueeze(1), false).squeeze_dim(1).to_device(Device::Cpu)).map_err(f1_core::Error::from)?;
        let (top_v, top_i) = logp.topk(k as i64, -1, true, true); // (len, k)
        let top_v = Vec::<f32>::try_from(top_v.flatten(0, -1).to_device(Device::Cpu)).map_err(f1_core::Error::from)?;
        let top_i = Vec::<i64>::try_from(top_i.flatten(0, -1).to_device(Device::Cpu)).map_err(f1_core::Error::from)?;
        for (j, &logprob) in lp.iter().enumerate() {
            let top = (0..k).map(|c| (top_i[j * k + c] as u32, top_v[j * k + c])).collect();
            out.push(TokenScore { logprob, top });
        }
    }
    Ok(out)
}

/// The new tokens a request generates: what it asked for, or `default` cut to what the budget
/// leaves after the prompt. Prompt plus the asked tokens over the budget (the server's
/// `max_total_tokens`, never more than the model's context) is refused with the numbers.
fn new_tokens(prompt: usize, asked: Option<usize>, default: usize, max_total: usize, context: usize) -> Result<usize, ApiError> {
    let budget = max_total.min(context);
    let n = asked.unwrap_or_else(|| default.min(budget.saturating_sub(prompt)));
    if prompt + n <= budget {
        return Ok(n);
    }
    let over = format!("the prompt is {prompt} tokens and max_tokens is {n}: {} tokens", prompt + n);
    Err(if budget == context {
        ApiError::too_long(format!("{over} is over the model's context of {context} tokens; ask for fewer max_tokens or send a shorter prompt"))
    } else {
        ApiError { code: Some("token_limit_exceeded"), ..ApiError::bad_request(format!("{over} is over this server's limit of {budget} tokens per request (prompt + max_tokens, set by --max-total-tokens); ask for fewer max_tokens or send a shorter prompt")) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn pieces_are_cut_to_the_stopped_text() {
        let mut p: Vec<String> = ["Hel", "lo", " wor", "ld"].iter().map(|s| s.to_string()).collect();
        fit_pieces(&mut p, "Hello wo");
        assert_eq!(p, vec!["Hel", "lo", " wo"]);
        let mut p: Vec<String> = ["a", "", "é"].iter().map(|s| s.to_string()).collect();
        fit_pieces(&mut p, "aé");
        assert_eq!(p, vec!["a", "", "é"]);
    }

    #[test]
    fn token_budget_cuts_defaults_and_refuses_asks_over_it() {
        // No ask: the default, cut to what the budget leaves after the prompt.
        assert_eq!(new_tokens(10, None, 256, 64, 8192).ok(), Some(54));
        assert_eq!(new_tokens(10, None, 16, 64, 8192).ok(), Some(16));
        assert_eq!(new_tokens(10, Some(54), 256, 64, 8192).ok(), Some(54));
        let e = new_tokens(10, Some(55), 256, 64, 8192).expect_err("over the server's budget");
        assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, Some("token_limit_exceeded")));
        assert!(e.message.contains("65 tokens") && e.message.contains("--max-total-tokens"), "{}", e.message);
        // A budget above the context is the context.
        let e = new_tokens(100, Some(40), 256, 4096, 128).expect_err("over the context");
        assert_eq!(e.code, Some("context_length_exceeded"));
    }
}
