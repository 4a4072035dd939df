//! Training examples from chat JSONL: each conversation is rendered with the model's own chat
//! template (the same one inference uses), tokenized, and labelled on the assistant's final
//! reply only (the prompt is masked with -100, as TRL's assistant-only loss does). The EOS that
//! ends the reply is labelled even when the tokenizer's pad token is the EOS, and truncation
//! cuts the prompt's start, never the reply's end. Batches are length-grouped and padded to
//! their own longest sequence.

use std::io::BufRead;
use std::path::Path;

use f1_core::loss::IGNORE;
use f1_core::{ChatMessage, LoadedModel};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Deserialize;
use tch::Tensor;

use crate::{Error, Result};

/// One tokenized, labelled example.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// Token ids of prompt + reply (+ EOS).
    pub input_ids: Vec<i64>,
    /// Same length; [`IGNORE`] on the prompt.
    pub labels: Vec<i64>,
    /// The conversation without its final reply (for sample generations).
    pub prompt: Vec<ChatMessage>,
    /// The reference reply.
    pub reply: String,
}

#[derive(Deserialize)]
struct ChatLine {
    messages: Vec<ChatMessage>,
}

/// Read chat JSONL; a malformed line is an error naming the file and line.
pub fn read_chat_jsonl(path: &Path, limit: Option<usize>) -> Result<Vec<Vec<ChatMessage>>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut out = vec![];
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: ChatLine = serde_json::from_str(&line).map_err(|e| Error::Data { path: path.into(), line: i + 1, reason: format!("not a chat record {{\"messages\": [...]}}: {e}") })?;
        match parsed.messages.last() {
            Some(m) if m.role == "assistant" && !m.content.trim().is_empty() => out.push(parsed.messages),
            _ => return Err(Error::Data { path: path.into(), line: i + 1, reason: "the last message must be a non-empty assistant reply".into() }),
        }
        if limit.is_some_and(|n| out.len() >= n) {
            break;
        }
    }
    if out.is_empty() {
        return Err(Error::Data { path: path.into(), line: 0, reason: "no examples (hint: run phase 1, `cargo xtask run-all`, or point data.train at your JSONL)".into() });
    }
    Ok(out)
}

/// Tokenize and label one conversation. The prompt is the conversation without its last
/// message rendered with the generation prompt, exactly as inference renders it; the full
/// text must extend it token for token, otherwise the template is inconsistent and training
/// would teach a format inference never shows.
pub fn encode(model: &LoadedModel, conv: &[ChatMessage], max_len: usize) -> std::result::Result<Example, String> {
    let (reply, prompt) = conv.split_last().ok_or("empty conversation")?;
    let tok = &model.tokenizer;
    let prompt_text = model.chat_template.render(prompt, true).map_err(|e| e.to_string())?;
    let full_text = model.chat_template.render(conv, false).map_err(|e| e.to_string())?;
    if !full_text.starts_with(&prompt_text) {
        return Err(format!("the chat template renders the conversation with a different prefix than the prompt inference uses:\nprompt: {prompt_text:?}\nfull:   {full_text:?}"));
    }
    let p_ids = f1_core::generate::encode_prompt(tok, &prompt_text).map_err(|e| e.to_string())?;
    let f_ids = f1_core::generate::encode_prompt(tok, &full_text).map_err(|e| e.to_string())?;
    if f_ids.len() < p_ids.len() || f_ids[..p_ids.len()] != p_ids[..] {
        return Err("tokenizing the full conversation does not extend the prompt's tokens (a merge across the prompt/reply boundary)".into());
    }
    let eos = tok.eos_id().ok_or("the tokenizer has no EOS token")?;
    // The reply ends at its first EOS (the template's closing token); what follows (a newline)
    // is never generated, so it is not trained on. Without an EOS in the template, append one.
    let mut reply_ids: Vec<u32> = f_ids[p_ids.len()..].to_vec();
    match reply_ids.iter().position(|&t| t == eos) {
        Some(i) => reply_ids.truncate(i + 1),
        None => reply_ids.push(eos),
    }
    if reply_ids.len() <= 1 {
        return Err("the reply is empty after tokenization".into());
    }
    // Keep the reply whole (EOS included) and cut the prompt from the left if needed.
    let mut prompt_ids = p_ids;
    if prompt_ids.len() + reply_ids.len() > max_len {
        let room = max_len.saturating_sub(reply_ids.len());
        if room < 2 {
            reply_ids.drain(..reply_ids.len() - (max_len - 2).min(reply_ids.len()));
            let keep = 2.min(prompt_ids.len());
            prompt_ids.drain(..prompt_ids.len() - keep);
        } else {
            prompt_ids.drain(..prompt_ids.len() - room);
        }
    }
    let input_ids: Vec<i64> = prompt_ids.iter().chain(&reply_ids).map(|&t| t as i64).collect();
    let labels: Vec<i64> = prompt_ids.iter().map(|_| IGNORE).chain(reply_ids.iter().map(|&t| t as i64)).collect();
    Ok(Example { input_ids, labels, prompt: prompt.to_vec(), reply: reply.content.clone() })
}

