//! Phase 5: the report people read and the demo people try.
//!
//! The report and the HTTP demo are specified in issue #6. What lives here now is the terminal
//! chat: a [`chat::ChatSession`] keeps the conversation, renders it with the model's own chat
//! template and streams the answer.

pub mod chat;
