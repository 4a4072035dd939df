//! Text generation and log-likelihood scoring on a [`Llama`].
//!
//! Generation follows Hugging Face `generate`: left-padded batches, a KV cache filled by one
//! prefill pass then extended one token per step, logits processed in the order repetition
//! penalty, temperature, top-k, top-p, then greedy choice or sampling from a seeded RNG. Stop
//! tokens end a row; stop strings cut its text where they start, and streamed text holds back
//! any tail that could still become a stop string. Log-likelihood follows lm-evaluation-harness'
//! `loglikelihood`: the sum of log-probabilities of the continuation tokens given the context,
//! and whether greedy decoding would have produced exactly that continuation.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::error::{Error, Result};
use crate::llama::{KvCache, Llama};
use crate::tokenizer::{DecodeStream, Tokenizer};

/// Decoding options, named as in Hugging Face `GenerationConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationConfig {
    /// Most tokens generated per prompt.
    pub max_new_tokens: usize,
    /// Softmax temperature; 0 means greedy decoding.
    pub temperature: f64,
    /// Keep only the k most likely tokens before sampling.
    pub top_k: Option<usize>,
    /// Keep the smallest set of tokens whose probability reaches p.
    pub top_p: Option<f64>,
    /// Penalty > 1 discourages tokens already in the prompt or output (CTRL paper's form).
    pub repetition_penalty: f64,
    /// Token ids that end a row, in addition to the tokenizer's and config's EOS.
    pub stop_token_ids: Vec<u32>,
    /// Strings that end a row; the text is cut where the first one starts.
    pub stop_strings: Vec<String>,
    /// Seed of the sampling RNG (each row uses the same seed, so batching does not change results).
    pub seed: u64,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig { max_new_tokens: 256, temperature: 0.0, top_k: None, top_p: None, repetition_penalty: 1.0, stop_token_ids: vec![], stop_strings: vec![], seed: 0 }
    }
}

impl GenerationConfig {
    /// Greedy decoding of at most `max_new_tokens` tokens.
    pub fn greedy(max_new_tokens: usize) -> Self {
        GenerationConfig { max_new_tokens, ..Default::default() }
    }

    fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(Error::Invalid(format!("temperature must be >= 0, got {}", self.temperature)));
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(Error::Invalid(format!("top_p must be in (0, 1], got {p}")));
            }
        }
        if self.top_k == Some(0) {
            return Err(Error::Invalid("top_k must be at least 1".into()));
        }
        if self.repetition_penalty.is_nan() || self.repetition_penalty <= 0.0 {
            return Err(Error::Invalid(format!("repetition_penalty must be > 0, got {}", self.repetition_penalty)));
        }
        Ok(())
    }
}

/// Why a row stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// A stop token or stop string.
    Stop,
    /// `max_new_tokens` (or the context length) was reached.
    Length,
    /// The caller stopped it ([`generate_ids_until`]: the client left or its time ran out).
    Cancelled,
}

/// One prompt's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationOutput {
    /// Generated text (special tokens skipped, cut at a stop string).
    pub text: String,
    /// Generated token ids, without the stop token.
    pub token_ids: Vec<u32>,
    /// Tokens the model produced, the stop token included.
    pub completion_tokens: usize,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Why generation ended.
    pub finish_reason: FinishReason,
    /// From the call to the first generated token (prefill latency).
    pub time_to_first_token: Duration,
    /// From the call to the end of this row.
    pub elapsed: Duration,
}

/// Encode a prompt, adding BOS only when the model wants one and the text does not already
/// start with it (a rendered chat template often does), so there is never a double BOS.
pub fn encode_prompt(tok: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    let has_bos = tok.bos_token().is_some_and(|b| !b.is_empty() && text.starts_with(b));
    tok.encode(text, tok.add_bos() && !has_bos)
}

/// Generate from text prompts (see [`generate_ids`]).
pub fn generate(model: &Llama, tok: &Tokenizer, prompts: &[String], cfg: &GenerationConfig, on_text: impl FnMut(usize, &str)) -> Result<Vec<GenerationOutput>> {
    let ids = prompts.iter().map(|p| encode_prompt(tok, p)).collect::<Result<Vec<_>>>()?;
    generate_ids(model, tok, &ids, cfg, on_text)
}

