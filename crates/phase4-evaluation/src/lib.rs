//! Phase 4 and the evaluation harness every phase measures with.
//!
//! One library scores the pre-trained model (phase 2) and every fine-tuned variant (phase 4) the
//! same way: multiple choice scored in the chat format the model is trained in (answer text as
//! the start of the reply, the primary column), in lm-evaluation-harness's plain format (`acc`,
//! `acc_norm`), by circular letter scoring (CircularEval) and by generation with strict answer
//! extraction, reported per benchmark part with cluster-bootstrap intervals; open-question
//! metrics (exact match, token F1, sacreBLEU-compatible BLEU, rouge-score-compatible ROUGE,
//! over-refusal), the hallucination probe, an LLM-as-judge client, latency statistics and paired
//! comparisons between variants.

pub mod backend;
pub mod circular;
pub mod compare;
pub mod config;
pub mod error;
pub mod judge;
pub mod mcq;
pub mod mcq_report;
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
