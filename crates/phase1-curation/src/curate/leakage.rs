//! The leakage gate between benchmark and training pairs: a benchmark question that is a
//! training question, or a near duplicate of one (word-shingle Jaccard at or above a threshold),
//! fails the run. It also measures word 8-gram overlap between benchmark text (question and
//! options) and training text (questions and answers), the contamination statistic of
//! GPT-3's paper (Brown et al. 2020, appendix C, which used 13-grams on longer documents).

use std::collections::HashSet;

use serde::Serialize;

use super::text::{ngrams, NearIndex};
use crate::{Error, Result};

/// N-gram length of the overlap statistics.
pub const NGRAM: usize = 8;

/// One benchmark question too close to a training question.
#[derive(Clone, Debug, Serialize)]
pub struct Leak {
    /// Benchmark question.
    pub benchmark: String,
    /// The training question it matches.
    pub training: String,
    /// Shingle Jaccard (1.0 exact).
    pub similarity: f64,
}

/// What the gate measured.
#[derive(Clone, Debug, Serialize)]
pub struct LeakageReport {
    /// Near-duplicate threshold (shingle Jaccard).
    pub threshold: f64,
    /// Benchmark questions checked.
    pub benchmark_questions: usize,
    /// Training questions indexed.
    pub training_questions: usize,
    /// Highest similarity of any benchmark question to any training question (below threshold
    /// when the gate passes).
    pub max_similarity: f64,
    /// Benchmark questions sharing at least one word 8-gram with the training text.
    pub questions_with_shared_8gram: usize,
    /// Distinct word 8-grams of the benchmark text.
    pub benchmark_8grams: usize,
    /// Of those, how many occur in the training text.
    pub shared_8grams: usize,
    /// Questions over threshold (empty when the gate passes).
    pub leaks: Vec<Leak>,
}

/// Measure and gate. `benchmark` holds (question, full text with options); `training` holds
/// (question, question plus answer). Errs when any benchmark question is a (near) duplicate of
/// a training question.
pub fn gate(benchmark: &[(String, String)], training: &[(String, String)], threshold: f64) -> Result<LeakageReport> {
    let mut index = NearIndex::default();
    for (q, _) in training {
        index.insert(q);
    }
    let train_grams: HashSet<String> = training.iter().flat_map(|(_, t)| ngrams(t, NGRAM)).collect();
    let mut report = LeakageReport {
        threshold,
        benchmark_questions: benchmark.len(),
        training_questions: training.len(),
        max_similarity: 0.0,
        questions_with_shared_8gram: 0,
        benchmark_8grams: 0,
        shared_8grams: 0,
        leaks: Vec::new(),
    };
    let mut bench_grams = HashSet::new();
    for (q, full) in benchmark {
        if let Some(hit) = index.nearest(q, 0.0) {
            report.max_similarity = report.max_similarity.max(hit.similarity);
            if hit.similarity >= threshold {
                report.leaks.push(Leak { benchmark: q.clone(), training: training[hit.index].0.clone(), similarity: hit.similarity });
            }
        }
        let grams = ngrams(full, NGRAM);
        if grams.iter().any(|g| train_grams.contains(g)) {
            report.questions_with_shared_8gram += 1;
        }
        bench_grams.extend(grams);
    }
    report.benchmark_8grams = bench_grams.len();
    report.shared_8grams = bench_grams.iter().filter(|g| train_grams.contains(*g)).count();
    if let Some(first) = report.leaks.first() {
        return Err(Error::Curation {
            stage: "leakage".into(),
            reason: format!(
                "{} benchmark question(s) duplicate training questions (Jaccard >= {threshold}), e.g. {:?} ~ {:?} ({:.2}); \
                 hint: give the benchmark template different wording or drop the fact from training",
                report.leaks.len(),
                first.benchmark,
                first.training,
                first.similarity
            ),
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(q: &str, a: &str) -> (String, String) {
        (q.to_owned(), format!("{q} {a}"))
    }

    #[test]
    fn gate_catches_an_injected_duplicate_and_a_near_one() {
        let training = vec![pair("Who won the 2010 Bahrain Grand Prix?", "Fernando Alonso won the 2010 Bahrain Grand Prix.")];
        let clean = vec![pair("Comparing A, B, C and D, which of them won the most races in 2010?", "A B C D")];
        let report = gate(&clean, &training, 0.7).expect("clean benchmark passes");
        assert!(report.leaks.is_empty() && report.max_similarity < 0.7);
        let exact = vec![clean[0].clone(), pair("who won the 2010 Bahrain Grand Prix", "")];
        assert!(gate(&exact, &training, 0.7).is_err());
        let near = vec![pair("Who won the 2010 Bahrain Grand Prix race?", "")];
        assert!(gate(&near, &training, 0.7).is_err());
    }

    #[test]
    fn eight_gram_overlap_is_counted() {
        let training = vec![pair("q", "one two three four five six seven eight nine")];
        let bench = vec![("x".to_owned(), "zero one two three four five six seven eight".to_owned())];
        let r = gate(&bench, &training, 0.9).expect("passes");
        assert_eq!((r.questions_with_shared_8gram, r.shared_8grams, r.benchmark_8grams), (1, 1, 2));
    }
}
