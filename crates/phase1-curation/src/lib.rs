//! Phase 1: curate F1 sources into a knowledge base, an instruction dataset and a benchmark.
//!
//! Sources are read in their upstream formats from a local mirror (`../shared/f1data` in this
//! workplace; the same files upstream for everyone else): F1DB's YAML tree, Wikipedia pages,
//! and the F1 live-timing streams. Issue #3 specifies the whole phase; modules land one source
//! at a time.

use std::path::PathBuf;

pub mod article;
pub mod curate;
pub mod ergast;
pub mod error;
pub mod f1db;
pub mod fetch;
pub mod livetiming;
pub mod reject;

pub use error::{Error, Result};
pub use reject::Reject;

/// The phase's name as the study's run manifest and logs spell it.
pub const PHASE: &str = "phase1-curation";

/// The source mirror: `$F1_DATA` if set, else `../shared/f1data` beside the workspace root.
pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("F1_DATA") {
        return PathBuf::from(dir);
    }
    let root = std::env::var_os("F1_ROOT").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."));
    root.join("../shared/f1data")
}
