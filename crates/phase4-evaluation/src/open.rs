//! Open questions: the model answers the held-out test split in its own words, scored against
//! the reference answers (exact match, token F1, BLEU, ROUGE, optionally an LLM judge), with
//! perplexity and mean token accuracy of the reference answers under the model (teacher
//! forcing, the numbers TRL's SFT trainer logs). Replies that decline are counted too (the same
//! phrase list as the probe below), overall and per `part` of the file (`recall`: new wordings
//! of taught facts, `unseen`: facts kept out of training): a model that declines everything
//! must not look safe, so over-refusal on answerable questions is reported beside the
//! hallucination rate. And the hallucination probe: questions the sources cannot answer, where
//! the right reply declines, reported per `kind` of question (future season, invented driver,
//! ...).

use std::collections::BTreeMap;
use std::path::Path;

use f1_core::ChatMessage;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::{Backend, LlRequest};
use crate::metrics::{exact_match, open_metrics, token_f1, OpenMetrics};
use crate::mcq::{chat_turns, DEFAULT_PART};
use crate::{Error, Result};

fn default_part() -> String {
    DEFAULT_PART.to_string()
}

fn unknown_kind() -> String {
    "unknown".to_string()
}

/// One open question with its reference answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenItem {
    /// Id (the file's, else `line-<n>`).
    pub id: String,
    /// The conversation up to the answer (system and user turns).
    pub prompt: Vec<ChatMessage>,
    /// The reference answer.
    pub reference: String,
    /// Category, if given.
    pub category: Option<String>,
    /// The file's `part` (`recall`, `unseen`, ...), else `all`.
    #[serde(default = "default_part")]
    pub part: String,
}

/// Read open questions from chat (`messages`, last turn the assistant's), Alpaca
/// (`instruction`, `input`, `output`) or plain (`question`, `answer`) JSONL.
pub fn read_open(path: &Path) -> Result<Vec<OpenItem>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut items = vec![];
    for (n, line) in f1_study::jsonl::lines(&text) {
        let err = |reason: String| Error::Data { path: path.to_path_buf(), line: n, reason };
        let v: Value = serde_json::from_str(line).map_err(|e| err(format!("not valid JSON: {e}")))?;
        let s = |k: &str| v.get(k).and_then(Value::as_str);
        let (prompt, reference) = if let Some(m) = v.get("messages") {
            let mut msgs: Vec<ChatMessage> = serde_json::from_value(m.clone()).map_err(|e| err(format!("`messages`: {e}")))?;
            match msgs.pop() {
                Some(last) if last.role == "assistant" && !msgs.is_empty() => (msgs, last.content),
                _ => return Err(err("`messages` must end with an assistant turn after at least one other".into())),
            }
        } else if let (Some(ins), Some(out)) = (s("instruction"), s("output")) {
            let input = s("input").unwrap_or("");
            let user = if input.is_empty() { ins.to_string() } else { format!("{ins}\n\n{input}") };
            (vec![ChatMessage::user(user)], out.to_string())
        } else if let (Some(q), Some(a)) = (s("question"), s("answer")) {
            (vec![ChatMessage::user(q)], a.to_string())
        } else {
            return Err(err("expected `messages`, `instruction`+`output` or `question`+`answer`".into()));
        };
        let id = s("id").map_or_else(|| format!("line-{n}"), str::to_string);
        items.push(OpenItem { id, prompt, reference, category: s("category").map(str::to_string), part: s("part").map_or_else(default_part, str::to_string) });
    }
    Ok(items)
}

/// One answered open question (a line of `open_items.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenResult {
    /// Item id.
    pub id: String,
    /// The item's part (`all` when the file has none).
    #[serde(default = "default_part")]
    pub part: String,
    /// The reference answer.
    pub reference: String,
    /// The model's answer (trimmed).
    pub prediction: String,
    /// Whether the answer declines ([`declines`]); on an answerable question that is a miss.
    #[serde(default)]
    pub declined: bool,
    /// Normalised exact match.
    pub exact_match: bool,
    /// Token F1.
    pub token_f1: f64,
    /// Reference answer log-probability and token counts, if the backend can score it.
    pub reference_logprob: Option<f64>,
    /// Reference answer tokens.
    pub reference_tokens: Option<usize>,
    /// Reference tokens the model would have predicted greedily.
    pub reference_greedy_tokens: Option<usize>,
    /// Judge score (1-5) and reason, when a judge ran.
    pub judge: Option<(u8, String)>,
}

