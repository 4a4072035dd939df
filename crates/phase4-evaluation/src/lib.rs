//! Phase 4: evaluate every fine-tuned variant the same way as the baseline.
//!
//! This crate is the home of the phase described in the project's issue #5; it holds no
//! functionality yet. It already links `f1-core`, so the workspace builds and links every phase
//! binary against libtorch from the start.

/// The phase's name as the study's run manifest and logs spell it.
pub const PHASE: &str = "phase4-evaluation";
