//! Multiple-choice evaluation: the same items scored four ways, each a column of the report.
//!
//! - Chat (the primary column): the question as a user turn after the study's system prompt,
//!   rendered with the model's chat template with the assistant's turn opened, and each option's
//!   text scored as the start of the reply ([`chat_request`]); that is where training puts the
//!   answer. `acc` picks the highest summed log-probability, `acc_norm` the highest
//!   log-probability per character (lm-evaluation-harness's `acc_norm`). Skipped, with a warning,
//!   for a backend without a chat template.
//! - Plain: lm-evaluation-harness's format, the context `Question: <stem>\nAnswer:` and each
//!   option as the continuation ` <option>` ([`ll_request`]), same `acc` and `acc_norm`. A
//!   fine-tune that learnt the chat format can lose here what it gained there, so both are kept.
//! - Circular: letter scoring with every rotation of the options (`circular`, CircularEval).
//! - Generative: the question with lettered options as a chat turn, a greedy reply, and strict
//!   answer extraction: a reply counts only if it opens with a letter that stands alone
//!   (`B`, `B.`, `(B)`, `B) Monaco`, `Answer: B`) or is exactly one option's text. Anything
//!   else is Invalid, counted apart from Incorrect, as in the reference study's baseline table.
//!
//! All options of a question are scored in one pass over the shared context. Items come from any
//! MCQ JSONL: ours (`options` + `answer` letter, `part`, `fact_keys`), or the common shapes of
//! public benchmarks (`choices` list or `{text, label}` object, `answer`/`label`/`gold` index,
//! `answerKey` letter or digit, MMLU-style `A`..`D` columns). The summaries (overall, per part
//! with cluster-bootstrap intervals) are in `mcq_report`, re-exported here.

use std::path::Path;

use f1_core::ChatMessage;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::{Backend, LlRequest};
use crate::circular::{self, CircularOutcome};
use crate::{Error, Result};

pub use crate::mcq_report::{report, report_resampled, Breakdown, GenReport, LlReport, McqReport, PartReport};

/// Option letters, in order.
pub const LETTERS: [char; 10] = ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J'];

/// One multiple-choice question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McqItem {
    /// Stable id (the file's `id`, else `line-<n>`).
    pub id: String,
    /// The stem.
    pub question: String,
    /// Two to ten options.
    pub options: Vec<String>,
    /// Index of the right option.
    pub answer_index: usize,
    /// Category, if the file has one (`category` or `subject`).
    pub category: Option<String>,
    /// Difficulty, if the file has one.
    pub difficulty: Option<String>,
    /// Control question (its facts were kept out of training), if the file says.
    pub control: Option<bool>,
    /// The benchmark part it belongs to (`recall`, `control`, `reasoning`, ...): the file's
    /// `part`, else [`DEFAULT_PART`]. Every part is reported on its own.
    #[serde(default = "default_part")]
    pub part: String,
    /// Keys of the facts the question rests on (the file's `fact_keys`; empty when it has none,
    /// then the item is a cluster of its own in resampling).
    #[serde(default)]
    pub fact_keys: Vec<String>,
}

/// The part of an item whose file names none.
pub const DEFAULT_PART: &str = "all";

fn default_part() -> String {
    DEFAULT_PART.to_string()
}

/// Read an MCQ JSONL file; every line must be a question (blank lines are skipped). Errors
/// name the file, the line and the field.
pub fn read_mcq(path: &Path) -> Result<Vec<McqItem>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut items = Vec::new();
    for (n, line) in f1_study::jsonl::lines(&text) {
        let err = |reason: String| Error::Data { path: path.to_path_buf(), line: n, reason };
        let v: Value = serde_json::from_str(line).map_err(|e| err(format!("not valid JSON: {e}")))?;
        items.push(parse_item(&v, n).map_err(err)?);
    }
    if items.is_empty() {
        return Err(Error::Data { path: path.to_path_buf(), line: 0, reason: "no questions in the file".into() });
    }
    Ok(items)
}

