//! Open-question text metrics: SQuAD exact match and token F1, sacreBLEU-compatible corpus BLEU
//! and rouge-score-compatible ROUGE-1/2/L, each restated from its reference definition.
//!
//! - Exact match and token F1 follow SQuAD's official `evaluate-v1.1.py` (Rajpurkar et al.,
//!   2016): lowercase, drop ASCII punctuation, drop the articles a/an/the, collapse whitespace,
//!   then compare strings or count the multiset overlap of whitespace tokens. Two empty answers
//!   agree (F1 1.0), as in `evaluate-v2.0.py`; v1.1 scores them 0.
//! - BLEU (Papineni et al., 2002) is `sacrebleu.corpus_bleu(hyps, [refs])` of sacreBLEU 2.x
//!   (Post, 2018) with its defaults: the mteval-v13a tokeniser, case-sensitive, n-grams up to 4,
//!   `exp` smoothing (NIST's), no effective order. Scores are on sacreBLEU's 0-100 scale.
//! - ROUGE (Lin, 2004) is `rouge_score.rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"],
//!   use_stemmer=False).score(target, prediction)` of Google's rouge-score 0.1.2: its tokeniser,
//!   n-gram overlap for ROUGE-N and the sentence-level LCS for ROUGE-L (not summary-level Lsum).
//!
//! `tests/python/text_metrics_fixtures.py` computes the same values with the reference packages;
//! `tests/metrics.rs` holds us to them. Behaviour on non-ASCII text, which the three references
//! treat differently, is documented at each tokeniser; no reference applies Unicode
//! normalisation, so a composed "é" and "e" + U+0301 are different text everywhere.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Python's `str.isspace()`, the whitespace of `str.split()` and `str.rstrip()` that SQuAD's
/// and sacreBLEU's code splits and strips with. It is Rust's Unicode `White_Space` plus the ASCII separators U+001C..U+001F, which Python
/// counts as whitespace (bidirectional class B/S) and Unicode does not.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `s.split()` with no argument.
fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_py_space).filter(|t| !t.is_empty())
}

// ---------------------------------------------------------------------------------------------
// SQuAD exact match and token F1
// ---------------------------------------------------------------------------------------------

