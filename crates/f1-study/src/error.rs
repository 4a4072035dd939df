//! The crate's one error type: every variant names the file (and the line, for JSONL), so the
//! phase crates can map it into their own errors without losing where it happened.

use std::path::{Path, PathBuf};

/// An error of the study plumbing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading, writing, renaming or syncing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A line of a JSONL file is not the expected record.
    #[error("{path} line {line}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A configuration file that does not parse or holds an unknown key.
    #[error("{path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong, and the fix where it is known.
        reason: String,
    },
    /// A value could not be written as JSON.
    #[error("{path}: cannot serialize: {reason}")]
    Serialize {
        /// The file it was meant for.
        path: PathBuf,
        /// serde_json's message.
        reason: String,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), source }
    }
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
