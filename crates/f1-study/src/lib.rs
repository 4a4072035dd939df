//! The study's shared plumbing, without libtorch, so xtask and every phase crate can use it:
//! files written atomically and durably ([`fs`]), sha256 of bytes, files and folders
//! ([`hash`]), JSONL read and written with line numbers in every error ([`jsonl`]), and the
//! study document read and its sections checked in one place ([`study`]).
//! One owner per concept (issue #14): a phase that writes an artifact, hashes an input or reads
//! a JSONL file does it through here, so the policy (fsync before rename, lowercase hex, 1-based
//! line numbers) is decided once.

pub mod error;
pub mod fs;
pub mod hash;
pub mod jsonl;
pub mod study;

pub use error::{Error, Result};