/// Whether `c` is a word character for Python's `\b` on `str` patterns: `_` or
/// `str.isalnum()`. Rust's `is_alphanumeric` is the closest test the standard library offers; it
/// also counts the few `Other_Alphabetic` marks and symbols (e.g. Devanagari vowel signs, circled
/// letters) that Python does not, which changes the result only when such a character touches an
/// article.
fn is_py_word(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// `re.sub(r"\b(a|an|the)\b", " ", text)`: every article standing as a whole word becomes one
/// space. The boundaries are judged on the original text, as the regex engine does, so
/// consecutive articles ("a the") are all removed.
fn remove_articles(text: &str) -> String {
    const ARTICLES: [&str; 3] = ["a", "an", "the"];
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0 || !is_py_word(chars[i - 1]);
        // At most one alternative can end on a boundary ("a" inside "an" cannot), so the
        // regex's alternation order does not matter. Articles are ASCII: bytes = chars.
        let article = ARTICLES.iter().find(|w| {
            starts_word
                && chars.get(i..i + w.len()).is_some_and(|s| s.iter().copied().eq(w.chars()))
                && chars.get(i + w.len()).is_none_or(|&c| !is_py_word(c))
        });
        match article {
            Some(w) => {
                out.push(' ');
                i += w.len();
            }
            None => {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    out
}

/// SQuAD v1.1's `normalize_answer`: Unicode lowercase (Python's `str.lower`, the full mapping,
/// so "İ" becomes "i" + U+0307), drop the 32 ASCII punctuation characters of Python's
/// `string.punctuation` (typographic quotes and dashes such as `’` or `–` stay), replace whole
/// word articles a/an/the with a space, and collapse whitespace to single spaces.
pub fn normalize_answer(s: &str) -> String {
    let lower = s.to_lowercase();
    let no_punct: String = lower.chars().filter(|c| !c.is_ascii_punctuation()).collect();
    py_split(&remove_articles(&no_punct)).collect::<Vec<_>>().join(" ")
}

/// SQuAD exact match: the normalised strings are equal.
pub fn exact_match(prediction: &str, reference: &str) -> bool {
    normalize_answer(prediction) == normalize_answer(reference)
}

/// SQuAD token F1 over the normalised whitespace tokens, counting overlap as a multiset
/// intersection. Both empty gives 1.0 and one empty 0.0 (`evaluate-v2.0.py`'s rule; v1.1 returns
/// 0 for both empty, which would make an exact match score zero F1).
pub fn token_f1(prediction: &str, reference: &str) -> f64 {
    let pred_norm = normalize_answer(prediction);
    let gold_norm = normalize_answer(reference);
    let pred: Vec<&str> = py_split(&pred_norm).collect();
    let gold: Vec<&str> = py_split(&gold_norm).collect();
    if pred.is_empty() || gold.is_empty() {
        return if pred.is_empty() && gold.is_empty() { 1.0 } else { 0.0 };
    }
    let mut gold_counts: HashMap<&str, usize> = HashMap::new();
    for t in &gold {
        *gold_counts.entry(t).or_default() += 1;
    }
    let mut num_same = 0usize;
    for t in &pred {
        if let Some(c) = gold_counts.get_mut(t) {
            if *c > 0 {
                *c -= 1;
                num_same += 1;
            }
        }
    }
    if num_same == 0 {
        return 0.0;
    }
    // Same operation order as the reference, so the result is bit-identical.
    let precision = num_same as f64 / pred.len() as f64;
    let recall = num_same as f64 / gold.len() as f64;
    (2.0 * precision * recall) / (precision + recall)
}

// ---------------------------------------------------------------------------------------------
// sacreBLEU
// ---------------------------------------------------------------------------------------------

/// Corpus BLEU as sacreBLEU reports it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bleu {
    /// BLEU on the 0-100 scale.
    pub score: f64,
    /// Modified n-gram precisions for n = 1..4, in percent (smoothed where a count is zero).
    pub precisions: [f64; 4],
    /// Brevity penalty.
    pub bp: f64,
    /// Total hypothesis length in 13a tokens.
    pub sys_len: usize,
    /// Total reference length in 13a tokens.
    pub ref_len: usize,
}

/// The highest n-gram order, sacreBLEU's `MAX_NGRAM_ORDER`.
const MAX_ORDER: usize = 4;

/// ASCII punctuation that mteval-v13a pads with spaces wherever it occurs: the class
/// `[\{-\~\[-\` -\&\(-\+\:-\@\/]`, i.e. all of it except `'`, `,`, `-` and `.` (handled below by
/// context), plus the space itself, which the pass may pad harmlessly.
fn is_13a_symbol(c: char) -> bool {
    matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/')
}

/// One `re.sub` pass of a two-character pattern `(A)(B)` over `chars`: matches are found left to
/// right without overlap, so after a match the scan resumes after its second character (this is
/// why "a.." splits only its first period in the `[^0-9][.,]` pass).
fn sub_pairs(chars: &[char], first: impl Fn(char) -> bool, second: impl Fn(char) -> bool, emit: impl Fn(char, char, &mut Vec<char>)) -> Vec<char> {
    let mut out = Vec::with_capacity(chars.len() + chars.len() / 2);
    let mut i = 0;
    while i < chars.len() {
        if i + 1 < chars.len() && first(chars[i]) && second(chars[i + 1]) {
            emit(chars[i], chars[i + 1], &mut out);
            i += 2;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// sacreBLEU's `Tokenizer13a` (mteval-v13a.pl's tokenisation), exactly as it applies it: remove
/// `<skipped>`, join `-\n` line breaks, turn the remaining `\n` into spaces, unescape `&quot;`,
/// `&amp;`, `&lt;`, `&gt;` in that order, then the language-dependent regexes of
/// `TokenizerRegexp` in order, and finally collapse whitespace. Everything it matches is ASCII,
/// so non-ASCII letters ("Räikkönen", "鈴鹿") pass through inside their tokens, while the
/// non-ASCII whitespace Python's `split` knows (no-break space, ...) separates tokens.
/// `corpus_bleu` strips trailing whitespace before calling this, as sacreBLEU does.
pub fn tokenize_13a(line: &str) -> String {
    let line = line.replace("<skipped>", "").replace("-\n", "").replace('\n', " ");
    let line = line.replace("&quot;", "\"").replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">");
    let padded: Vec<char> = format!(" {line} ").chars().collect();

    // ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> " \1 "
    let mut chars = Vec::with_capacity(padded.len() * 2);
    for c in padded {
        if is_13a_symbol(c) {
            chars.extend([' ', c, ' ']);
        } else {
            chars.push(c);
        }
    }
    let digit = |c: char| c.is_ascii_digit();
    let period_comma = |c: char| c == '.' || c == ',';
    // Period and comma unless preceded by a digit: ([^0-9])([\.,]) -> "\1 \2 "
    let chars = sub_pairs(&chars, |c| !digit(c), period_comma, |a, b, out| out.extend([a, ' ', b, ' ']));
    // Period and comma unless followed by a digit: ([\.,])([^0-9]) -> " \1 \2"
    let chars = sub_pairs(&chars, period_comma, |c| !digit(c), |a, b, out| out.extend([' ', a, ' ', b]));
    // Dash after a digit: ([0-9])(-) -> "\1 \2 "
    let chars = sub_pairs(&chars, digit, |c| c == '-', |a, b, out| out.extend([a, ' ', b, ' ']));

    let joined: String = chars.into_iter().collect();
    py_split(&joined).collect::<Vec<_>>().join(" ")
}

/// Counts of all n-grams of orders 1..=4 of a token sequence (an n-gram's length is its order),
/// sacreBLEU's `extract_all_word_ngrams`.
fn ngram_counts<'a>(tokens: &[&'a str]) -> HashMap<Vec<&'a str>, usize> {
    let mut counts = HashMap::new();
    for n in 1..=MAX_ORDER {
        for w in tokens.windows(n) {
            *counts.entry(w.to_vec()).or_insert(0) += 1;
        }
    }
    counts
}

/// sacreBLEU's `my_log`: log with log(0) floored to -9999999999, so a zero precision drives the
/// geometric mean to 0 instead of NaN.
fn my_log(x: f64) -> f64 {
    if x == 0.0 {
        -9_999_999_999.0
    } else {
        x.ln()
    }
}

/// Corpus BLEU of `hypotheses` against one reference each, equal to
/// `sacrebleu.corpus_bleu(hypotheses, [references])` with default arguments.
///
/// Short segments matter: a corpus with no 4-gram at all (every hypothesis under four tokens)
/// scores 0 even when hypotheses equal references, because sacreBLEU stops at the first empty
/// order and counts the orders after it as log(0). sacreBLEU silently truncates to the shorter
/// list when the lengths differ and fails on an empty corpus; here both are errors.
pub fn corpus_bleu(hypotheses: &[&str], references: &[&str]) -> Result<Bleu> {
    if hypotheses.len() != references.len() {
        return Err(Error::Invalid(format!(
            "corpus_bleu: {} hypotheses but {} references; pass one reference per hypothesis",
            hypotheses.len(),
            references.len()
        )));
    }
    if hypotheses.is_empty() {
        return Err(Error::Invalid("corpus_bleu: empty corpus".into()));
    }
    let (mut sys_len, mut ref_len) = (0usize, 0usize);
    let mut correct = [0usize; MAX_ORDER];
    let mut total = [0usize; MAX_ORDER];
    for (hyp, reference) in hypotheses.iter().zip(references) {
        // sacreBLEU's `_preprocess_segment`: rstrip (Python's whitespace), then tokenise.
        let hyp_tok = tokenize_13a(hyp.trim_end_matches(is_py_space));
        let ref_tok = tokenize_13a(reference.trim_end_matches(is_py_space));
        let hyp_tokens: Vec<&str> = py_split(&hyp_tok).collect();
        let ref_tokens: Vec<&str> = py_split(&ref_tok).collect();
        sys_len += hyp_tokens.len();
        // With one reference the "closest reference length" is simply its length.
        ref_len += ref_tokens.len();
        let ref_ngrams = ngram_counts(&ref_tokens);
        for (ngram, count) in ngram_counts(&hyp_tokens) {
            let n = ngram.len() - 1;
            total[n] += count;
            correct[n] += count.min(ref_ngrams.get(&ngram).copied().unwrap_or(0));
        }
    }

    let bp = if sys_len < ref_len {
        if sys_len > 0 {
            (1.0 - ref_len as f64 / sys_len as f64).exp()
        } else {
            0.0
        }
    } else {
        1.0
    };
    let mut precisions = [0.0; MAX_ORDER];
    // No match at any order: sacreBLEU returns 0 with all precisions 0 (its issue #141).
    if correct.iter().all(|&c| c == 0) {
        return Ok(Bleu { score: 0.0, precisions, bp, sys_len, ref_len });
    }
    // NIST "exp" smoothing: the k-th order with no match gets precision 100 / (2^k * total).
    let mut smooth = 1.0;
    for n in 0..MAX_ORDER {
        if total[n] == 0 {
            break;
        }
        precisions[n] = if correct[n] == 0 {
            smooth *= 2.0;
            100.0 / (smooth * total[n] as f64)
        } else {
            100.0 * correct[n] as f64 / total[n] as f64
        };
    }
    let log_sum = precisions.iter().fold(0.0, |acc, &p| acc + my_log(p));
    let score = bp * (log_sum / MAX_ORDER as f64).exp();
    Ok(Bleu { score, precisions, bp, sys_len, ref_len })
}

// ---------------------------------------------------------------------------------------------
// rouge-score
// ---------------------------------------------------------------------------------------------

/// Precision, recall and F-measure of one ROUGE type.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RougeScore {
    /// Matches over prediction units.
    pub precision: f64,
    /// Matches over target units.
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub fmeasure: f64,
}

