//! The one error type of `phase3-training`: every variant names the file (and line) at fault
//! or says what to change.

use std::path::PathBuf;

/// Errors of a training run.
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
    /// The pre-training checks failed: training would be wrong, so it does not start.
    #[error("preflight: {0}")]
    Preflight(String),
    /// A checkpoint that cannot be resumed.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A request that cannot be served (bad sweep, ...).
    #[error("{0}")]
    Invalid(String),
    /// From the engine.
    #[error(transparent)]
    Core(#[from] f1_core::Error),
    /// From the evaluation harness (reading or scoring the probe).
    #[error(transparent)]
    Eval(#[from] phase4_evaluation::Error),
    /// From libtorch.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

/// Result alias for `phase3-training`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

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
    /// Wrap an I/O error with its file.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
