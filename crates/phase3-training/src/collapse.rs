//! Mode-collapse signals on sample generations: distinct-n (Li et al. 2016, unique n-grams over
//! all n-grams), the repetition rate (share of repeated 4-grams within a sample), and whether
//! the model parrots the prompt back, the failure the reference study saw after full
//! fine-tuning on 1.5k pairs. The thresholds are deliberately loose: they flag degenerate
//! loops, not merely terse answers.

use serde::{Deserialize, Serialize};

/// Signals over one evaluation's samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollapseReport {
    /// Unique unigrams / unigrams across samples.
    pub distinct_1: f64,
    /// Unique bigrams / bigrams across samples.
    pub distinct_2: f64,
    /// Mean share of repeated 4-grams within a sample.
    pub repetition_rate: f64,
    /// Samples that repeat most of their prompt.
    pub prompt_copies: usize,
    /// Samples looked at.
    pub samples: usize,
    /// Whether the signals say the model collapsed.
    pub collapsed: bool,
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase()).filter(|w| !w.is_empty()).collect()
}

fn ngrams(w: &[String], n: usize) -> Vec<String> {
    if w.len() < n {
        return vec![];
    }
    w.windows(n).map(|g| g.join(" ")).collect()
}

fn distinct(samples: &[Vec<String>], n: usize) -> f64 {
    let all: Vec<String> = samples.iter().flat_map(|w| ngrams(w, n)).collect();
    if all.is_empty() {
        return 1.0;
    }
    let unique: std::collections::HashSet<&String> = all.iter().collect();
    unique.len() as f64 / all.len() as f64
}

/// Whether `output` repeats at least 80% of `prompt`'s words in order (a 6-word run or more).
fn copies_prompt(prompt: &[String], output: &[String]) -> bool {
    if prompt.len() < 6 {
        return false;
    }
    let out = output.join(" ");
    let need = (prompt.len() * 4).div_ceil(5).max(6);
    prompt.windows(need).any(|w| out.contains(&w.join(" ")))
}

/// Score `(prompt, generation)` pairs.
pub fn assess(samples: &[(String, String)]) -> CollapseReport {
    let outs: Vec<Vec<String>> = samples.iter().map(|(_, o)| words(o)).collect();
    let repetition_rate = if outs.is_empty() {
        0.0
    } else {
        outs.iter().map(|w| 1.0 - distinct(std::slice::from_ref(w), 4)).sum::<f64>() / outs.len() as f64
    };
    let prompt_copies = samples.iter().zip(&outs).filter(|((p, _), o)| copies_prompt(&words(p), o)).count();
    let distinct_1 = distinct(&outs, 1);
    let distinct_2 = distinct(&outs, 2);
    let collapsed = !samples.is_empty() && (repetition_rate > 0.5 || distinct_2 < 0.25 || prompt_copies * 2 > samples.len());
    CollapseReport { distinct_1, distinct_2, repetition_rate, prompt_copies, samples: samples.len(), collapsed }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_answers_pass_and_loops_or_parroting_are_flagged() {
        let healthy = vec![("Who won the 2008 title?".to_string(), "Lewis Hamilton won the 2008 drivers' championship with McLaren.".to_string()), ("Where is Suzuka?".to_string(), "Suzuka is in Mie Prefecture, Japan.".to_string())];
        assert!(!assess(&healthy).collapsed);
        let looping = vec![("Who won?".to_string(), "the race the race the race the race the race the race the race the race".to_string())];
        let r = assess(&looping);
        assert!(r.collapsed && r.repetition_rate > 0.5, "{r:?}");
        let parrot = vec![("Which driver won the 2012 Monaco Grand Prix for Red Bull?".to_string(), "Which driver won the 2012 Monaco Grand Prix for Red Bull? Which driver".to_string())];
        let r = assess(&parrot);
        assert!(r.collapsed && r.prompt_copies == 1, "{r:?}");
    }
}