/// Open-question summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenReport {
    /// Text metrics over the answers.
    pub metrics: OpenMetrics,
    /// exp(mean negative log-likelihood per reference token), if scored.
    pub perplexity: Option<f64>,
    /// Share of reference tokens that are the model's argmax, if scored.
    pub mean_token_accuracy: Option<f64>,
    /// The judge's summary, if a judge ran.
    pub judge: Option<crate::judge::JudgeSummary>,
    /// Answers that declined although the question is answerable.
    #[serde(default)]
    pub declined: usize,
    /// `declined / n` (over-refusal; 0 when there are no questions).
    #[serde(default)]
    pub declined_rate: f64,
    /// Per `part` of the file (`all` when it has none).
    #[serde(default)]
    pub by_part: BTreeMap<String, OpenPart>,
}

/// One part of the open questions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenPart {
    /// Questions.
    pub n: usize,
    /// Mean SQuAD token F1, 0..1.
    pub token_f1: f64,
    /// Mean SQuAD exact match, 0..1.
    pub exact_match: f64,
    /// Answers that declined.
    pub declined: usize,
    /// `declined / n`.
    pub declined_rate: f64,
}

fn rate(k: usize, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        k as f64 / n as f64
    }
}

/// Answer and score the open questions. Reference answers are scored by log-likelihood only
/// where the backend renders its chat template (in-process models).
pub fn evaluate_open(backend: &mut dyn Backend, items: &[OpenItem], max_new_tokens: usize, batch: usize) -> Result<Vec<OpenResult>> {
    let prompts: Vec<Vec<ChatMessage>> = items.iter().map(|i| i.prompt.clone()).collect();
    let bar = crate::mcq::progress(items.len(), "open answers");
    let mut replies = Vec::with_capacity(items.len());
    for part in prompts.chunks(batch.max(1) * 4) {
        replies.extend(backend.chat(part, max_new_tokens, batch)?);
        bar.inc(part.len() as u64);
    }
    bar.finish_and_clear();
    let contexts: Option<Vec<String>> = items.iter().map(|i| backend.render_chat(&i.prompt)).collect();
    let scored = match contexts {
        Some(ctx) => {
            let reqs: Vec<LlRequest> = ctx.into_iter().zip(items).map(|(c, i)| LlRequest { context: c, continuations: vec![i.reference.clone()] }).collect();
            Some(backend.loglikelihood(&reqs)?)
        }
        None => None,
    };
    Ok(items
        .iter()
        .zip(replies)
        .enumerate()
        .map(|(k, (item, reply))| {
            let prediction = reply.text.trim().to_string();
            let ll = scored.as_ref().map(|s| s[k][0]);
            OpenResult {
                id: item.id.clone(),
                part: item.part.clone(),
                declined: declines(&prediction),
                exact_match: exact_match(&prediction, &item.reference),
                token_f1: token_f1(&prediction, &item.reference),
                reference: item.reference.clone(),
                prediction,
                reference_logprob: ll.map(|l| l.logprob),
                reference_tokens: ll.map(|l| l.n_tokens),
                reference_greedy_tokens: ll.map(|l| l.greedy_tokens),
                judge: None,
            }
        })
        .collect())
}

/// Summarize open results.
pub fn open_report(results: &[OpenResult]) -> Result<OpenReport> {
    let preds: Vec<&str> = results.iter().map(|r| r.prediction.as_str()).collect();
    let refs: Vec<&str> = results.iter().map(|r| r.reference.as_str()).collect();
    let metrics = open_metrics(&preds, &refs)?;
    let tokens: usize = results.iter().filter_map(|r| r.reference_tokens).sum();
    let (perplexity, mean_token_accuracy) = if tokens > 0 && results.iter().all(|r| r.reference_tokens.is_some()) {
        let lp: f64 = results.iter().filter_map(|r| r.reference_logprob).sum();
        let greedy: usize = results.iter().filter_map(|r| r.reference_greedy_tokens).sum();
        (Some((-lp / tokens as f64).exp()), Some(greedy as f64 / tokens as f64))
    } else {
        (None, None)
    };
    let mut parts: BTreeMap<String, Vec<&OpenResult>> = BTreeMap::new();
    for r in results {
        parts.entry(r.part.clone()).or_default().push(r);
    }
    let by_part = parts
        .into_iter()
        .map(|(part, rs)| {
            let n = rs.len();
            let declined = rs.iter().filter(|r| r.declined).count();
            let f1 = rs.iter().map(|r| r.token_f1).sum::<f64>() / n as f64;
            let em = rs.iter().filter(|r| r.exact_match).count();
            let open = OpenPart { n, token_f1: f1, exact_match: rate(em, n), declined, declined_rate: rate(declined, n) };
            (part, open)
        })
        .collect();
    let declined = results.iter().filter(|r| r.declined).count();
    Ok(OpenReport { metrics, perplexity, mean_token_accuracy, judge: None, declined, declined_rate: rate(declined, results.len()), by_part })
}

