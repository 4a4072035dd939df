//! The data card written next to the outputs, as JSON and Markdown: counts per source,
//! category, difficulty and split; licenses and attributions; sha256 of every input and
//! output; every reject with its reason; and per stage the accounting identity
//! inputs = outputs + rejects, checked by [`Stage::check`] before anything is written.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::benchmark::Selection;
use crate::ergast::Reconciliation;
use super::config::CurationConfig;
use super::leakage::LeakageReport;
use crate::{Error, Reject, Result};

/// One stage's accounting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stage {
    /// Name (`facts`, `pairs`, `split`, ...).
    pub name: String,
    /// What the inputs are.
    pub unit: String,
    /// Records in.
    pub inputs: usize,
    /// Records out.
    pub outputs: usize,
    /// Records rejected (each listed in the card).
    pub rejects: usize,
}

impl Stage {
    /// A stage record.
    pub fn new(name: &str, unit: &str, inputs: usize, outputs: usize, rejects: usize) -> Stage {
        Stage { name: name.into(), unit: unit.into(), inputs, outputs, rejects }
    }

    /// Err unless inputs = outputs + rejects.
    pub fn check(&self) -> Result<()> {
        if self.inputs == self.outputs + self.rejects {
            Ok(())
        } else {
            Err(Error::Curation {
                stage: self.name.clone(),
                reason: format!(
                    "accounting broken: {} {} in, {} out + {} rejected; this is a bug in the stage",
                    self.inputs, self.unit, self.outputs, self.rejects
                ),
            })
        }
    }
}

/// A file read or written, with its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileHash {
    /// Path (inputs: relative to the mirror; outputs: file name).
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Lowercase hex sha256.
    pub sha256: String,
}

/// A source's terms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct License {
    /// Source.
    pub source: String,
    /// License.
    pub license: String,
    /// Attribution or conditions.
    pub attribution: String,
}

/// A reject tagged with the stage that made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StageReject {
    /// Stage.
    pub stage: String,
    /// The reject.
    #[serde(flatten)]
    pub reject: Reject,
}

/// Counts by one key.
pub type Counts = BTreeMap<String, usize>;

/// The whole card.
#[derive(Clone, Debug, Serialize)]
pub struct DataCard {
    /// `phase1-curation run` or `phase1-curation import`.
    pub command: String,
    /// The resolved config (absent for import).
    pub config: Option<CurationConfig>,
    /// Why the period is what it is.
    pub period_note: String,
    /// The rule behind `difficulty`.
    pub difficulty_rule: String,
    /// Terms of each source.
    pub licenses: Vec<License>,
    /// Inputs and hashes.
    pub inputs: Vec<FileHash>,
    /// Outputs and hashes.
    pub outputs: Vec<FileHash>,
    /// Facts available (after checks) per category.
    pub facts_available: Counts,
    /// Facts selected for pairs per category.
    pub facts_selected: Counts,
    /// Pairs per source.
    pub pairs_by_source: Counts,
    /// Pairs per category.
    pub pairs_by_category: Counts,
    /// Pairs per difficulty.
    pub pairs_by_difficulty: Counts,
    /// Pairs per split.
    pub pairs_by_split: Counts,
    /// Pairs per `category/split`.
    pub pairs_by_category_split: Counts,
    /// Benchmark questions per category.
    pub benchmark_by_category: Counts,
    /// Per difficulty.
    pub benchmark_by_difficulty: Counts,
    /// Per template.
    pub benchmark_by_template: Counts,
    /// Benchmark questions per template kind (which, count, compare, order).
    pub benchmark_by_kind: Counts,
    /// Per answer letter.
    pub benchmark_by_answer: Counts,
    /// Control and taught counts.
    pub benchmark_by_control: Counts,
    /// Per part (recall, control, reasoning).
    pub benchmark_by_part: Counts,
    /// What the training data injects: facts, renderings, exposures, abstention.
    pub injection: Option<Injection>,
    /// Ergast against F1DB (race winners, champions, points leaders), every disagreement
    /// listed; `None` for `import`.
    pub reconciliation: Option<Reconciliation>,
    /// How the benchmark was drawn.
    pub benchmark_selection: Option<Selection>,
    /// The leakage gate's measurements.
    pub leakage: Option<LeakageReport>,
    /// Accounting per stage.
    pub stages: Vec<Stage>,
    /// Every reject.
    pub rejects: Vec<StageReject>,
}

