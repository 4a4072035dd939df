//! The one error type of `f1-core`. Every variant that comes from a file names the file, and
//! where the fix is known the message says it.

use std::path::PathBuf;

/// Errors from loading, tokenizing, templating and generating.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file being read or written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A GGUF file that does not parse (bad magic, truncated, unknown type, ...).
    #[error("{path}: not a valid GGUF file: {reason}")]
    Gguf {
        /// The GGUF file.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// A weight tensor that is missing, mis-shaped or of an unsupported type.
    #[error("{path}: tensor `{name}`: {reason}")]
    Tensor {
        /// The weight file (or directory) the tensor should come from.
        path: PathBuf,
        /// The tensor's Hugging Face name.
        name: String,
        /// What is wrong, in words.
        reason: String,
    },
    /// A model configuration that is missing, malformed or unsupported.
    #[error("{path}: {reason}")]
    Config {
        /// The config file (or model file carrying the config).
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// A tokenizer that cannot be built or used.
    #[error("tokenizer from {origin}: {reason}")]
    Tokenizer {
        /// Where the tokenizer came from (a file path, or "GGUF metadata of" and a path).
        origin: String,
        /// What is wrong, in words.
        reason: String,
    },
    /// A chat template that does not compile or render.
    #[error("chat template {name}: {reason}")]
    ChatTemplate {
        /// The template's name ("model" for the model's own, or a fallback's name).
        name: String,
        /// What is wrong, in words.
        reason: String,
    },
    /// A failure fetching a model from the Hugging Face hub.
    #[error("hub model `{repo}`: {reason}")]
    Hub {
        /// The hub repository id.
        repo: String,
        /// What is wrong, in words.
        reason: String,
    },
    /// A request that cannot be served as given (bad generation options, empty batch, ...).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// An error raised by libtorch.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

/// Result alias for `f1-core`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<f1_study::Error> for Error {
    fn from(e: f1_study::Error) -> Self {
        match e {
            f1_study::Error::Io { path, source } => Error::Io { path, source },
            f1_study::Error::Parse { path, line, reason } => Error::Config { path, reason: format!("line {line}: {reason}") },
            f1_study::Error::Serialize { path, reason } | f1_study::Error::Config { path, reason } => Error::Config { path, reason },
        }
    }
}

impl Error {
    /// Wrap an I/O error with the file it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
