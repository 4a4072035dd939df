//! Phase 3: LoRA, QLoRA and full-parameter fine-tuning.
//!
//! This crate is the home of the phase described in the project's issue #4; it holds no
//! functionality yet. It already links `f1-core`, so the workspace builds and links every phase
//! binary against libtorch from the start.

/// The phase's name as the study's run manifest and logs spell it.
pub const PHASE: &str = "phase3-training";