/// The fact-injection design in numbers (issue #13).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Injection {
    /// Race winners taught (each asked once by the recall part).
    pub taught_facts: usize,
    /// Race winners kept out of every pair (the control part).
    pub control_facts: usize,
    /// Distinct renderings of each taught fact in the training split.
    pub renderings_per_fact: usize,
    /// Training pairs that render taught race winners.
    pub recall_pairs: usize,
    /// Training pairs of the reasoning part's facts.
    pub reasoning_pairs: usize,
    /// Training pairs that decline an unanswerable question.
    pub abstention_pairs: usize,
    /// All training pairs.
    pub train_pairs: usize,
    /// Whitespace-separated words of the training split's system, user and assistant turns
    /// (one epoch; a SmolLM2-style tokenizer makes about 1.4 tokens of a word here).
    pub train_words_per_epoch: usize,
    /// Tokens of one epoch as the model sees them (chat template, system prompt, reply), when
    /// the base model's tokenizer and template could be read; `None` otherwise.
    pub train_tokens_per_epoch: Option<usize>,
    /// Probe questions for phase 3 (`probe.jsonl`).
    pub probe_questions: usize,
    /// Open questions in held-out words about taught facts (head of `test.jsonl`).
    pub open_recall_questions: usize,
    /// Unanswerable questions (`unanswerable.jsonl`) per kind.
    pub unanswerable_by_kind: Counts,
    /// The system turn of every generated record.
    pub system_prompt: String,
}

/// The terms of the three sources (and of imported data).
pub fn licenses() -> Vec<License> {
    vec![
        License {
            source: "f1db".into(),
            license: "CC BY 4.0".into(),
            attribution: "F1DB, https://github.com/f1db/f1db".into(),
        },
        License {
            source: "wikipedia".into(),
            license: "CC BY-SA 4.0".into(),
            attribution: "Wikipedia contributors; each pair's provenance names the page revision. Derived pairs are shared alike.".into(),
        },
        License {
            source: "livetiming".into(),
            license: "none stated".into(),
            attribution: "Formula 1 live-timing data (via FastF1's test data): parsing and tests only; do not redistribute pairs derived from it.".into(),
        },
    ]
}

fn table(out: &mut String, title: &str, counts: &Counts) {
    if counts.is_empty() {
        return;
    }
    let total: usize = counts.values().sum();
    let _ = writeln!(out, "\n### {title}\n\n| key | count |\n|---|---:|");
    for (k, v) in counts {
        let _ = writeln!(out, "| {k} | {v} |");
    }
    let _ = writeln!(out, "| **total** | {total} |");
}

impl DataCard {
    /// Check every stage's identity.
    pub fn check(&self) -> Result<()> {
        self.stages.iter().try_for_each(Stage::check)
    }

