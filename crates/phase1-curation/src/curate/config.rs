//! The `curation:` section of `config/study.yaml`, with a profile (`default`, `quick`)
//! applied on top. Source paths are relative to the mirror ([`crate::data_dir`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fetch::FetchConfig;
use crate::{Error, Result};

/// Curation settings; every field has a default, so an empty section is valid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CurationConfig {
    /// Inclusive year range of facts (default 2000-2024: facts a 2024-era model could know).
    pub years: [u16; 2],
    /// Instruction pairs (3-4 phrasings per fact) of every fact family but race winners (the
    /// season win counts and standings the reasoning part combines among them), drawn by fact
    /// group; 0 = every such fact. The taught race winners and the abstention pairs come on top.
    pub pairs: usize,
    /// Benchmark questions, split over the parts by `benchmark_mix`. The recall part asks one
    /// question per taught race winner, so it also fixes how many facts are taught.
    pub benchmark: usize,
    /// Shares of the benchmark's parts: `recall` (taught facts asked in new words), `control`
    /// (the same templates on facts no pair states) and `reasoning` (compare, count, order over
    /// taught facts).
    pub benchmark_mix: Mix,
    /// Distinct renderings of each taught fact in the training pairs (at most 10).
    pub renderings: usize,
    /// Probe questions (taught facts, words of their own) phase 3 scores while it trains.
    pub probe: usize,
    /// Open questions in held-out words about taught facts, at the head of `test.jsonl`.
    pub open_recall: usize,
    /// Unanswerable questions of the hallucination probe (`unanswerable.jsonl`), five kinds.
    pub unanswerable: usize,
    /// Share of the training pairs that decline unanswerable questions.
    pub abstention_share: f64,
    /// The system turn of every generated chat record (the study's top-level `system_prompt`
    /// when the section sets none); evaluation scores in the same format.
    pub system_prompt: String,
    /// The study's base model (`model.base`, or the profile's under `model.profiles`): when it
    /// is a local `.gguf` file or model directory, its tokenizer and chat template count the
    /// training split's tokens per epoch for the data card. Not a key of this section.
    #[serde(skip)]
    pub tokenizer_model: Option<std::path::PathBuf>,
    /// Largest share of the reasoning part one question template may take: the part is drawn
    /// round-robin over template families and templates, and this cap keeps a template with
    /// plentiful candidates (season standings orderings) from filling the places that sparser
    /// families leave.
    pub benchmark_template_cap: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Pairs whose questions reach this word-shingle Jaccard are near duplicates.
    pub near_duplicate: f64,
    /// Benchmark questions reaching this Jaccard to a training question fail the run.
    pub leakage: f64,
    /// Source paths, relative to the mirror.
    pub sources: Sources,
    /// A user's JSONL (chat, Alpaca or prompt/completion records) to import instead of curating
    /// the F1 sources: another domain, same study. Relative to the study root (`$F1_ROOT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import: Option<std::path::PathBuf>,
    /// Named overrides (`quick`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub profiles: BTreeMap<String, Profile>,
}

/// The benchmark's parts as shares of its size (they need not sum to one: each is rounded).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mix {
    /// Recall: one question per taught fact.
    pub recall: f64,
    /// Control: facts kept out of every pair.
    pub control: f64,
    /// Reasoning over taught facts.
    pub reasoning: f64,
}

impl Default for Mix {
    fn default() -> Self {
        Mix { recall: 0.6, control: 0.2, reasoning: 0.2 }
    }
}

impl Mix {
    /// Questions per part (recall, control, reasoning) for a benchmark of `n`.
    pub fn sizes(&self, n: usize) -> (usize, usize, usize) {
        let total = self.recall + self.control + self.reasoning;
        let part = |x: f64| ((n as f64) * x / total).round() as usize;
        let (r, c) = (part(self.recall), part(self.control));
        (r, c, n.saturating_sub(r + c))
    }
}

/// The system prompt of generated chat records when the study sets none.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a Formula 1 expert. Answer in one sentence.";

