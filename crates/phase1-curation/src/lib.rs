//! Phase 1: curate F1 sources into a knowledge base, an instruction dataset and a benchmark.
//!
//! This crate is the home of the phase described in the project's issue #3; it holds no
//! functionality yet. It already links `f1-core`, so the workspace builds and links every phase
//! binary against libtorch from the start.

/// The phase's name as the study's run manifest and logs spell it.
pub const PHASE: &str = "phase1-curation";