    /// The Markdown rendering.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# Data card: {}\n", self.command);
        let _ = writeln!(s, "Generated by `phase1-curation` (issue #3). Machine-readable copy: `data_card.json`.\n");
        let _ = writeln!(s, "**Period.** {}\n", self.period_note);
        let _ = writeln!(s, "**Difficulty.** {}\n", self.difficulty_rule);
        let _ = writeln!(s, "## Licenses and attribution\n\n| source | license | attribution / use |\n|---|---|---|");
        for l in &self.licenses {
            let _ = writeln!(s, "| {} | {} | {} |", l.source, l.license, l.attribution);
        }
        let _ = writeln!(s, "\n## Counts");
        table(&mut s, "Facts available per category", &self.facts_available);
        table(&mut s, "Facts selected per category", &self.facts_selected);
        table(&mut s, "Pairs per source", &self.pairs_by_source);
        table(&mut s, "Pairs per category", &self.pairs_by_category);
        table(&mut s, "Pairs per difficulty", &self.pairs_by_difficulty);
        table(&mut s, "Pairs per split", &self.pairs_by_split);
        table(&mut s, "Pairs per category and split", &self.pairs_by_category_split);
        table(&mut s, "Benchmark per category", &self.benchmark_by_category);
        table(&mut s, "Benchmark per difficulty", &self.benchmark_by_difficulty);
        table(&mut s, "Benchmark per template", &self.benchmark_by_template);
        table(&mut s, "Benchmark per template kind", &self.benchmark_by_kind);
        table(&mut s, "Benchmark per answer letter", &self.benchmark_by_answer);
        table(&mut s, "Benchmark control vs taught", &self.benchmark_by_control);
        table(&mut s, "Benchmark per part", &self.benchmark_by_part);
        if let Some(i) = &self.injection {
            let tokens = i.train_tokens_per_epoch.map_or_else(|| "not counted (no tokenizer)".to_string(), |t| t.to_string());
            let _ = writeln!(
                s,
                "\n## Fact injection\n\n{} race winners taught, {} distinct renderings each ({} pairs; every taught fact is asked once \
                 by the benchmark's recall part in words no pair uses); {} control race winners no pair states; {} pairs of the \
                 reasoning part's facts; {} pairs decline unanswerable questions. Training split: {} pairs, {} words and {} tokens \
                 per epoch. Probe: {} questions; open questions on taught facts: {}. System prompt: {:?}.",
                i.taught_facts,
                i.renderings_per_fact,
                i.recall_pairs,
                i.control_facts,
                i.reasoning_pairs,
                i.abstention_pairs,
                i.train_pairs,
                i.train_words_per_epoch,
                tokens,
                i.probe_questions,
                i.open_recall_questions,
                i.system_prompt
            );
            table(&mut s, "Unanswerable questions per kind", &i.unanswerable_by_kind);
        }
        if let Some(sel) = &self.benchmark_selection {
            let _ = writeln!(
                s,
                "\nBenchmark selection: targets {} taught + {} control questions, drawn round-robin over template families and \
                 templates with each template capped at {} of its part ({} taught, {} control). Candidates: {} taught (all facts \
                 in training-split pairs), {} control (facts in no pair).\n\n| template | family | kind | taught candidates | \
                 control candidates | taught | control |\n|---|---|---|---:|---:|---:|---:|",
                sel.taught_target,
                sel.control_target,
                sel.template_cap,
                sel.taught_cap,
                sel.control_cap,
                sel.taught_candidates,
                sel.control_candidates
            );
            for (name, t) in &sel.templates {
                let _ = writeln!(
                    s,
                    "| {name} | {} | {} | {} | {} | {} | {} |",
                    t.category, t.kind, t.taught_candidates, t.control_candidates, t.taught, t.control
                );
            }
        }
        if let Some(r) = &self.reconciliation {
            let _ = writeln!(
                s,
                "\n## Ergast reconciliation\n\nThe Kaggle/Ergast CSVs checked against F1DB: race winners agree in {} of {} races \
                 held by both, champions in {} of {} seasons, points leaders (and points) after Ergast's last round in {} of {} \
                 seasons. Drivers matched by exact name: {}; by another rule: {}; unmatched: {}. Disagreements: {}.",
                r.winners_agree,
                r.races_compared,
                r.champions_agree,
                r.seasons_compared,
                r.leaders_agree,
                r.leaders_compared,
                r.names_exact,
                r.name_matches_by_rule.len(),
                r.unmatched_drivers.len(),
                r.disagreements.len()
            );
            if !r.name_matches_by_rule.is_empty() {
                let _ = writeln!(s, "\n| Ergast name | F1DB id | rule |\n|---|---|---|");
                for m in &r.name_matches_by_rule {
                    let _ = writeln!(s, "| {} | {} | {:?} |", m.ergast_name, m.f1db_id, m.rule);
                }
            }
            if !r.unmatched_drivers.is_empty() {
                let _ = writeln!(s, "\nUnmatched Ergast drivers: {}.", r.unmatched_drivers.join(", "));
            }
            if !r.disagreements.is_empty() {
                let _ = writeln!(s, "\n| kind | race or season | F1DB | Ergast | note |\n|---|---|---|---|---|");
                for d in &r.disagreements {
                    let _ = writeln!(s, "| {:?} | {} | {} | {} | {} |", d.kind, d.key, d.f1db, d.ergast, d.note.replace('|', "\\|"));
                }
            }
        }
        if let Some(l) = &self.leakage {
            let _ = writeln!(
                s,
                "\n## Leakage gate\n\nNear-duplicate threshold (word 3-shingle Jaccard): {}. Benchmark questions: {}, training \
                 questions: {}; highest similarity: {:.3}; leaks: {}.\n\nWord 8-gram overlap: {} of {} benchmark questions share \
                 at least one 8-gram with the training text; {} of {} distinct benchmark 8-grams occur in it.",
                l.threshold,
                l.benchmark_questions,
                l.training_questions,
                l.max_similarity,
                l.leaks.len(),
                l.questions_with_shared_8gram,
                l.benchmark_questions,
                l.shared_8grams,
                l.benchmark_8grams
            );
        }
        let _ = writeln!(s, "\n## Accounting (inputs = outputs + rejects)\n\n| stage | unit | inputs | outputs | rejects |\n|---|---|---:|---:|---:|");
        for st in &self.stages {
            let _ = writeln!(s, "| {} | {} | {} | {} | {} |", st.name, st.unit, st.inputs, st.outputs, st.rejects);
        }
        for (title, files) in [("Inputs", &self.inputs), ("Outputs", &self.outputs)] {
            let _ = writeln!(s, "\n## {title}\n\n| file | bytes | sha256 |\n|---|---:|---|");
            for f in files {
                let _ = writeln!(s, "| {} | {} | `{}` |", f.path, f.bytes, f.sha256);
            }
        }
        let _ = writeln!(s, "\n## Rejects ({})\n", self.rejects.len());
        if self.rejects.is_empty() {
            let _ = writeln!(s, "None.");
        }
        for r in &self.rejects {
            let _ = writeln!(s, "- [{}] {}", r.stage, r.reject.to_string().replace('|', "\\|"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_checked() {
        assert!(Stage::new("pairs", "pairs", 10, 7, 3).check().is_ok());
        assert!(Stage::new("pairs", "pairs", 10, 7, 2).check().is_err());
    }
}