/// Per-row decoding state.
struct Row<'a> {
    stream: DecodeStream<'a>,
    text: String,
    emitted: usize,
    ids: Vec<u32>,
    seen: Vec<u32>,
    rng: StdRng,
    done: Option<FinishReason>,
    produced: usize,
    first: Option<Duration>,
    elapsed: Duration,
}

/// Generate continuations of tokenized prompts as one left-padded batch. `on_text(row, delta)`
/// receives each row's new text as soon as it is final (streaming).
pub fn generate_ids(model: &Llama, tok: &Tokenizer, prompts: &[Vec<u32>], cfg: &GenerationConfig, on_text: impl FnMut(usize, &str)) -> Result<Vec<GenerationOutput>> {
    generate_ids_until(model, tok, prompts, cfg, on_text, || false)
}

/// [`generate_ids`] that asks `cancelled` before every token: once it says yes, the rows still
/// running end there with [`FinishReason::Cancelled`] and what they had, so a server whose
/// client disconnected frees its worker within one token.
pub fn generate_ids_until(model: &Llama, tok: &Tokenizer, prompts: &[Vec<u32>], cfg: &GenerationConfig, mut on_text: impl FnMut(usize, &str), cancelled: impl Fn() -> bool) -> Result<Vec<GenerationOutput>> {
    cfg.validate()?;
    if prompts.is_empty() {
        return Ok(vec![]);
    }
    if let Some(i) = prompts.iter().position(Vec::is_empty) {
        return Err(Error::Invalid(format!("prompt {i} is empty")));
    }
    let started = Instant::now();
    let device = model.device();
    let b = prompts.len();
    let max_prompt = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let context = model.config().max_position_embeddings;
    if max_prompt >= context {
        return Err(Error::Invalid(format!("prompt of {max_prompt} tokens does not fit the model's context of {context}")));
    }
    let max_new = cfg.max_new_tokens.min(context - max_prompt);
    let mut stop_ids: Vec<u32> = cfg.stop_token_ids.clone();
    stop_ids.extend(tok.eos_id());
    stop_ids.extend(model.config().eos_ids());
    let pad = tok.pad_id().or(tok.eos_id()).unwrap_or(0) as i64;

    // Left-pad the prompts: (B, max_prompt) ids and a (B, capacity) mask filled as we go.
    let capacity = max_prompt + max_new;
    let mut ids = vec![pad; b * max_prompt];
    let mut mask = vec![0i64; b * capacity];
    for (r, p) in prompts.iter().enumerate() {
        let off = max_prompt - p.len();
        for (j, &t) in p.iter().enumerate() {
            ids[r * max_prompt + off + j] = t as i64;
            mask[r * capacity + off + j] = 1;
        }
    }
    let input = Tensor::from_slice(&ids).view([b as i64, max_prompt as i64]).to_device(device);
    let mask = Tensor::from_slice(&mask).view([b as i64, capacity as i64]).to_device(device);
    let mut cache = KvCache::new(model.config(), b, capacity, device, model.dtype());
    let mut rows: Vec<Row> = prompts
        .iter()
        .map(|p| Row { stream: DecodeStream::new(tok, true), text: String::new(), emitted: 0, ids: vec![], seen: p.clone(), rng: StdRng::seed_from_u64(cfg.seed), done: None, produced: 0, first: None, elapsed: Duration::ZERO })
        .collect();

    let _guard = tch::no_grad_guard();
    let on_device_greedy = cfg.temperature == 0.0 && cfg.repetition_penalty == 1.0;
    let mut logits = last_logits(model, &input, &mask.narrow(1, 0, max_prompt as i64), &mut cache);
    for step in 0..max_new {
        if cancelled() {
            for row in rows.iter_mut().filter(|r| r.done.is_none()) {
                row.done = Some(FinishReason::Cancelled);
                row.elapsed = started.elapsed();
            }
            break;
        }
        // Plain greedy picks on the device and copies B ids; anything else needs the logits.
        let (host, picks) = if on_device_greedy {
            (Vec::new(), Vec::<i64>::try_from(logits.argmax(-1, false).to_device(tch::Device::Cpu))?)
        } else {
            (Vec::<f32>::try_from(logits.to_kind(Kind::Float).to_device(tch::Device::Cpu).flatten(0, -1))?, Vec::new())
        };
        let vocab = host.len() / b;
        let mut next = vec![pad; b];
        for (r, row) in rows.iter_mut().enumerate() {
            if row.done.is_some() {
                continue;
            }
            let token = if on_device_greedy { picks[r] as u32 } else { choose(&host[r * vocab..(r + 1) * vocab], &row.seen, cfg, &mut row.rng) };
            row.produced += 1;
            row.first.get_or_insert_with(|| started.elapsed());
            next[r] = token as i64;
            if stop_ids.contains(&token) {
                row.done = Some(FinishReason::Stop);
            } else {
                row.ids.push(token);
                row.seen.push(token);
                if let Some(piece) = row.stream.step(token)? {
                    row.text.push_str(&piece);
                }
                if let Some(cut) = find_stop(&row.text, &cfg.stop_strings) {
                    row.text.truncate(cut);
                    row.done = Some(FinishReason::Stop);
                }
            }
            if row.done.is_none() && step + 1 == max_new {
                row.done = Some(FinishReason::Length);
            }
            // Emit what can no longer turn into a stop string (everything, once the row ends).
            let safe = if row.done.is_some() { row.text.len() } else { row.text.len() - held_back(&row.text, &cfg.stop_strings) };
            if safe > row.emitted {
                on_text(r, &row.text[row.emitted..safe]);
                row.emitted = safe;
            }
            if row.done.is_some() {
                row.elapsed = started.elapsed();
            }
        }
        if rows.iter().all(|r| r.done.is_some()) {
            break;
        }
        let pos = (max_prompt + step) as i64;
        let _ = mask.narrow(1, pos, 1).fill_(1);
        let input = Tensor::from_slice(&next).view([b as i64, 1]).to_device(device);
        logits = last_logits(model, &input, &mask.narrow(1, 0, pos + 1), &mut cache);
    }
    Ok(rows
        .into_iter()
        .zip(prompts)
        .map(|(row, p)| GenerationOutput {
            text: row.text,
            token_ids: row.ids,
            completion_tokens: row.produced,
            prompt_tokens: p.len(),
            finish_reason: row.done.unwrap_or(FinishReason::Length),
            time_to_first_token: row.first.unwrap_or_default(),
            elapsed: if row.elapsed.is_zero() { started.elapsed() } else { row.elapsed },
        })
        .collect())
}