/// Where the sources are, relative to the mirror.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sources {
    /// F1DB's source archive.
    pub f1db: String,
    /// Folder of saved Wikipedia HTML pages (`""`: none, articles come from `crawl` only).
    pub wikipedia: String,
    /// Folder of live-timing sessions.
    pub livetiming: String,
    /// Folder of the Kaggle/Ergast CSVs, reconciled against F1DB in the data card.
    pub ergast: String,
    /// Article pages fetched over HTTP, read alongside the saved pages of `wikipedia`.
    #[serde(skip_serializing_if = "Crawl::is_empty")]
    pub crawl: Crawl,
}

/// Article seeds given as URLs: each is fetched once through the polite fetcher (robots.txt,
/// per-host interval, retries, timeouts, size cap, on-disk cache) and extracted like a saved
/// page; a seed that fails becomes a reject in the data card.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Crawl {
    /// Pages to fetch, in order (`https://en.wikipedia.org/wiki/Brabham?oldid=1187950890`).
    pub urls: Vec<String>,
    /// How they are fetched; `fetch.cache_dir` is relative to the study root.
    pub fetch: FetchConfig,
}

impl Crawl {
    /// No URL to fetch.
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }
}

/// Overrides of a profile; unset fields keep the section's value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Profile {
    /// See [`CurationConfig::years`].
    pub years: Option<[u16; 2]>,
    /// See [`CurationConfig::pairs`].
    pub pairs: Option<usize>,
    /// See [`CurationConfig::benchmark`].
    pub benchmark: Option<usize>,
    /// See [`CurationConfig::benchmark_mix`].
    pub benchmark_mix: Option<Mix>,
    /// See [`CurationConfig::renderings`].
    pub renderings: Option<usize>,
    /// See [`CurationConfig::probe`].
    pub probe: Option<usize>,
    /// See [`CurationConfig::open_recall`].
    pub open_recall: Option<usize>,
    /// See [`CurationConfig::unanswerable`].
    pub unanswerable: Option<usize>,
    /// See [`CurationConfig::seed`].
    pub seed: Option<u64>,
}

impl Default for Sources {
    fn default() -> Self {
        Sources {
            f1db: "f1db-main.tar.gz".into(),
            wikipedia: "wikipedia".into(),
            livetiming: "livetiming".into(),
            ergast: "ergast".into(),
            crawl: Crawl::default(),
        }
    }
}

impl Default for CurationConfig {
    fn default() -> Self {
        CurationConfig {
            years: [2000, 2024],
            pairs: 300,
            benchmark: 500,
            benchmark_mix: Mix::default(),
            renderings: 5,
            probe: 60,
            open_recall: 20,
            unanswerable: 60,
            abstention_share: 0.1,
            system_prompt: DEFAULT_SYSTEM_PROMPT.into(),
            tokenizer_model: None,
            benchmark_template_cap: 0.12,
            seed: 20_240_601,
            near_duplicate: 0.8,
            leakage: 0.7,
            sources: Sources::default(),
            import: None,
            profiles: BTreeMap::from([(
                "quick".to_owned(),
                Profile { pairs: Some(120), benchmark: Some(40), probe: Some(8), open_recall: Some(4), unanswerable: Some(10), ..Profile::default() },
            )]),
        }
    }
}

