//! The one reject record of the phase: a source record (archive member, file line, article,
//! instruction pair) left out of the outputs, with the reason. Every reader and every curation
//! stage reports what it drops as a [`Reject`], so the data card can list them all and check
//! that inputs = outputs + rejects per stage.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A record left out, and why.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reject {
    /// Where it came from: a file, an archive member (`f1db-main/src/data/drivers/x.yml`), a URL
    /// or a stage's own label (`pairs`).
    pub source: String,
    /// Which record in the source when it is not the whole source: `line 3`, an id,
    /// `#3 (max-verstappen)`, a pair id.
    pub record: Option<String>,
    /// What is wrong, in words.
    pub reason: String,
}

impl Reject {
    /// A whole source rejected.
    pub fn new(source: impl Into<String>, reason: impl Into<String>) -> Self {
        Reject { source: source.into(), record: None, reason: reason.into() }
    }

    /// One record of a source rejected.
    pub fn record(source: impl Into<String>, record: impl Into<String>, reason: impl Into<String>) -> Self {
        Reject { source: source.into(), record: Some(record.into()), reason: reason.into() }
    }

    /// A whole file rejected.
    pub fn file(file: &Path, reason: impl Into<String>) -> Self {
        Reject::new(file.display().to_string(), reason)
    }

    /// One 1-based line of a file rejected; the record reads `line N`.
    pub fn line(file: &Path, line: usize, reason: impl Into<String>) -> Self {
        Reject::record(file.display().to_string(), format!("line {line}"), reason)
    }

    /// The 1-based line number when the record is a line (`line N`).
    pub fn line_number(&self) -> Option<usize> {
        self.record.as_deref()?.strip_prefix("line ")?.parse().ok()
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.record {
            Some(record) => write!(f, "{} [{record}]: {}", self.source, self.reason),
            None => write!(f, "{}: {}", self.source, self.reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_rejects_carry_their_number() {
        let r = Reject::line(Path::new("a.jsonStream"), 5, "bad JSON");
        assert_eq!(r.line_number(), Some(5));
        assert_eq!(r.to_string(), "a.jsonStream [line 5]: bad JSON");
        assert_eq!(Reject::new("x", "y").line_number(), None);
    }
}
