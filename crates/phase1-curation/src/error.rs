//! The one error type of `phase1-curation`. Every variant names the file, URL or record at
//! fault; a bad record in an otherwise good source becomes a reject with this reason instead.

use std::path::PathBuf;

/// Errors from reading, parsing and checking sources.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file (or archive member) that does not parse.
    #[error("{path}{}: {reason}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Parse {
        /// The file or `archive.tar.gz!member` path.
        path: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// What is wrong, in words, with the fix where known.
        reason: String,
    },
    /// A reference to a record that does not exist (e.g. a result's driverId).
    #[error("{path}: {reason}")]
    Reference {
        /// The file holding the dangling reference.
        path: String,
        /// Which id points nowhere.
        reason: String,
    },
    /// A failed fetch.
    #[error("{url}: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong (timeout, status, size cap, robots.txt).
        reason: String,
    },
    /// A curation stage that cannot go on (leakage found, too few facts, a bad config value).
    #[error("{stage}: {reason}")]
    Curation {
        /// The stage (`leakage`, `config`, `import`, ...).
        stage: String,
        /// What is wrong, with the fix where known.
        reason: String,
    },
}

/// Result alias for `phase1-curation`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<f1_study::Error> for Error {
    fn from(e: f1_study::Error) -> Self {
        match e {
            f1_study::Error::Io { path, source } => Error::Io { path, source },
            f1_study::Error::Parse { path, line, reason } => Error::Parse { path: path.display().to_string(), line: Some(line), reason },
            f1_study::Error::Serialize { path, reason } | f1_study::Error::Config { path, reason } => Error::Parse { path: path.display().to_string(), line: None, reason },
        }
    }
}

impl Error {
    /// Wrap an I/O error with the file it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