fn str_field<'a>(v: &'a Value, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|n| v.get(*n).and_then(Value::as_str))
}

/// One question from any of the supported JSON shapes.
pub fn parse_item(v: &Value, line: usize) -> std::result::Result<McqItem, String> {
    let question = str_field(v, &["question", "query", "stem", "prompt"]).ok_or("no `question` (or `query`, `stem`, `prompt`) string")?.trim().to_string();
    let as_strings = |a: &Vec<Value>| a.iter().map(|o| o.as_str().map(str::to_string).or_else(|| o.as_f64().map(|x| x.to_string()))).collect::<Option<Vec<String>>>();
    let options: Vec<String> = match v.get("options").or_else(|| v.get("choices")) {
        Some(Value::Array(a)) => as_strings(a).ok_or("`options` must be a list of strings")?,
        Some(Value::Object(o)) => match o.get("text") {
            Some(Value::Array(a)) => as_strings(a).ok_or("`choices.text` must be a list of strings")?,
            _ => return Err("`choices` object without a `text` list".into()),
        },
        Some(_) => return Err("`options` must be a list".into()),
        None => {
            let cols: Vec<String> = LETTERS.iter().map_while(|l| v.get(l.to_string()).and_then(Value::as_str).map(str::to_string)).collect();
            if cols.is_empty() {
                return Err("no `options` or `choices` list (nor `A`, `B`, ... fields)".into());
            }
            cols
        }
    };
    if !(2..=LETTERS.len()).contains(&options.len()) {
        return Err(format!("{} options; 2 to {} are supported", options.len(), LETTERS.len()));
    }
    if options.iter().any(|o| o.trim().is_empty()) {
        return Err("an option is empty".into());
    }
    let labels: Option<Vec<String>> = v.get("choices").and_then(|c| c.get("label")).and_then(Value::as_array).map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect());
    let from_letter = |s: &str| -> Option<usize> {
        let s = s.trim();
        if let Some(l) = &labels {
            if let Some(i) = l.iter().position(|x| x == s) {
                return Some(i);
            }
        }
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii_uppercase() => LETTERS.iter().position(|&l| l == c),
            // ARC writes some keys as "1".."4".
            (Some(c), None) if c.is_ascii_digit() => c.to_digit(10).and_then(|d| (d as usize).checked_sub(1)),
            _ => None,
        }
    };
    let answer_index = if let Some(i) = v.get("answer_index").and_then(Value::as_u64) {
        i as usize
    } else if let Some(a) = v.get("answer").or_else(|| v.get("answerKey")).or_else(|| v.get("label")).or_else(|| v.get("gold")) {
        match a {
            Value::Number(n) => n.as_u64().ok_or("`answer` must be a non-negative index")? as usize,
            Value::String(s) => from_letter(s).or_else(|| options.iter().position(|o| o == s)).ok_or_else(|| format!("`answer` {s:?} is neither a letter, an index nor an option's text"))?,
            _ => return Err("`answer` must be a letter or an index".into()),
        }
    } else {
        return Err("no `answer` (or `answer_index`, `answerKey`, `label`, `gold`)".into());
    };
    if answer_index >= options.len() {
        return Err(format!("answer index {answer_index} is out of range for {} options", options.len()));
    }
    let id = v.get("id").map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string())).unwrap_or_else(|| format!("line-{line}"));
    Ok(McqItem {
        id,
        question,
        options,
        answer_index,
        category: str_field(v, &["category", "subject"]).map(str::to_string),
        difficulty: v.get("difficulty").map(|d| d.as_str().map(str::to_string).unwrap_or_else(|| d.to_string())),
        control: v.get("control").and_then(Value::as_bool),
        part: str_field(v, &["part"]).map_or_else(default_part, str::to_string),
        fact_keys: match v.get("fact_keys") {
            Some(Value::Array(a)) => a.iter().map(|k| k.as_str().map(str::to_string).ok_or("`fact_keys` must be a list of strings")).collect::<std::result::Result<_, _>>()?,
            Some(_) => return Err("`fact_keys` must be a list of strings".into()),
            None => Vec::new(),
        },
    })
}