/// Phrases that mark a reply as declining to answer (lowercase; matched anywhere).
const DECLINES: [&str; 26] = [
    "i don't know", "i do not know", "i'm not sure", "i am not sure", "not sure", "cannot", "can't", "unable to",
    "no information", "not available", "don't have", "do not have", "no data", "not aware", "no record",
    "has not happened", "hasn't happened", "has not yet", "hasn't yet", "yet to", "in the future", "not yet",
    "no way to know", "impossible to", "not possible to", "i apologize",
];

/// Whether a reply declines to answer.
pub fn declines(reply: &str) -> bool {
    let r = reply.to_lowercase().replace('\u{2019}', "'");
    DECLINES.iter().any(|d| r.contains(d))
}

/// One unanswerable question and the reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HallucinationResult {
    /// Id.
    pub id: String,
    /// The question.
    pub question: String,
    /// The file's `kind` (`future_season`, `invented_driver`, ...), else `unknown`.
    #[serde(default = "unknown_kind")]
    pub kind: String,
    /// The reply.
    pub reply: String,
    /// Whether it declined (the right behaviour).
    pub declined: bool,
}

/// Hallucination counts of one kind of question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindReport {
    /// Questions.
    pub n: usize,
    /// Replies that declined.
    pub declined: usize,
    /// Share of replies that answered anyway.
    pub hallucination_rate: f64,
}

/// Hallucination summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HallucinationReport {
    /// Questions.
    pub n: usize,
    /// Replies that declined.
    pub declined: usize,
    /// Share of replies that answered anyway (lower is better).
    pub hallucination_rate: f64,
    /// Per `kind` of question (`unknown` when the file has none).
    #[serde(default)]
    pub by_kind: BTreeMap<String, KindReport>,
}

/// Summarize the probe's replies, overall and per kind.
pub fn hallucination_report(results: &[HallucinationResult]) -> HallucinationReport {
    fn count<'a>(rs: impl Iterator<Item = &'a HallucinationResult>) -> KindReport {
        let (mut n, mut declined) = (0, 0);
        for r in rs {
            n += 1;
            declined += usize::from(r.declined);
        }
        KindReport { n, declined, hallucination_rate: rate(n - declined, n) }
    }
    let kinds: std::collections::BTreeSet<&str> = results.iter().map(|r| r.kind.as_str()).collect();
    let by_kind = kinds.into_iter().map(|k| (k.to_string(), count(results.iter().filter(|r| r.kind == k)))).collect();
    let all = count(results.iter());
    HallucinationReport { n: all.n, declined: all.declined, hallucination_rate: all.hallucination_rate, by_kind }
}

/// Ask the unanswerable questions (`{"id", "question", "kind", "why"}` JSONL, `kind` optional;
/// the first `limit`, 0 = all) after the study's system prompt, if any.
pub fn evaluate_unanswerable(backend: &mut dyn Backend, path: &Path, limit: usize, system: Option<&str>, max_new_tokens: usize, batch: usize) -> Result<(HallucinationReport, Vec<HallucinationResult>)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut qs = vec![];
    for (n, line) in f1_study::jsonl::lines(&text) {
        let err = |reason: String| Error::Data { path: path.to_path_buf(), line: n, reason };
        let v: Value = serde_json::from_str(line).map_err(|e| err(format!("not valid JSON: {e}")))?;
        let q = v.get("question").and_then(Value::as_str).ok_or_else(|| err("no `question` string".into()))?;
        let id = v.get("id").and_then(Value::as_str).map_or_else(|| format!("line-{n}"), str::to_string);
        let kind = v.get("kind").and_then(Value::as_str).map_or_else(unknown_kind, str::to_string);
        qs.push((id, q.to_string(), kind));
    }
    if limit > 0 {
        qs.truncate(limit);
    }
    let prompts: Vec<Vec<ChatMessage>> = qs.iter().map(|(_, q, _)| chat_turns(q, system)).collect();
    let replies = backend.chat(&prompts, max_new_tokens, batch)?;
    let results: Vec<HallucinationResult> = qs
        .into_iter()
        .zip(replies)
        .map(|((id, question, kind), r)| {
            let reply = r.text.trim().to_string();
            HallucinationResult { declined: declines(&reply), id, question, kind, reply }
        })
        .collect();
    Ok((hallucination_report(&results), results))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declining_replies_are_recognised() {
        assert!(declines("I'm sorry, but I don't know who will win in 2031."));
        assert!(declines("That race has not happened yet."));
        assert!(declines("I can\u{2019}t predict that."));
        assert!(!declines("Max Verstappen won the 2031 championship."));
    }
}