/// Run the model on new tokens and return the logits of each row's last position (B, vocab):
/// the LM head is applied to one position per row, not the whole prompt.
fn last_logits(model: &Llama, input: &Tensor, mask: &Tensor, cache: &mut KvCache) -> Tensor {
    let hidden = model.forward_hidden(input, Some(mask), Some(cache));
    model.logits(&hidden.select(1, -1))
}

/// Pick the next token from one row's logits.
fn choose(logits: &[f32], seen: &[u32], cfg: &GenerationConfig, rng: &mut StdRng) -> u32 {
    let mut scores: Vec<f32> = logits.to_vec();
    if cfg.repetition_penalty != 1.0 {
        let p = cfg.repetition_penalty as f32;
        let mut done = std::collections::HashSet::new();
        for &t in seen {
            if done.insert(t) {
                if let Some(s) = scores.get_mut(t as usize) {
                    *s = if *s < 0.0 { *s * p } else { *s / p };
                }
            }
        }
    }
    if cfg.temperature == 0.0 {
        return argmax(&scores);
    }
    let t = cfg.temperature;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let keep = cfg.top_k.unwrap_or(order.len()).min(order.len());
    order.truncate(keep);
    // Each score's distance below the best, divided by the temperature: never above 0, so no
    // temperature however small overflows (the best token gets exp(0) = 1, the rest at worst 0).
    let max = scores[order[0]];
    let mut probs: Vec<f64> = order.iter().map(|&i| ((scores[i] - max) as f64 / t).exp()).collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if let Some(top_p) = cfg.top_p {
        let mut cum = 0.0;
        let mut n = 0;
        for p in &probs {
            cum += p;
            n += 1;
            if cum >= top_p {
                break;
            }
        }
        probs.truncate(n);
        order.truncate(n);
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
    }
    let mut u: f64 = rng.random();
    for (p, &i) in probs.iter().zip(&order) {
        if u < *p {
            return i as u32;
        }
        u -= p;
    }
    order[order.len() - 1] as u32
}

fn argmax(xs: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in xs.iter().enumerate() {
        if *x > xs[best] {
            best = i;
        }
    }
    best as u32
}

/// Byte offset where the earliest stop string starts, if any occurs.
fn find_stop(text: &str, stops: &[String]) -> Option<usize> {
    stops.iter().filter(|s| !s.is_empty()).filter_map(|s| text.find(s.as_str())).min()
}