/// The conversation that asks `question` in chat format: the study's system prompt (when one
/// is set) and the question as the user's turn, exactly as the training pairs are rendered.
pub fn chat_turns(question: &str, system: Option<&str>) -> Vec<ChatMessage> {
    let mut m = Vec::with_capacity(2);
    if let Some(s) = system.filter(|s| !s.trim().is_empty()) {
        m.push(ChatMessage::system(s));
    }
    m.push(ChatMessage::user(question));
    m
}

/// The answer-text (cloze) request in the format the model is trained in: the question as a
/// user turn rendered by the model's chat template with the assistant's turn opened, and each
/// option scored as the start of the assistant's reply. `render` is the backend's
/// [`Backend::render_chat`]; `None` when the model has no template.
pub fn chat_request(item: &McqItem, system: Option<&str>, render: impl Fn(&[ChatMessage]) -> Option<String>) -> Option<LlRequest> {
    let context = render(&chat_turns(&item.question, system))?;
    Some(LlRequest { context, continuations: item.options.clone() })
}

/// The log-likelihood request of an item: lm-evaluation-harness's `Question: ...\nAnswer:`
/// context with ` <option>` continuations.
pub fn ll_request(item: &McqItem) -> LlRequest {
    LlRequest { context: format!("Question: {}\nAnswer:", item.question), continuations: item.options.iter().map(|o| format!(" {o}")).collect() }
}

/// The user turn that asks for a letter: the question, its options lettered `A.`, `B.`, ... one
/// per line, and `Answer:` (the generative mode's and the circular mode's prompt).
pub fn letter_prompt(question: &str, options: &[String]) -> String {
    let letters: Vec<String> = LETTERS[..options.len().min(LETTERS.len())].iter().map(char::to_string).collect();
    let mut text = format!("Answer the following multiple-choice question. Reply with the letter ({}) of the correct option only.\n\nQuestion: {}\n", letters.join(", "), question);
    for (l, o) in letters.iter().zip(options) {
        text.push_str(&format!("{l}. {o}\n"));
    }
    text.push_str("Answer:");
    text
}

/// The conversation of the generative mode: the study's system prompt (if any) and the letter
/// prompt as the user's turn.
pub fn generative_prompt(item: &McqItem, system: Option<&str>) -> Vec<ChatMessage> {
    chat_turns(&letter_prompt(&item.question, &item.options), system)
}

/// The option a reply chooses under strict extraction, or `None` (Invalid).
pub fn extract_choice(reply: &str, options: &[String]) -> Option<usize> {
    let mut t = reply.trim().trim_matches('*').trim();
    for prefix in ["the correct answer is", "the answer is", "correct answer:", "answer:"] {
        if t.len() >= prefix.len() && t.is_char_boundary(prefix.len()) && t[..prefix.len()].eq_ignore_ascii_case(prefix) {
            t = t[prefix.len()..].trim_start().trim_start_matches('*').trim_start();
            break;
        }
    }
    let t = t.strip_prefix('(').unwrap_or(t);
    let mut chars = t.char_indices();
    if let Some((_, c)) = chars.next() {
        if let Some(idx) = LETTERS[..options.len()].iter().position(|&l| l == c) {
            let rest = &t[c.len_utf8()..];
            match rest.chars().next() {
                None => return Some(idx),
                Some(n) if ".):,*".contains(n) => return Some(idx),
                // "A Monaco" is only the letter if the option's text follows; "A driver ..."
                // is an article, not an answer.
                Some(n) if n.is_whitespace() && normalize(rest).starts_with(&normalize(&options[idx])) => return Some(idx),
                _ => {}
            }
        }
    }
    let whole = normalize(reply);
    let hits: Vec<usize> = options.iter().enumerate().filter(|(_, o)| normalize(o) == whole).map(|(i, _)| i).collect();
    (hits.len() == 1).then(|| hits[0])
}