/// ROUGE-1, ROUGE-2 and ROUGE-L of one prediction against one target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rouge {
    /// Unigram overlap.
    pub rouge1: RougeScore,
    /// Bigram overlap.
    pub rouge2: RougeScore,
    /// Longest common subsequence (sentence level, rouge-score's `rougeL`).
    pub rouge_l: RougeScore,
}

/// rouge-score's default tokeniser without stemming: Python `str.lower()`, every character
/// outside `[a-z0-9]` becomes a separator, tokens are the remaining runs. Non-ASCII letters are
/// therefore dropped and split words: "Räikkönen" gives `r`, `ikk`, `nen`, "Pérez" gives `p`,
/// `rez`, CJK text vanishes entirely. The full Unicode lowercase can create ASCII letters: "İ"
/// (U+0130) lowercases to "i" + U+0307, so "İstanbul" gives `i`, `stanbul`, and the Kelvin sign
/// gives `k`.
pub fn rouge_tokenize(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// rouge-score's `scoring.fmeasure`.
fn fmeasure(precision: f64, recall: f64) -> f64 {
    if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    }
}

/// ROUGE-N from n-gram counts: overlap over the prediction's and the target's n-gram totals, each
/// denominator floored at 1, so an empty side gives 0 rather than NaN.
fn rouge_n(target: &[String], prediction: &[String], n: usize) -> RougeScore {
    fn count(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
        let mut m: HashMap<&[String], usize> = HashMap::new();
        for w in tokens.windows(n) {
            *m.entry(w).or_default() += 1;
        }
        m
    }
    let (t, p) = (count(target, n), count(prediction, n));
    let overlap: usize = t.iter().map(|(g, &c)| c.min(p.get(g).copied().unwrap_or(0))).sum();
    let precision = overlap as f64 / p.values().sum::<usize>().max(1) as f64;
    let recall = overlap as f64 / t.values().sum::<usize>().max(1) as f64;
    RougeScore { precision, recall, fmeasure: fmeasure(precision, recall) }
}