/// Length of the longest tail of `text` that is a proper prefix of a stop string (held back
/// from streaming until it resolves), always ending on a char boundary.
fn held_back(text: &str, stops: &[String]) -> usize {
    let mut best = 0;
    for s in stops {
        for (i, _) in s.char_indices().skip(1) {
            if text.ends_with(&s[..i]) {
                best = best.max(i);
            }
        }
    }
    best
}

/// Log-likelihood of a continuation given its context.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LogLikelihood {
    /// Sum of the continuation tokens' log-probabilities (natural log).
    pub logprob: f64,
    /// Whether greedy decoding from the context yields exactly the continuation.
    pub is_greedy: bool,
    /// Continuation tokens scored.
    pub n_tokens: usize,
    /// Continuation tokens that are the argmax of their position (for mean token accuracy).
    pub greedy_tokens: usize,
}

/// Score `(context, continuation)` token pairs in batches of `batch_size`. Requests are sorted
/// by length so batches pad little; results come back in request order. An empty context is
/// replaced by the BOS (or EOS) token, as lm-evaluation-harness does; over-long sequences lose
/// context tokens from the left.
pub fn loglikelihood(model: &Llama, tok: &Tokenizer, requests: &[(Vec<u32>, Vec<u32>)], batch_size: usize) -> Result<Vec<LogLikelihood>> {
    if let Some(i) = requests.iter().position(|(_, c)| c.is_empty()) {
        return Err(Error::Invalid(format!("request {i} has an empty continuation")));
    }
    let start_token = tok.bos_id().or(tok.eos_id()).unwrap_or(0);
    let max_len = model.config().max_position_embeddings + 1;
    let seqs: Vec<(Vec<u32>, usize)> = requests
        .iter()
        .map(|(ctx, cont)| {
            let ctx = if ctx.is_empty() { vec![start_token] } else { ctx.clone() };
            let mut seq = [ctx, cont.clone()].concat();
            if seq.len() > max_len {
                seq.drain(..seq.len() - max_len);
            }
            (seq, cont.len().min(max_len - 1))
        })
        .collect();
    let mut order: Vec<usize> = (0..seqs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(seqs[i].0.len()));
    let mut out = vec![LogLikelihood { logprob: 0.0, is_greedy: false, n_tokens: 0, greedy_tokens: 0 }; seqs.len()];
    let device = model.device();
    let _guard = tch::no_grad_guard();
    for chunk in order.chunks(batch_size.max(1)) {
        // Inputs are seq[..n-1] right-padded; the targets of the last `cont` positions are scored.
        let t = chunk.iter().map(|&i| seqs[i].0.len() - 1).max().unwrap_or(1);
        let (mut ids, mut mask) = (vec![0i64; chunk.len() * t], vec![0i64; chunk.len() * t]);
        let (mut rows_pos, mut targets) = (vec![], vec![]);
        for (r, &i) in chunk.iter().enumerate() {
            let (seq, n_cont) = &seqs[i];
            for (j, &tkn) in seq[..seq.len() - 1].iter().enumerate() {
                ids[r * t + j] = tkn as i64;
                mask[r * t + j] = 1;
            }
            for k in seq.len() - 1 - n_cont..seq.len() - 1 {
                rows_pos.push((r * t + k) as i64);
                targets.push(seq[k + 1] as i64);
            }
        }
        let b = chunk.len() as i64;
        let input = Tensor::from_slice(&ids).view([b, t as i64]).to_device(device);
        let mask = Tensor::from_slice(&mask).view([b, t as i64]).to_device(device);
        let hidden = model.forward_hidden(&input, Some(&mask), None); // (B, T, C)
        let picked = hidden.flatten(0, 1).index_select(0, &Tensor::from_slice(&rows_pos).to_device(device)); // (N, C)
        let logp = model.logits(&picked).to_kind(Kind::Float).log_softmax(-1, Kind::Float); // (N, V)
        let target = Tensor::from_slice(&targets).to_device(device);
        let tok_lp = Vec::<f32>::try_from(logp.gather(1, &target.unsqueeze(1), false).squeeze_dim(1).to_device(tch::Device::Cpu))?;
        let greedy = Vec::<bool>::try_from(logp.argmax(-1, false).eq_tensor(&target).to_device(tch::Device::Cpu))?;
        let mut at = 0;
        for &i in chunk {
            let n = seqs[i].1;
            out[i] = summed(&tok_lp[at..at + n], &greedy[at..at + n]);
            at += n;
        }
    }
    Ok(out)
}