fn normalize(s: &str) -> String {
    s.trim().trim_end_matches('.').trim().to_lowercase()
}

/// Per-item log-likelihood outcome (chat or plain format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlOutcome {
    /// Summed log-probability of each option.
    pub logprobs: Vec<f64>,
    /// Option chosen by `acc`.
    pub pred: usize,
    /// Option chosen by `acc_norm` (per character).
    pub pred_norm: usize,
}

/// Correct, Incorrect or Invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The extracted choice is the answer.
    Correct,
    /// The extracted choice is another option.
    Incorrect,
    /// No choice could be extracted.
    Invalid,
}

/// Per-item generative outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenOutcome {
    /// The reply.
    pub reply: String,
    /// The extracted option.
    pub choice: Option<usize>,
    /// The verdict.
    pub verdict: Verdict,
}

/// Everything measured on one item (a line of `mcq_items.jsonl`; pairs variants by `id`). Files
/// written before the chat and circular modes existed still read: the new fields default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemResult {
    /// Item id.
    pub id: String,
    /// Right option.
    pub answer_index: usize,
    /// Benchmark part (`recall`, `control`, `reasoning`, ...; [`DEFAULT_PART`] when unmarked).
    #[serde(default = "default_part")]
    pub part: String,
    /// Facts the question rests on (clusters of the bootstrap).
    #[serde(default)]
    pub fact_keys: Vec<String>,
    /// Category.
    pub category: Option<String>,
    /// Difficulty.
    pub difficulty: Option<String>,
    /// Control question.
    pub control: Option<bool>,
    /// Chat-format answer-text mode.
    #[serde(default)]
    pub chat: Option<LlOutcome>,
    /// Plain `Question:/Answer:` log-likelihood mode.
    pub ll: Option<LlOutcome>,
    /// Circular letter mode.
    #[serde(default)]
    pub circular: Option<CircularOutcome>,
    /// Generative mode.
    pub generative: Option<GenOutcome>,
}

impl ItemResult {
    /// Chat-format `acc` outcome.
    pub fn chat_correct(&self) -> Option<bool> {
        self.chat.as_ref().map(|l| l.pred == self.answer_index)
    }

    /// Chat-format `acc_norm` outcome.
    pub fn chat_norm_correct(&self) -> Option<bool> {
        self.chat.as_ref().map(|l| l.pred_norm == self.answer_index)
    }

    /// Plain-format `acc` outcome.
    pub fn ll_correct(&self) -> Option<bool> {
        self.ll.as_ref().map(|l| l.pred == self.answer_index)
    }

    /// Plain-format `acc_norm` outcome.
    pub fn ll_norm_correct(&self) -> Option<bool> {
        self.ll.as_ref().map(|l| l.pred_norm == self.answer_index)
    }

    /// Circular outcome: right in every rotation.
    pub fn circular_correct(&self) -> Option<bool> {
        self.circular.as_ref().map(CircularOutcome::correct)
    }

    /// Generative outcome (Invalid counts as not correct).
    pub fn gen_correct(&self) -> Option<bool> {
        self.generative.as_ref().map(|g| g.verdict == Verdict::Correct)
    }
}

/// Per-item outcome of one mode.
pub type ModeOutcome = fn(&ItemResult) -> Option<bool>;