/// Encode every conversation; examples that cannot be encoded are errors naming their index.
pub fn encode_all(model: &LoadedModel, convs: &[Vec<ChatMessage>], max_len: usize, origin: &Path) -> Result<Vec<Example>> {
    convs.iter().enumerate().map(|(i, c)| encode(model, c, max_len).map_err(|reason| Error::Data { path: origin.into(), line: i + 1, reason })).collect()
}

/// Checks before the first step: decode a few examples with their label mask (logged so a
/// person can see exactly what is trained on) and fail on an empty mask, a double BOS, or a
/// missing EOS at the end of the labels.
pub fn preflight(model: &LoadedModel, examples: &[Example], show: usize) -> Result<()> {
    let tok = &model.tokenizer;
    for (i, ex) in examples.iter().enumerate() {
        let labelled: Vec<u32> = ex.labels.iter().filter(|&&l| l != IGNORE).map(|&l| l as u32).collect();
        if labelled.is_empty() {
            return Err(Error::Preflight(format!("example {i} has no labelled token")));
        }
        if let Some(bos) = tok.bos_id() {
            if ex.input_ids.len() > 1 && ex.input_ids[0] == bos as i64 && ex.input_ids[1] == bos as i64 {
                return Err(Error::Preflight(format!("example {i} starts with two BOS tokens (the template adds one and so does the tokenizer)")));
            }
        }
        if labelled.last().copied() != tok.eos_id() {
            return Err(Error::Preflight(format!("example {i}: the labels do not end with EOS, so the model would never learn to stop")));
        }
        if i < show {
            let prompt: Vec<u32> = ex.input_ids.iter().zip(&ex.labels).filter(|(_, &l)| l == IGNORE).map(|(&t, _)| t as u32).collect();
            let p = tok.decode(&prompt, false).unwrap_or_default();
            let l = tok.decode(&labelled, false).unwrap_or_default();
            tracing::info!("preflight example {i}: masked prompt {p:?} | trained on {l:?}");
        }
    }
    Ok(())
}

/// A micro-batch: each row holds one example (padded) or several (packed).
#[derive(Debug)]
pub struct Batch {
    /// (B, T) token ids, right-padded.
    pub input_ids: Tensor,
    /// (B, T) 1 for real tokens.
    pub attention_mask: Tensor,
    /// (B, T) example number within the row (1, 2, ...; 0 on padding), when packed.
    pub segment_ids: Option<Tensor>,
    /// (B, T) position within the example, when packed.
    pub position_ids: Option<Tensor>,
    /// (B, T) labels, [`IGNORE`] on prompt and padding.
    pub labels: Tensor,
    /// Real (non-pad) tokens in the batch.
    pub tokens: usize,
}

