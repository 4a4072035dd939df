//! Text normalisation, word shingles and Jaccard similarity: the near-duplicate test of the
//! pair deduplication and the leakage gate (Broder, "On the resemblance and containment of
//! documents", 1997), with an inverted index so that each query only meets candidates that
//! share a shingle.

use std::collections::{HashMap, HashSet};

/// Lowercase words of letters and digits; everything else separates.
pub fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// The normalised text used for exact duplicates.
pub fn normalize(s: &str) -> String {
    words(s).join(" ")
}

/// Word `n`-grams joined by spaces; a text shorter than `n` words is one shingle of all of them.
pub fn shingles(s: &str, n: usize) -> HashSet<String> {
    let w = words(s);
    if w.len() < n {
        return std::iter::once(w.join(" ")).filter(|s| !s.is_empty()).collect();
    }
    w.windows(n).map(|g| g.join(" ")).collect()
}

/// Word `n`-grams only (none for a text shorter than `n`): for overlap statistics.
pub fn ngrams(s: &str, n: usize) -> HashSet<String> {
    let w = words(s);
    w.windows(n).map(|g| g.join(" ")).collect()
}

/// |A ∩ B| / |A ∪ B|; 0 for two empty sets.
pub fn jaccard(a: &HashSet<String>, b: &HashSet<String>) -> f64 {
    let inter = a.iter().filter(|s| b.contains(*s)).count();
    let union = a.len() + b.len() - inter;
    if union == 0 {
        0.0
    } else {
        inter as f64 / union as f64
    }
}

/// Shingle size for questions: three words, so that questions differing in one name or year
/// stay well apart while a reworded copy does not.
pub const SHINGLE: usize = 3;

/// An index of texts by shingle, answering "which stored text is closest to this one".
#[derive(Default)]
pub struct NearIndex {
    sets: Vec<HashSet<String>>,
    exact: HashMap<String, usize>,
    postings: HashMap<String, Vec<usize>>,
}

/// What a lookup found: the stored text's index and the similarity (1.0 for an exact match).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    /// Index of the stored text, in insertion order.
    pub index: usize,
    /// Jaccard similarity of the shingle sets, 1.0 for an exact (normalised) match.
    pub similarity: f64,
}

impl NearIndex {
    /// Store a text; returns its index.
    pub fn insert(&mut self, text: &str) -> usize {
        let i = self.sets.len();
        let set = shingles(text, SHINGLE);
        for s in &set {
            self.postings.entry(s.clone()).or_default().push(i);
        }
        self.sets.push(set);
        self.exact.entry(normalize(text)).or_insert(i);
        i
    }

    /// The most similar stored text with similarity ≥ `threshold` (exact matches first).
    pub fn nearest(&self, text: &str, threshold: f64) -> Option<Hit> {
        if let Some(&index) = self.exact.get(&normalize(text)) {
            return Some(Hit { index, similarity: 1.0 });
        }
        let set = shingles(text, SHINGLE);
        let mut shared: HashMap<usize, usize> = HashMap::new();
        for s in &set {
            for &i in self.postings.get(s).map(Vec::as_slice).unwrap_or_default() {
                *shared.entry(i).or_default() += 1;
            }
        }
        let mut best: Option<Hit> = None;
        for (i, inter) in shared {
            let union = set.len() + self.sets[i].len() - inter;
            let similarity = inter as f64 / union as f64;
            let better = best.is_none_or(|b| similarity > b.similarity || (similarity == b.similarity && i < b.index));
            if similarity >= threshold && better {
                best = Some(Hit { index: i, similarity });
            }
        }
        best
    }
}

/// English ordinal: 1st, 2nd, 3rd, 4th, 11th, 22nd.
pub fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_index_finds_rewordings_not_neighbours() {
        let mut idx = NearIndex::default();
        idx.insert("Who won the 2010 Bahrain Grand Prix?");
        assert_eq!(idx.nearest("who won the 2010 bahrain grand prix", 0.8).map(|h| h.similarity), Some(1.0));
        assert!(idx.nearest("Who won the 2011 Bahrain Grand Prix?", 0.8).is_none());
        assert!(idx.nearest("Who won the 2010 Bahrain Grand Prix race?", 0.6).is_some());
        assert_eq!(ordinal(1), "1st");
        assert_eq!(ordinal(12), "12th");
        assert_eq!(ordinal(22), "22nd");
    }
}
