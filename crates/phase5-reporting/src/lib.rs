//! Phase 5: the report people read and the demo people try.
//!
//! The report is specified in issue #6. What lives here now is the demo: a [`chat::ChatSession`]
//! keeps a terminal conversation, renders it with the model's own chat template and streams the
//! answer; [`serve`] puts any study variant behind an OpenAI-compatible HTTP API (chat and
//! legacy completions with prompt log-probabilities, as vLLM serves them) with a small web chat
//! page, so the evaluation harness and off-the-shelf clients measure the served model too.
//! [`report`] builds the study report from every phase's outputs: plots, `report.md` and a
//! self-contained `report.html`.

pub mod chat;
pub mod error;
pub mod report;
pub mod serve;

pub use error::{Error, Result};