/// Length of the longest common subsequence, by the standard dynamic programme kept to two rows.
fn lcs_len(a: &[String], b: &[String]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y { prev[j] + 1 } else { prev[j + 1].max(cur[j]) };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// ROUGE-1, ROUGE-2 and ROUGE-L of `prediction` against `target` (note the order: target first,
/// as in `RougeScorer.score(target, prediction)`). Zero-length cases are as the package returns
/// them: all zeros, including when both texts have no tokens (unlike [`token_f1`]).
pub fn rouge(target: &str, prediction: &str) -> Rouge {
    let t = rouge_tokenize(target);
    let p = rouge_tokenize(prediction);
    let rouge_l = if t.is_empty() || p.is_empty() {
        RougeScore { precision: 0.0, recall: 0.0, fmeasure: 0.0 }
    } else {
        let lcs = lcs_len(&t, &p) as f64;
        let (precision, recall) = (lcs / p.len() as f64, lcs / t.len() as f64);
        RougeScore { precision, recall, fmeasure: fmeasure(precision, recall) }
    };
    Rouge { rouge1: rouge_n(&t, &p, 1), rouge2: rouge_n(&t, &p, 2), rouge_l }
}

// ---------------------------------------------------------------------------------------------
// Aggregate
// ---------------------------------------------------------------------------------------------

/// Open-question metrics of a set of (prediction, reference) pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenMetrics {
    /// Number of pairs.
    pub n: usize,
    /// Mean SQuAD exact match, 0..1.
    pub exact_match: f64,
    /// Mean SQuAD token F1, 0..1.
    pub token_f1: f64,
    /// Corpus BLEU (sacreBLEU defaults), 0..100.
    pub bleu: f64,
    /// Mean ROUGE-1 F-measure, 0..1.
    pub rouge1: f64,
    /// Mean ROUGE-2 F-measure, 0..1.
    pub rouge2: f64,
    /// Mean ROUGE-L F-measure, 0..1.
    pub rouge_l: f64,
}

