//! Multiple-choice evaluation, both ways lm-evaluation-harness defines it, on the same items.
//!
//! - Log-likelihood: the context `Question: <stem>\nAnswer:` and each option as the continuation
//!   ` <option>`; `acc` picks the highest summed log-probability, `acc_norm` the highest
//!   log-probability per character of the continuation (lm-evaluation-harness's `acc_norm`).
//!   All options of a question are scored in one pass over the shared context.
//! - Generative: the question with lettered options as a chat turn, a greedy reply, and strict
//!   answer extraction: a reply counts only if it opens with a letter that stands alone
//!   (`B`, `B.`, `(B)`, `B) Monaco`, `Answer: B`) or is exactly one option's text. Anything
//!   else is Invalid, counted apart from Incorrect, as in the reference study's baseline table.
//!
//! Items come from any MCQ JSONL: ours (`options` + `answer` letter), or the common shapes of
//! public benchmarks (`choices` list or `{text, label}` object, `answer`/`label`/`gold` index,
//! `answerKey` letter or digit, MMLU-style `A`..`D` columns).

use std::collections::BTreeMap;
use std::path::Path;

use f1_core::ChatMessage;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::{Backend, LlRequest};
use crate::stats::{accuracy, Accuracy};
use crate::{Error, Result};

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
}

/// Read an MCQ JSONL file; every line must be a question (blank lines are skipped). Errors
/// name the file, the line and the field.
pub fn read_mcq(path: &Path) -> Result<Vec<McqItem>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |reason: String| Error::Data { path: path.to_path_buf(), line: i + 1, reason };
        let v: Value = serde_json::from_str(line).map_err(|e| err(format!("not valid JSON: {e}")))?;
        items.push(parse_item(&v, i + 1).map_err(err)?);
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
    })
}

/// The log-likelihood request of an item: lm-evaluation-harness's `Question: ...\nAnswer:`
/// context with ` <option>` continuations.
pub fn ll_request(item: &McqItem) -> LlRequest {
    LlRequest { context: format!("Question: {}\nAnswer:", item.question), continuations: item.options.iter().map(|o| format!(" {o}")).collect() }
}

/// The chat turn of the generative mode.
pub fn generative_prompt(item: &McqItem) -> Vec<ChatMessage> {
    let letters: Vec<String> = LETTERS[..item.options.len()].iter().map(char::to_string).collect();
    let mut text = format!("Answer the following multiple-choice question. Reply with the letter ({}) of the correct option only.\n\nQuestion: {}\n", letters.join(", "), item.question);
    for (l, o) in letters.iter().zip(&item.options) {
        text.push_str(&format!("{l}. {o}\n"));
    }
    text.push_str("Answer:");
    vec![ChatMessage::user(text)]
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

/// Per-item log-likelihood outcome.
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

/// Everything measured on one item (a line of `mcq_items.jsonl`; pairs variants by `id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemResult {
    /// Item id.
    pub id: String,
    /// Right option.
    pub answer_index: usize,
    /// Category.
    pub category: Option<String>,
    /// Difficulty.
    pub difficulty: Option<String>,
    /// Control question.
    pub control: Option<bool>,
    /// Log-likelihood mode.
    pub ll: Option<LlOutcome>,
    /// Generative mode.
    pub generative: Option<GenOutcome>,
}

impl ItemResult {
    /// `acc` outcome.
    pub fn ll_correct(&self) -> Option<bool> {
        self.ll.as_ref().map(|l| l.pred == self.answer_index)
    }

    /// `acc_norm` outcome.
    pub fn ll_norm_correct(&self) -> Option<bool> {
        self.ll.as_ref().map(|l| l.pred_norm == self.answer_index)
    }

    /// Generative outcome (Invalid counts as not correct).
    pub fn gen_correct(&self) -> Option<bool> {
        self.generative.as_ref().map(|g| g.verdict == Verdict::Correct)
    }
}

