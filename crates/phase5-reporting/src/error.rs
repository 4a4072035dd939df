//! The one error type of phase 5's library: every variant names the address, thread or model
//! at fault and, where the fix is known, says it.

use std::net::SocketAddr;

/// Errors of the demo server, the terminal chat and the report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server could not listen on the requested address.
    #[error("cannot listen on {addr}: {source} (hint: pick another `--port`, or `--port 0` for any free one)")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A thread or the async runtime of the server could not start.
    #[error("cannot start the server's {what}: {source}")]
    Start {
        /// What failed to start (`tokio runtime`, `inference thread`, ...).
        what: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The server stopped with an I/O error while serving.
    #[error("server on {addr} stopped: {source}")]
    Serve {
        /// The bound address.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Server settings that cannot work (no model, a name used twice, a zero limit).
    #[error("invalid server settings: {0}")]
    Settings(String),
    /// A server thread panicked (the panic message is in the log).
    #[error("the server's {0} thread panicked (see the log above)")]
    Panicked(&'static str),
    /// The model engine failed.
    #[error(transparent)]
    Core(#[from] f1_core::Error),
    /// A report input (phase output, config, font) that exists but cannot be read or parsed.
    #[error("{path}: {reason} (hint: {hint})")]
    ReportInput {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
        /// How to fix it.
        hint: String,
    },
    /// A report file that could not be written.
    #[error("cannot write {path}: {source}")]
    ReportOutput {
        /// The file or folder.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A plot that could not be drawn.
    #[error("cannot draw the plot `{name}`: {reason}")]
    Plot {
        /// The plot's title.
        name: String,
        /// What the drawing backend reported.
        reason: String,
    },
}

/// Result with phase 5's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