/// Left-to-right mean, the summation order the fixture script uses.
fn mean(xs: impl Iterator<Item = f64>, n: usize) -> f64 {
    xs.fold(0.0, |acc, x| acc + x) / n as f64
}

/// Exact match, token F1 and ROUGE averaged over pairs, BLEU over the corpus (a mean of sentence
/// BLEU would be dominated by the smoothing of short answers).
pub fn open_metrics(predictions: &[&str], references: &[&str]) -> Result<OpenMetrics> {
    if predictions.len() != references.len() {
        return Err(Error::Invalid(format!(
            "open_metrics: {} predictions but {} references",
            predictions.len(),
            references.len()
        )));
    }
    if predictions.is_empty() {
        return Err(Error::Invalid("open_metrics: no pairs to score".into()));
    }
    let n = predictions.len();
    let pairs = || predictions.iter().zip(references);
    let rouges: Vec<Rouge> = pairs().map(|(p, r)| rouge(r, p)).collect();
    Ok(OpenMetrics {
        n,
        exact_match: mean(pairs().map(|(p, r)| if exact_match(p, r) { 1.0 } else { 0.0 }), n),
        token_f1: mean(pairs().map(|(p, r)| token_f1(p, r)), n),
        bleu: corpus_bleu(predictions, references)?.score,
        rouge1: mean(rouges.iter().map(|r| r.rouge1.fmeasure), n),
        rouge2: mean(rouges.iter().map(|r| r.rouge2.fmeasure), n),
        rouge_l: mean(rouges.iter().map(|r| r.rouge_l.fmeasure), n),
    })
}