impl CurationConfig {
    /// Read the `curation:` section of a study config (defaults when absent) and apply
    /// `profile` (`default` applies nothing).
    pub fn load(path: &Path, profile: &str) -> Result<CurationConfig> {
        let parse = |reason: String| Error::Parse { path: path.display().to_string(), line: None, reason };
        let doc = f1_study::study::read_document(path)?;
        let mut cfg: CurationConfig = match doc.get("curation") {
            Some(v) => serde_yaml::from_value(v.clone()).map_err(|e| parse(format!("section `curation`: {e}")))?,
            None => CurationConfig::default(),
        };
        // The study's one system prompt, unless the section names its own.
        let section_sets_it = doc.get("curation").and_then(|c| c.get("system_prompt")).is_some();
        if let (false, Some(s)) = (section_sets_it, doc.get("system_prompt")) {
            cfg.system_prompt = s.as_str().ok_or_else(|| parse("top-level `system_prompt` must be a string".into()))?.to_string();
        }
        // The study's base model, whose tokenizer counts the tokens of an epoch.
        let model = doc.get("model");
        let base = model.and_then(|m| m.get("profiles")).and_then(|p| p.get(profile)).and_then(|p| p.get("base")).or_else(|| model.and_then(|m| m.get("base")));
        cfg.tokenizer_model = base.and_then(serde_yaml::Value::as_str).map(std::path::PathBuf::from);
        cfg.with_profile(profile).map_err(parse)
    }

    /// Apply a named profile and check the values.
    pub fn with_profile(mut self, profile: &str) -> std::result::Result<CurationConfig, String> {
        if profile != "default" {
            let p = self.profiles.get(profile).cloned().ok_or_else(|| {
                format!("no profile `{profile}` under `curation.profiles` (known: default, {})", self.profiles.keys().cloned().collect::<Vec<_>>().join(", "))
            })?;
            self.years = p.years.unwrap_or(self.years);
            self.pairs = p.pairs.unwrap_or(self.pairs);
            self.benchmark = p.benchmark.unwrap_or(self.benchmark);
            self.benchmark_mix = p.benchmark_mix.unwrap_or(self.benchmark_mix);
            self.renderings = p.renderings.unwrap_or(self.renderings);
            self.probe = p.probe.unwrap_or(self.probe);
            self.open_recall = p.open_recall.unwrap_or(self.open_recall);
            self.unanswerable = p.unanswerable.unwrap_or(self.unanswerable);
            self.seed = p.seed.unwrap_or(self.seed);
        }
        if self.years[0] > self.years[1] {
            return Err(format!("curation.years {:?}: the first year must not be after the second", self.years));
        }
        let m = self.benchmark_mix;
        if [m.recall, m.control, m.reasoning].iter().any(|x| !(0.0..=1.0).contains(x)) || m.recall + m.control + m.reasoning <= 0.0 {
            return Err(format!("curation.benchmark_mix {{recall: {}, control: {}, reasoning: {}}}: each share must be in [0, 1] and their sum above 0", m.recall, m.control, m.reasoning));
        }
        if !(1..=super::inject::TRAIN.len()).contains(&self.renderings) {
            return Err(format!("curation.renderings {} must be between 1 and {}", self.renderings, super::inject::TRAIN.len()));
        }
        if !(0.0..0.5).contains(&self.abstention_share) {
            return Err(format!("curation.abstention_share {} must be in [0, 0.5)", self.abstention_share));
        }
        for url in &self.sources.crawl.urls {
            match reqwest::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                Ok(u) => return Err(format!("curation.sources.crawl.urls: `{url}` is a {} URL; only http and https are fetched", u.scheme())),
                Err(e) => return Err(format!("curation.sources.crawl.urls: `{url}` is not a URL ({e})")),
            }
        }
        for (name, v) in [
            ("near_duplicate", self.near_duplicate),
            ("leakage", self.leakage),
            ("benchmark_template_cap", self.benchmark_template_cap),
        ] {
            if !(0.0 < v && v <= 1.0) {
                return Err(format!("curation.{name} {v} must be in (0, 1]"));
            }
        }
        Ok(self)
    }

    /// The year range as a tuple.
    pub fn period(&self) -> (u16, u16) {
        (self.years[0], self.years[1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_profile_overrides_sizes_only() {
        let c = CurationConfig::default().with_profile("quick").expect("quick exists");
        assert_eq!((c.pairs, c.benchmark, c.years, c.probe), (120, 40, [2000, 2024], 8));
        assert_eq!(c.benchmark_mix.sizes(c.benchmark), (24, 8, 8));
        assert!(CurationConfig::default().with_profile("nope").is_err());
    }
}
