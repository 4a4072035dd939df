//! The one error type of the evaluation harness: every variant names the file (and line), the
//! endpoint or the setting at fault, and says what to change where that is known.

use std::path::PathBuf;

/// Errors of an evaluation run.
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
    /// A config file that does not parse or holds a bad value.
    #[error("{path}: {reason}")]
    Config {
        /// The YAML file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A dataset line that cannot be used.
    #[error("{path} line {line}: {reason}")]
    Data {
        /// The JSONL file.
        path: PathBuf,
        /// 1-based line (0 when it concerns the whole file).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A remote endpoint (judge or served model) that failed after its retries.
    #[error("{url}: {reason}")]
    Remote {
        /// The endpoint.
        url: String,
        /// What went wrong, last attempt.
        reason: String,
    },
    /// An argument that cannot be used (empty sample, mismatched pairs, ...).
    #[error("{0}")]
    Invalid(String),
    /// The model engine failed.
    #[error(transparent)]
    Core(#[from] f1_core::Error),
}

impl From<f1_study::Error> for Error {
    fn from(e: f1_study::Error) -> Self {
        match e {
            f1_study::Error::Io { path, source } => Error::Io { path, source },
            f1_study::Error::Parse { path, line, reason } => Error::Data { path, line, reason },
            f1_study::Error::Serialize { path, reason } => Error::Invalid(format!("{}: {reason}", path.display())),
            f1_study::Error::Config { path, reason } => Error::Config { path, reason },
        }
    }
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

/// Result with the harness's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