/// A progress bar for `n` items labelled `what`.
pub fn progress(n: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(n as u64);
    if let Ok(style) = ProgressStyle::with_template("{msg:>14} [{bar:30}] {pos}/{len} {per_sec} eta {eta}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

fn argmax(xs: impl Iterator<Item = f64>) -> usize {
    // The first of equal maxima, as numpy's argmax.
    let mut best = (0, f64::NEG_INFINITY);
    for (i, x) in xs.enumerate() {
        if x > best.1 {
            best = (i, x);
        }
    }
    best.0
}

/// Score every item by log-likelihood, `chunk` questions per backend call.
pub fn score_loglikelihood(backend: &mut dyn Backend, items: &[McqItem], chunk: usize) -> Result<Vec<LlOutcome>> {
    let bar = progress(items.len(), "mcq loglik");
    let mut out = Vec::with_capacity(items.len());
    for part in items.chunks(chunk.max(1)) {
        let requests: Vec<LlRequest> = part.iter().map(ll_request).collect();
        let scores = backend.loglikelihood(&requests)?;
        for (req, s) in requests.iter().zip(scores) {
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

/// Answer every item generatively and judge the replies strictly.
pub fn score_generative(backend: &mut dyn Backend, items: &[McqItem], max_new_tokens: usize, batch: usize) -> Result<Vec<GenOutcome>> {
    let bar = progress(items.len(), "mcq generate");
    let mut out = Vec::with_capacity(items.len());
    for part in items.chunks(batch.max(1) * 4) {
        let prompts: Vec<Vec<ChatMessage>> = part.iter().map(generative_prompt).collect();
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

/// Accuracy of a mode overall and per group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breakdown {
    /// All items.
    pub overall: Accuracy,
    /// Per category.
    pub by_category: BTreeMap<String, Accuracy>,
    /// Per difficulty.
    pub by_difficulty: BTreeMap<String, Accuracy>,
    /// `taught` (facts in the training pairs) and `control` items, when the file marks them.
    pub by_control: BTreeMap<String, Accuracy>,
}

fn breakdown(results: &[ItemResult], outcome: impl Fn(&ItemResult) -> Option<bool>, seed: u64) -> Breakdown {
    let mut groups: [BTreeMap<String, Vec<bool>>; 3] = Default::default();
    let mut all = vec![];
    for r in results {
        let Some(ok) = outcome(r) else { continue };
        all.push(ok);
        let keys = [r.category.clone(), r.difficulty.clone(), r.control.map(|c| if c { "control" } else { "taught" }.to_string())];
        for (g, k) in groups.iter_mut().zip(keys) {
            if let Some(k) = k {
                g.entry(k).or_default().push(ok);
            }
        }
    }
    let acc = |m: &BTreeMap<String, Vec<bool>>| m.iter().map(|(k, v)| (k.clone(), accuracy(v, seed))).collect();
    Breakdown { overall: accuracy(&all, seed), by_category: acc(&groups[0]), by_difficulty: acc(&groups[1]), by_control: acc(&groups[2]) }
}

/// The log-likelihood mode's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlReport {
    /// `acc`.
    pub acc: Breakdown,
    /// `acc_norm`.
    pub acc_norm: Breakdown,
    /// How often each letter was chosen by `acc` (position bias).
    pub chosen_letters: BTreeMap<String, usize>,
}

/// The generative mode's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenReport {
    /// Items.
    pub total: usize,
    /// Correct replies.
    pub correct: usize,
    /// Wrong option chosen.
    pub incorrect: usize,
    /// No option could be extracted.
    pub invalid: usize,
    /// Correct / total (Invalid counts as wrong), with its breakdown.
    pub accuracy: Breakdown,
    /// Correct / (correct + incorrect): accuracy when the model does answer.
    pub accuracy_when_valid: f64,
    /// How often each letter was chosen, plus `invalid`.
    pub chosen_letters: BTreeMap<String, usize>,
}

/// Both modes' summaries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McqReport {
    /// Questions.
    pub n: usize,
    /// Log-likelihood mode, if run.
    pub loglikelihood: Option<LlReport>,
    /// Generative mode, if run.
    pub generative: Option<GenReport>,
    /// How often each letter is the right answer (a balanced benchmark has them equal).
    pub answer_letters: BTreeMap<String, usize>,
}

fn letter(i: usize) -> String {
    LETTERS.get(i).map_or_else(|| i.to_string(), char::to_string)
}

/// Summarize per-item results (bootstrap intervals seeded with `seed`).
pub fn report(results: &[ItemResult], seed: u64) -> McqReport {
    let mut answer_letters = BTreeMap::new();
    for r in results {
        *answer_letters.entry(letter(r.answer_index)).or_insert(0) += 1;
    }
    let loglikelihood = results.iter().any(|r| r.ll.is_some()).then(|| {
        let mut chosen = BTreeMap::new();
        for l in results.iter().filter_map(|r| r.ll.as_ref()) {
            *chosen.entry(letter(l.pred)).or_insert(0) += 1;
        }
        LlReport { acc: breakdown(results, ItemResult::ll_correct, seed), acc_norm: breakdown(results, ItemResult::ll_norm_correct, seed), chosen_letters: chosen }
    });
    let generative = results.iter().any(|r| r.generative.is_some()).then(|| {
        let gens: Vec<&GenOutcome> = results.iter().filter_map(|r| r.generative.as_ref()).collect();
        let count = |v: Verdict| gens.iter().filter(|g| g.verdict == v).count();
        let (correct, incorrect, invalid) = (count(Verdict::Correct), count(Verdict::Incorrect), count(Verdict::Invalid));
        let mut chosen = BTreeMap::new();
        for g in &gens {
            *chosen.entry(g.choice.map_or_else(|| "invalid".to_string(), letter)).or_insert(0) += 1;
        }
        GenReport {
            total: gens.len(),
            correct,
            incorrect,
            invalid,
            accuracy: breakdown(results, ItemResult::gen_correct, seed),
            accuracy_when_valid: if correct + incorrect == 0 { 0.0 } else { correct as f64 / (correct + incorrect) as f64 },
            chosen_letters: chosen,
        }
    });
    McqReport { n: results.len(), loglikelihood, generative, answer_letters }
}

/// Run the chosen modes over `items` and pair the outcomes with the items.
pub fn evaluate(backend: &mut dyn Backend, items: &[McqItem], modes: &McqModes) -> Result<Vec<ItemResult>> {
    let ll = if modes.loglikelihood { Some(score_loglikelihood(backend, items, modes.chunk)?) } else { None };
    let mut gen: Vec<Option<GenOutcome>> = vec![None; items.len()];
    if modes.generative {
        let picked = spread(items.len(), modes.generative_questions);
        let subset: Vec<McqItem> = picked.iter().map(|&i| items[i].clone()).collect();
        for (i, outcome) in picked.into_iter().zip(score_generative(backend, &subset, modes.max_new_tokens, modes.batch)?) {
            gen[i] = Some(outcome);
        }
    }
    Ok(items
        .iter()
        .enumerate()
        .map(|(i, it)| ItemResult {
            id: it.id.clone(),
            answer_index: it.answer_index,
            category: it.category.clone(),
            difficulty: it.difficulty.clone(),
            control: it.control,
            ll: ll.as_ref().map(|v| v[i].clone()),
            generative: gen[i].take(),
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

/// Which modes to run and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McqModes {
    /// Score options by log-likelihood.
    pub loglikelihood: bool,
    /// Generate and extract the answer.
    pub generative: bool,
    /// Questions per log-likelihood call.
    pub chunk: usize,
    /// Reply budget in generative mode.
    pub max_new_tokens: usize,
    /// Conversations decoded together in generative mode.
    pub batch: usize,
    /// Questions the generative mode answers, spread evenly over the benchmark (0 = all): it
    /// decodes a dozen tokens per question, so it costs several times the log-likelihood mode.
    pub generative_questions: usize,
}

impl Default for McqModes {
    fn default() -> Self {
        McqModes { loglikelihood: true, generative: true, chunk: 16, max_new_tokens: 12, batch: 8, generative_questions: 0 }
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