/// Every scored mode, in report order, by the name `eval.json`'s `by_part` and
/// `comparison.json` use: `chat_acc`, `chat_acc_norm`, `acc` and `acc_norm` (the plain format,
/// named as lm-evaluation-harness and earlier results name them), `circular`, `generative`.
pub const MODES: [(&str, ModeOutcome); 6] = [
    ("chat_acc", ItemResult::chat_correct),
    ("chat_acc_norm", ItemResult::chat_norm_correct),
    ("acc", ItemResult::ll_correct),
    ("acc_norm", ItemResult::ll_norm_correct),
    ("circular", ItemResult::circular_correct),
    ("generative", ItemResult::gen_correct),
];

/// A progress bar for `n` items labelled `what`.
pub fn progress(n: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(n as u64);
    if let Ok(style) = ProgressStyle::with_template("{msg:>14} [{bar:30}] {pos}/{len} {per_sec} eta {eta}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// Index of the largest value; the first of equal maxima, as numpy's argmax.
pub fn argmax(xs: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, x) in xs.enumerate() {
        if x > best.1 {
            best = (i, x);
        }
    }
    best.0
}

/// Score prepared requests (one per item, in item order), `chunk` per backend call, into
/// `acc`/`acc_norm` outcomes. `acc_norm` divides by the characters of the option's text as
/// written in the request, leading space included, as lm-evaluation-harness does.
fn score_options(backend: &mut dyn Backend, requests: &[LlRequest], chunk: usize, what: &str) -> Result<Vec<LlOutcome>> {
    let bar = progress(requests.len(), what);
    let mut out = Vec::with_capacity(requests.len());
    for part in requests.chunks(chunk.max(1)) {
        let scores = backend.loglikelihood(part)?;
        for (req, s) in part.iter().zip(scores) {
            let logprobs: Vec<f64> = s.iter().map(|l| l.logprob).collect();
            let pred = argmax(logprobs.iter().copied());
            let pred_norm = argmax(logprobs.iter().zip(&req.continuations).map(|(lp, c)| lp / c.chars().count().max(1) as f64));
            out.push(LlOutcome { logprobs, pred, pred_norm });
        }
        bar.inc(part.len() as u64);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// Score every item by log-likelihood in the plain `Question:/Answer:` format, `chunk`
/// questions per backend call.
pub fn score_loglikelihood(backend: &mut dyn Backend, items: &[McqItem], chunk: usize) -> Result<Vec<LlOutcome>> {
    let requests: Vec<LlRequest> = items.iter().map(ll_request).collect();
    score_options(backend, &requests, chunk, "mcq plain")
}

/// Score every item's option texts as the start of the assistant's reply in the chat format
/// ([`chat_request`]), `chunk` questions per backend call. `None` when the backend has no chat
/// template to render the context with.
pub fn score_chat(backend: &mut dyn Backend, items: &[McqItem], system: Option<&str>, chunk: usize) -> Result<Option<Vec<LlOutcome>>> {
    let requests: Option<Vec<LlRequest>> = items.iter().map(|it| chat_request(it, system, |m| backend.render_chat(m))).collect();
    match requests {
        Some(r) => Ok(Some(score_options(backend, &r, chunk, "mcq chat")?)),
        None => Ok(None),
    }
}

/// Answer every item generatively (after the study's system prompt, if any) and judge the
/// replies strictly.
pub fn score_generative(backend: &mut dyn Backend, items: &[McqItem], system: Option<&str>, max_new_tokens: usize, batch: usize) -> Result<Vec<GenOutcome>> {
    let bar = progress(items.len(), "mcq generate");
    let mut out = Vec::with_capacity(items.len());
    for part in items.chunks(batch.max(1) * 4) {
        let prompts: Vec<Vec<ChatMessage>> = part.iter().map(|it| generative_prompt(it, system)).collect();
        for (item, g) in part.iter().zip(backend.chat(&prompts, max_new_tokens, batch)?) {
            let choice = extract_choice(&g.text, &item.options);
            let verdict = match choice {
                None => Verdict::Invalid,
                Some(c) if c == item.answer_index => Verdict::Correct,
                Some(_) => Verdict::Incorrect,
            };
            out.push(GenOutcome { reply: g.text, choice, verdict });
        }
        bar.inc(part.len() as u64);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// Outcomes of a mode run on the items at `picked` (a subset), placed at those positions.
fn placed<T>(n: usize, picked: Vec<usize>, outcomes: Vec<T>) -> Vec<Option<T>> {
    let mut all: Vec<Option<T>> = (0..n).map(|_| None).collect();
    for (i, o) in picked.into_iter().zip(outcomes) {
        all[i] = Some(o);
    }
    all
}

fn warn_no_template(backend: &dyn Backend, mode: &str) {
    tracing::warn!("the {mode} multiple-choice mode needs the model's chat template, which {} does not expose; skipped", backend.describe());
}

/// Run the chosen modes over `items` and pair the outcomes with the items. `system` is the
/// study's system prompt, used by every chat-format mode. The chat and circular modes need the
/// backend's chat template; without one they are skipped with a warning.
pub fn evaluate(backend: &mut dyn Backend, items: &[McqItem], modes: &McqModes, system: Option<&str>) -> Result<Vec<ItemResult>> {
    let n = items.len();
    let mut chat: Vec<Option<LlOutcome>> = vec![None; n];
    if modes.chat {
        match score_chat(backend, items, system, modes.chunk)? {
            Some(v) => chat = v.into_iter().map(Some).collect(),
            None => warn_no_template(backend, "chat"),
        }
    }
    let ll: Vec<Option<LlOutcome>> = if modes.loglikelihood { score_loglikelihood(backend, items, modes.chunk)?.into_iter().map(Some).collect() } else { vec![None; n] };
    let mut circ: Vec<Option<CircularOutcome>> = vec![None; n];
    if modes.circular {
        let picked = spread(n, modes.circular_questions);
        let subset: Vec<McqItem> = picked.iter().map(|&i| items[i].clone()).collect();
        match circular::score_circular(backend, &subset, system, modes.chunk)? {
            Some(v) => circ = placed(n, picked, v),
            None => warn_no_template(backend, "circular"),
        }
    }
    let mut gen: Vec<Option<GenOutcome>> = vec![None; n];
    if modes.generative {
        let picked = spread(n, modes.generative_questions);
        let subset: Vec<McqItem> = picked.iter().map(|&i| items[i].clone()).collect();
        let outcomes = score_generative(backend, &subset, system, modes.max_new_tokens, modes.batch)?;
        gen = placed(n, picked, outcomes);
    }
    Ok(items
        .iter()
        .zip(chat)
        .zip(ll)
        .zip(circ)
        .zip(gen)
        .map(|((((it, chat), ll), circular), generative)| ItemResult {
            id: it.id.clone(),
            answer_index: it.answer_index,
            part: it.part.clone(),
            fact_keys: it.fact_keys.clone(),
            category: it.category.clone(),
            difficulty: it.difficulty.clone(),
            control: it.control,
            chat,
            ll,
            circular,
            generative,
        })
        .collect())
}

/// `k` indices spread evenly over `0..n` (all of them when `k` is 0 or at least `n`), so a
/// subset of a file grouped by category still samples every part of it.
pub fn spread(n: usize, k: usize) -> Vec<usize> {
    if k == 0 || k >= n {
        return (0..n).collect();
    }
    (0..k).map(|j| j * n / k).collect()
}

/// Which modes to run and how. Every field has a default, so configs written before a mode
/// existed still parse (and run it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McqModes {
    /// Score option texts as the start of the assistant's reply in the chat format (primary).
    pub chat: bool,
    /// Score options in the plain `Question:/Answer:` format of lm-evaluation-harness.
    pub loglikelihood: bool,
    /// Score letters over every rotation of the options (CircularEval).
    pub circular: bool,
    /// Generate and extract the answer.
    pub generative: bool,
    /// Questions per log-likelihood call (each question is one request in the chat and plain
    /// modes, one per option in the circular mode).
    pub chunk: usize,
    /// Reply budget in generative mode.
    pub max_new_tokens: usize,
    /// Conversations decoded together in generative mode.
    pub batch: usize,
    /// Questions the generative mode answers, spread evenly over the benchmark (0 = all): it
    /// decodes a dozen tokens per question, so it costs several times the log-likelihood mode.
    pub generative_questions: usize,
    /// Questions the circular mode scores, spread evenly (0 = all): it reads each question once
    /// per option.
    pub circular_questions: usize,
}

impl Default for McqModes {
    fn default() -> Self {
        McqModes { chat: true, loglikelihood: true, circular: true, generative: true, chunk: 16, max_new_tokens: 12, batch: 8, generative_questions: 0, circular_questions: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Vec<String> {
        ["Monaco", "Monza", "Spa", "Suzuka"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn generative_subsets_spread_over_the_whole_benchmark() {
        assert_eq!(spread(10, 0), (0..10).collect::<Vec<_>>());
        assert_eq!(spread(10, 20), (0..10).collect::<Vec<_>>());
        assert_eq!(spread(10, 4), vec![0, 2, 5, 7]);
        assert_eq!(spread(1000, 150).len(), 150);
        assert!(spread(1000, 150).windows(2).all(|w| w[1] - w[0] >= 6 && w[1] - w[0] <= 7));
    }

    #[test]
    fn strict_extraction_accepts_lone_letters_and_exact_options_only() {
        let o = opts();
        for (reply, want) in [
            ("B", Some(1)),
            (" B.", Some(1)),
            ("(C)", Some(2)),
            ("D) Suzuka", Some(3)),
            ("Answer: A", Some(0)),
            ("The answer is **C**", Some(2)),
            ("B Monza", Some(1)),
            ("Spa.", Some(2)),
            ("monza", Some(1)),
            ("A driver from Monaco won", None),
            ("I think it is Monza", None),
            ("E", None),
            ("", None),
            ("Both A and B", None),
        ] {
            assert_eq!(extract_choice(reply, &o), want, "{reply:?}");
        }
    }

    #[test]
    fn common_mcq_shapes_parse() {
        let ours = serde_json::json!({"id": "q1", "question": "Q?", "options": ["a", "b", "c", "d"], "answer": "C", "category": "results", "control": true});
        let it = parse_item(&ours, 1).expect("ours");
        assert_eq!((it.id.as_str(), it.answer_index, it.control), ("q1", 2, Some(true)));
        let arc = serde_json::json!({"question": "Q?", "choices": {"text": ["a", "b", "c"], "label": ["1", "2", "3"]}, "answerKey": "2"});
        assert_eq!(parse_item(&arc, 7).expect("arc").answer_index, 1);
        let mmlu = serde_json::json!({"question": "Q?", "choices": ["a", "b", "c", "d"], "answer": 3, "subject": "history"});
        let it = parse_item(&mmlu, 2).expect("mmlu");
        assert_eq!((it.answer_index, it.category.as_deref(), it.id.as_str()), (3, Some("history"), "line-2"));
        let cols = serde_json::json!({"question": "Q?", "A": "a", "B": "b", "answer": "B"});
        assert_eq!(parse_item(&cols, 3).expect("columns").options.len(), 2);
        for (bad, why) in [
            (serde_json::json!({"options": ["a", "b"], "answer": "A"}), "question"),
            (serde_json::json!({"question": "Q", "options": ["a", "b"], "answer": "C"}), "out of range"),
            (serde_json::json!({"question": "Q", "options": ["a", "b"], "answer": "maybe"}), "neither"),
            (serde_json::json!({"question": "Q", "options": ["a"], "answer": 0}), "options"),
            (serde_json::json!({"question": "Q", "options": ["a", "b"]}), "no `answer`"),
        ] {
            let e = parse_item(&bad, 1).expect_err(why);
            assert!(e.contains(why), "{e}");
        }
    }
}
