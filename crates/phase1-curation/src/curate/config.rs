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
    /// Instruction pairs to aim for; 0 = every fact the sources allow.
    pub pairs: usize,
    /// Benchmark questions.
    pub benchmark: usize,
    /// Share of benchmark questions resting on facts kept out of every pair.
    pub control_share: f64,
    /// Largest share of each benchmark part (taught, control) one question template may take:
    /// the benchmark is drawn round-robin over template families and templates, and this cap
    /// keeps a template with plentiful candidates (season standings orderings) from filling
    /// the places that sparser families leave.
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
    /// See [`CurationConfig::control_share`].
    pub control_share: Option<f64>,
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
            pairs: 1500,
            benchmark: 1500,
            control_share: 0.2,
            benchmark_template_cap: 0.12,
            seed: 20_240_601,
            near_duplicate: 0.8,
            leakage: 0.7,
            sources: Sources::default(),
            import: None,
            profiles: BTreeMap::from([(
                "quick".to_owned(),
                Profile { pairs: Some(120), benchmark: Some(40), ..Profile::default() },
            )]),
        }
    }
}

impl CurationConfig {
    /// Read the `curation:` section of a study config (defaults when absent) and apply
    /// `profile` (`default` applies nothing).
    pub fn load(path: &Path, profile: &str) -> Result<CurationConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let parse = |reason: String| Error::Parse { path: path.display().to_string(), line: None, reason };
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| parse(e.to_string()))?;
        let cfg: CurationConfig = match doc.get("curation") {
            Some(v) => serde_yaml::from_value(v.clone()).map_err(|e| parse(format!("section `curation`: {e}")))?,
            None => CurationConfig::default(),
        };
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
            self.control_share = p.control_share.unwrap_or(self.control_share);
            self.seed = p.seed.unwrap_or(self.seed);
        }
        if self.years[0] > self.years[1] {
            return Err(format!("curation.years {:?}: the first year must not be after the second", self.years));
        }
        if !(0.0..=1.0).contains(&self.control_share) {
            return Err(format!("curation.control_share {} must be in [0, 1]", self.control_share));
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
        assert_eq!((c.pairs, c.benchmark, c.years), (120, 40, [2000, 2024]));
        assert!(CurationConfig::default().with_profile("nope").is_err());
    }
}
