//! Phase 4 and the evaluation harness every phase measures with.
//!
//! One library scores the pre-trained model (phase 2) and every fine-tuned variant (phase 4) the
//! same way, following lm-evaluation-harness's definitions: multiple-choice log-likelihood
//! (`acc`, `acc_norm`) and generation with strict answer extraction, open-question metrics
//! (exact match, token F1, sacreBLEU-compatible BLEU, rouge-score-compatible ROUGE), an
//! LLM-as-judge client, latency statistics and paired comparisons between variants.

pub mod backend;
pub mod compare;
pub mod config;
pub mod error;
pub mod judge;
pub mod mcq;
pub mod metrics;
pub mod open;
pub mod remote;
pub mod run;
pub mod stats;
pub mod variant;

pub use backend::{Backend, Generation, LlRequest, LocalBackend};
pub use error::{Error, Result};
pub use variant::{Variant, VariantKind};

/// The phase's name as the study's run manifest and logs spell it.
pub const PHASE: &str = "phase4-evaluation";
