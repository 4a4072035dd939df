//! Issue #3's curation outputs: instruction pairs (chat and Alpaca JSONL) generated from
//! structured facts, an independent multiple-choice benchmark with a control share, a leakage
//! gate between the two, and a data card that accounts for every record.
//!
//! The flow ([`pipeline::run`]): sources → [`Fact`]s (one stable key each, 3-5 question
//! phrasings and a full-sentence answer that contains the fact's value) → a seeded selection of
//! fact *groups* up to the pairs target → pairs, deduplicated exactly and near-exactly
//! ([`text`]) → an 80/10/10 split by group, stratified by category ([`split`]) → benchmark
//! questions from other templates ([`benchmark`]) → the leakage gate ([`leakage`]) → files and
//! the data card ([`card`]). `import` ([`import`]) runs the pair half on a user's JSONL.

pub mod benchmark;
pub mod card;
pub mod config;
pub mod facts_f1db;
pub mod facts_text;
pub mod import;
pub mod inject;
pub mod leakage;
pub mod output;
pub mod pipeline;
pub mod split;
pub mod text;

use serde::{Deserialize, Serialize};

/// Where a fact comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// F1DB (CC BY 4.0).
    F1db,
    /// Wikipedia articles (CC BY-SA 4.0).
    Wikipedia,
    /// F1 live-timing streams (no license stated).
    Livetiming,
    /// A user's own JSONL (`import`).
    Import,
}

/// What a fact is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Race outcomes: winners, poles, fastest laps, season win counts.
    Results,
    /// Championship standings.
    Standings,
    /// Driver biographies.
    Drivers,
    /// Constructors: country, engines, championship places.
    Constructors,
    /// Circuits and where races were held.
    Circuits,
    /// Extractive QA from Wikipedia articles.
    History,
    /// Tyres and pit stops from live timing.
    Strategy,
    /// Imported pairs without a category.
    Imported,
}

impl Category {
    /// Every category, in output order.
    pub const ALL: [Category; 8] = [
        Category::Results,
        Category::Standings,
        Category::Drivers,
        Category::Constructors,
        Category::Circuits,
        Category::History,
        Category::Strategy,
        Category::Imported,
    ];

    /// The lowercase name used in the JSONL.
    pub fn name(self) -> &'static str {
        match self {
            Category::Results => "results",
            Category::Standings => "standings",
            Category::Drivers => "drivers",
            Category::Constructors => "constructors",
            Category::Circuits => "circuits",
            Category::History => "history",
            Category::Strategy => "strategy",
            Category::Imported => "imported",
        }
    }
}

/// How hard a pair or question is, by the rule in [`Difficulty`]'s docs and the data card.
///
/// Pairs: **easy** = the headline fact of a race or season (race winner, champions, a driver's
/// nationality, the circuit a race was held at); **medium** = a second-tier fact of one record
/// (pole, championship place, season win count, birthplace, constructor country or engine,
/// circuit location, an article's infobox field, a starting tyre); **hard** = an exact number
/// or date or a detail (fastest lap, birth date, circuit length and turns, article table cells,
/// pit-stop laps, stint lengths). Benchmark questions: **easy** = recognise one fact among four
/// ("which of these"), **medium** = recall a count, **hard** = combine four facts (comparison,
/// ordering).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Difficulty {
    /// See the type docs.
    Easy,
    /// See the type docs.
    Medium,
    /// See the type docs.
    Hard,
}

/// One fact stated by a set of instruction pairs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fact {
    /// Stable key: `race_winner:2021:22`, `driver_birthplace:lewis-hamilton`.
    pub key: String,
    /// The unit of selection, splitting and control: facts that benchmark questions combine
    /// (a season's standings) share a group so that they land in one split together.
    pub group: String,
    /// Where it comes from.
    pub source: Source,
    /// What it is about.
    pub category: Category,
    /// By the rule on [`Difficulty`].
    pub difficulty: Difficulty,
    /// Source file or URL plus the record key.
    pub provenance: String,
    /// 3-5 phrasings of the question.
    pub questions: Vec<String>,
    /// The answer, a full sentence that contains [`Fact::value`].
    pub answer: String,
    /// The bare value (a name, a number, an article span).
    pub value: String,
}

/// One instruction pair: a phrasing of a fact's question and its answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    /// `<fact key>#<phrasing>` or `import:<line>`.
    pub id: String,
    /// The user's turn (for chat records with more turns, the first user turn).
    pub question: String,
    /// The assistant's answer.
    pub answer: String,
    /// Alpaca `input` (empty for generated pairs).
    pub input: String,
    /// Every message, when imported as chat with more than one exchange or a system turn.
    pub messages: Option<Vec<Message>>,
    /// Source.
    pub source: Source,
    /// Category.
    pub category: Category,
    /// Difficulty.
    pub difficulty: Difficulty,
    /// Keys of the facts it states.
    pub fact_keys: Vec<String>,
    /// Split unit (the fact's group).
    pub group: String,
    /// Source file or URL plus record key.
    pub provenance: String,
}

/// A chat message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl Fact {
    /// One pair per phrasing.
    pub fn pairs(&self) -> Vec<Pair> {
        self.questions
            .iter()
            .enumerate()
            .map(|(i, q)| Pair {
                id: format!("{}#{}", self.key, i + 1),
                question: q.clone(),
                answer: self.answer.clone(),
                input: String::new(),
                messages: None,
                source: self.source,
                category: self.category,
                difficulty: self.difficulty,
                fact_keys: vec![self.key.clone()],
                group: self.group.clone(),
                provenance: self.provenance.clone(),
            })
            .collect()
    }
}

/// SplitMix64 (Steele, Lea and Flood, 2014): a tiny seeded generator whose output never
/// changes with a dependency's version, so that a seed pins the outputs for good.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`, salted by a stage name so stages draw independent streams.
    pub fn new(seed: u64, salt: &str) -> Self {
        let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
        for b in salt.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
        }
        Rng(h)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.below(i + 1);
            xs.swap(i, j);
        }
    }
}