fn summed(logprobs: &[f32], greedy: &[bool]) -> LogLikelihood {
    let greedy_tokens = greedy.iter().filter(|&&g| g).count();
    LogLikelihood { logprob: logprobs.iter().map(|&x| x as f64).sum(), is_greedy: greedy_tokens == greedy.len(), n_tokens: logprobs.len(), greedy_tokens }
}

/// One context with the continuations to score after it (the options of a multiple-choice
/// question).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreGroup {
    /// Context tokens (BOS included if the model wants one).
    pub context: Vec<u32>,
    /// Continuation tokens, each non-empty.
    pub continuations: Vec<Vec<u32>>,
}

/// Score several continuations of a shared context with one forward pass per group: the row
/// holds the context once followed by every continuation, and an attention pattern lets each
/// continuation see the context and itself only, at the positions it would have alone. The
/// results equal [`loglikelihood`] on each (context, continuation) pair, at roughly
/// 1 / n_options of the context cost. Groups are batched by length up to `max_batch_tokens`
/// padded tokens per forward pass. Over-long groups lose context tokens from the left.
pub fn loglikelihood_grouped(model: &Llama, tok: &Tokenizer, groups: &[ScoreGroup], max_batch_tokens: usize) -> Result<Vec<Vec<LogLikelihood>>> {
    for (i, g) in groups.iter().enumerate() {
        if g.continuations.is_empty() || g.continuations.iter().any(|c| c.is_empty()) {
            return Err(Error::Invalid(format!("group {i} has no continuation or an empty one")));
        }
    }
    let start_token = tok.bos_id().or(tok.eos_id()).unwrap_or(0);
    let max_pos = model.config().max_position_embeddings;
    // Each row: tokens, positions, and for each token the continuation it belongs to (0 = context).
    let rows: Vec<(Vec<u32>, Vec<i64>, Vec<usize>)> = groups
        .iter()
        .map(|g| {
            let mut ctx = if g.context.is_empty() { vec![start_token] } else { g.context.clone() };
            let longest = g.continuations.iter().map(Vec::len).max().unwrap_or(0);
            if ctx.len() + longest > max_pos {
                ctx.drain(..(ctx.len() + longest - max_pos).min(ctx.len() - 1));
            }
            let mut tokens = ctx.clone();
            let mut pos: Vec<i64> = (0..ctx.len() as i64).collect();
            let mut owner = vec![0usize; ctx.len()];
            for (k, c) in g.continuations.iter().enumerate() {
                tokens.extend_from_slice(c);
                pos.extend((0..c.len()).map(|j| (ctx.len() + j) as i64));
                owner.extend(std::iter::repeat_n(k + 1, c.len()));
            }
            (tokens, pos, owner)
        })
        .collect();
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(rows[i].0.len()));
    let mut out: Vec<Vec<LogLikelihood>> = groups.iter().map(|g| Vec::with_capacity(g.continuations.len())).collect();
    let device = model.device();
    let _guard = tch::no_grad_guard();
    let mut at = 0;
    while at < order.len() {
        // Longest first, so the first row of a batch sets its padded width.
        let t = rows[order[at]].0.len();
        let take = (max_batch_tokens / t.max(1)).clamp(1, order.len() - at);
        let chunk = &order[at..at + take];
        at += take;
        let b = chunk.len();
        let (mut ids, mut pos, mut mask) = (vec![0i64; b * t], vec![0i64; b * t], vec![false; b * t * t]);
        let (mut picks, mut targets) = (vec![], vec![]);
        for (r, &i) in chunk.iter().enumerate() {
            let (tokens, positions, owner) = &rows[i];
            let n_ctx = owner.iter().take_while(|&&o| o == 0).count();
            for q in 0..tokens.len() {
                ids[r * t + q] = tokens[q] as i64;
                pos[r * t + q] = positions[q];
                for k in 0..=q {
                    // Context keys are visible to everyone after them; continuation keys only
                    // to their own continuation.
                    if owner[k] == 0 || owner[k] == owner[q] {
                        mask[(r * t + q) * t + k] = true;
                    }
                }
            }
            // The prediction for a continuation's first token comes from the last context
            // position; later tokens from the previous token of the same continuation.
            let mut q = n_ctx;
            for c in &groups[i].continuations {
                for j in 0..c.len() {
                    let from = if j == 0 { n_ctx - 1 } else { q + j - 1 };
                    picks.push((r * t + from) as i64);
                    targets.push(tokens[q + j] as i64);
                }
                q += c.len();
            }
        }
        let input = Tensor::from_slice(&ids).view([b as i64, t as i64]).to_device(device);
        let positions = Tensor::from_slice(&pos).view([b as i64, t as i64]);
        let mask = Tensor::from_slice(&mask).view([b as i64, t as i64, t as i64]);
        let hidden = model.forward_hidden_masked(&input, &positions, &mask); // (B, T, C)
        let picked = hidden.flatten(0, 1).index_select(0, &Tensor::from_slice(&picks).to_device(device)); // (N, C)
        let logp = model.logits(&picked).to_kind(Kind::Float).log_softmax(-1, Kind::Float); // (N, V)
        let target = Tensor::from_slice(&targets).to_device(device);
        let tok_lp = Vec::<f32>::try_from(logp.gather(1, &target.unsqueeze(1), false).squeeze_dim(1).to_device(tch::Device::Cpu))?;
        let greedy = Vec::<bool>::try_from(logp.argmax(-1, false).eq_tensor(&target).to_device(tch::Device::Cpu))?;
        let mut k = 0;
        for &i in chunk {
            for c in &groups[i].continuations {
                out[i].push(summed(&tok_lp[k..k + c.len()], &greedy[k..k + c.len()]));
                k += c.len();
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_strings_cut_and_hold_back() {
        let stops = vec!["\nUser:".to_string(), "###".to_string()];
        assert_eq!(find_stop("Answer\nUser: hi", &stops), Some(6));
        assert_eq!(find_stop("no stop here", &stops), None);
        assert_eq!(held_back("Answer\nUs", &stops), 3);
        assert_eq!(held_back("Answer #", &stops), 1);
        assert_eq!(held_back("Answer", &stops), 0);
    }

    #[test]
    fn sampling_respects_top_k_top_p_and_seed() {
        let logits = [0.0f32, 5.0, 4.9, -3.0];
        let greedy = GenerationConfig::greedy(1);
        let mut rng = StdRng::seed_from_u64(0);
        assert_eq!(choose(&logits, &[], &greedy, &mut rng), 1);
        // A repetition penalty of 2 halves the positive logit of a seen token: 5 -> 2.5.
        let pen = GenerationConfig { repetition_penalty: 2.0, ..GenerationConfig::greedy(1) };
        assert_eq!(choose(&logits, &[1], &pen, &mut rng), 2);
        // top_k = 1 is greedy whatever the temperature.
        let k1 = GenerationConfig { temperature: 5.0, top_k: Some(1), ..Default::default() };
        assert!((0..50).all(|_| choose(&logits, &[], &k1, &mut rng) == 1));
        // top_p = 0.5 keeps token 1 (p ~ 0.52 at T=1) alone.
        let p = GenerationConfig { temperature: 1.0, top_p: Some(0.5), ..Default::default() };
        assert!((0..50).all(|_| choose(&logits, &[], &p, &mut rng) == 1));
        // Without truncation both near-equal tokens get drawn, and the same seed repeats.
        let free = GenerationConfig { temperature: 1.0, ..Default::default() };
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..64).map(|_| choose(&logits, &[], &free, &mut rng)).collect::<Vec<_>>()
        };
        let a = draw(7);
        assert!(a.contains(&1) && a.contains(&2));
        assert_eq!(a, draw(7));
        // A temperature too small for f32 (it became 0 there and sampling drew from NaN) is
        // as good as greedy.
        for t in [1e-40, 1e-300, f64::MIN_POSITIVE / 8.0] {
            let tiny = GenerationConfig { temperature: t, ..Default::default() };
            assert!((0..20).all(|_| choose(&logits, &[], &tiny, &mut rng) == 1), "temperature {t}");
        }
    }

    #[test]
    fn invalid_options_are_rejected() {
        assert!(GenerationConfig { temperature: -1.0, ..Default::default() }.validate().is_err());
        assert!(GenerationConfig { top_p: Some(1.5), ..Default::default() }.validate().is_err());
        assert!(GenerationConfig { top_k: Some(0), ..Default::default() }.validate().is_err());
    }
}
