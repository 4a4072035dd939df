//! A multi-turn chat session over a loaded model: history, the model's chat template, streamed
//! generation. The terminal chat (`phase5-reporting chat`) is a thin loop around it.

use f1_core::generate::{encode_prompt, generate_ids, GenerationConfig, GenerationOutput};
use f1_core::{ChatMessage, LoadedModel};

/// A conversation with one model.
pub struct ChatSession<'m> {
    model: &'m LoadedModel,
    history: Vec<ChatMessage>,
    system: Option<String>,
    /// Decoding options for every reply.
    pub generation: GenerationConfig,
}

impl<'m> ChatSession<'m> {
    /// Start a conversation, optionally with a system prompt.
    pub fn new(model: &'m LoadedModel, system: Option<String>, generation: GenerationConfig) -> Self {
        ChatSession { model, history: vec![], system, generation }
    }

    /// Forget the conversation (the system prompt stays).
    pub fn reset(&mut self) {
        self.history.clear();
    }

    /// The turns so far.
    pub fn history(&self) -> &[ChatMessage] {
        &self.history
    }

    /// Answer `user`, streaming text pieces to `on_text`; the answer joins the history.
    pub fn reply(&mut self, user: &str, mut on_text: impl FnMut(&str)) -> f1_core::Result<GenerationOutput> {
        let mut messages: Vec<ChatMessage> = self.system.iter().map(|s| ChatMessage { role: "system".into(), content: s.clone() }).collect();
        messages.extend(self.history.iter().cloned());
        messages.push(ChatMessage { role: "user".into(), content: user.into() });
        let prompt = self.model.chat_template.render(&messages, true)?;
        let ids = encode_prompt(&self.model.tokenizer, &prompt)?;
        let mut out = generate_ids(&self.model.model, &self.model.tokenizer, &[ids], &self.generation, |_, t| on_text(t))?;
        let out = out.remove(0);
        self.history.push(ChatMessage { role: "user".into(), content: user.into() });
        self.history.push(ChatMessage { role: "assistant".into(), content: out.text.trim().to_string() });
        Ok(out)
    }
}