impl Batch {
    /// The layout for [`f1_core::loss::masked_lm_loss`], on `device`.
    pub fn to_device(&self, device: tch::Device) -> (Tensor, Tensor, Option<(Tensor, Tensor)>, Tensor) {
        let packed = self.segment_ids.as_ref().zip(self.position_ids.as_ref()).map(|(s, p)| (s.to_device(device), p.to_device(device)));
        (self.input_ids.to_device(device), self.attention_mask.to_device(device), packed, self.labels.to_device(device))
    }
}

/// Pad rows of examples (each row a list of example indices) into one batch. Padding uses
/// `pad` ids but is never labelled, so an EOS used as pad is still learned where it really
/// ends a reply. With `packed`, rows carry segment and position ids so examples sharing a row
/// never attend to each other.
pub fn collate(examples: &[Example], rows: &[Vec<usize>], pad: i64, packed: bool) -> Batch {
    let len = |row: &Vec<usize>| row.iter().map(|&i| examples[i].input_ids.len()).sum::<usize>();
    let t = rows.iter().map(len).max().unwrap_or(1).max(1);
    let b = rows.len();
    let (mut ids, mut mask, mut labels) = (vec![pad; b * t], vec![0i64; b * t], vec![IGNORE; b * t]);
    let (mut seg, mut pos) = (vec![0i64; b * t], vec![0i64; b * t]);
    let mut tokens = 0;
    for (r, row) in rows.iter().enumerate() {
        let mut j = r * t;
        for (s, &i) in row.iter().enumerate() {
            let ex = &examples[i];
            for (p, (&x, &y)) in ex.input_ids.iter().zip(&ex.labels).enumerate() {
                ids[j] = x;
                mask[j] = 1;
                labels[j] = y;
                seg[j] = s as i64 + 1;
                pos[j] = p as i64;
                j += 1;
            }
            tokens += ex.input_ids.len();
        }
    }
    let shape = [b as i64, t as i64];
    let t = |v: Vec<i64>| Tensor::from_slice(&v).view(shape);
    let (segment_ids, position_ids) = if packed { (Some(t(seg)), Some(t(pos))) } else { (None, None) };
    Batch { input_ids: t(ids), attention_mask: t(mask), segment_ids, position_ids, labels: t(labels), tokens }
}

/// The micro-batches of one epoch, each a list of rows of example indices. Examples are
/// shuffled with `seed + epoch`. Unpacked: one example per row, grouped by length inside
/// windows of 64 batches (little padding, order still random), batches shuffled. Packed:
/// examples fill rows of up to `max_len` tokens in shuffled order (first fit), rows are
/// grouped into batches. Deterministic, so a resumed run sees the same order.
pub fn epoch_batches(examples: &[Example], batch_size: usize, seed: u64, epoch: usize, packing: Option<usize>) -> Vec<Vec<Vec<usize>>> {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(epoch as u64 * 1_000_003));
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.shuffle(&mut rng);
    if let Some(max_len) = packing {
        let mut rows: Vec<(usize, Vec<usize>)> = vec![];
        for i in order {
            let n = examples[i].input_ids.len();
            match rows.iter_mut().find(|(used, _)| used + n <= max_len) {
                Some((used, row)) => {
                    *used += n;
                    row.push(i);
                }
                None => rows.push((n, vec![i])),
            }
        }
        return rows.into_iter().map(|(_, r)| r).collect::<Vec<_>>().chunks(batch_size).map(<[Vec<usize>]>::to_vec).collect();
    }
    let mut batches = vec![];
    for window in order.chunks(batch_size * 64) {
        let mut w = window.to_vec();
        w.sort_by_key(|&i| examples[i].input_ids.len());
        batches.extend(w.chunks(batch_size).map(|c| c.iter().map(|&i| vec![i]).collect::<Vec<_>>()));
    }
    batches.shuffle(&mut rng);
    batches
}
