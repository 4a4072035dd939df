//! The server-sent-event body of a streamed chat completion.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::response::sse::Event;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::api::ApiError;
use super::routes::{finish_name, usage};
use super::worker::ChatEvent;

/// Fields shared by every chunk of one streamed chat completion.
pub(super) struct ChunkMeta {
    pub(super) id: String,
    pub(super) created: u64,
    pub(super) model: String,
    pub(super) include_usage: bool,
}

impl ChunkMeta {
    pub(super) fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Event {
        let mut c = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason }],
        });
        if self.include_usage {
            // OpenAI sends `usage: null` on every chunk but the last when usage is asked for.
            c["usage"] = Value::Null;
        }
        Event::default().data(c.to_string())
    }
}

/// The SSE body of a streamed chat completion: the role chunk, one chunk per text piece, a
/// chunk with `finish_reason`, the usage chunk if asked for, then `[DONE]`. Past the request's
/// deadline it ends with an error event (code `timeout`) and `[DONE]`.
pub(super) struct ChatStream {
    pub(super) events: mpsc::UnboundedReceiver<ChatEvent>,
    pub(super) pending: VecDeque<Event>,
    pub(super) done: bool,
    pub(super) meta: ChunkMeta,
    pub(super) deadline: Pin<Box<tokio::time::Sleep>>,
    pub(super) timeout: Duration,
}

impl ChatStream {
    fn on_event(&mut self, event: Option<ChatEvent>) {
        match event {
            Some(ChatEvent::Started { .. }) => {}
            Some(ChatEvent::Text(t)) => self.pending.push_back(self.meta.chunk(json!({ "content": t }), None)),
            Some(ChatEvent::Done(out)) => {
                self.pending.push_back(self.meta.chunk(json!({}), Some(finish_name(out.finish_reason))));
                if self.meta.include_usage {
                    let c = json!({
                        "id": self.meta.id, "object": "chat.completion.chunk", "created": self.meta.created, "model": self.meta.model,
                        "choices": [], "usage": usage(out.prompt_tokens, out.completion_tokens),
                    });
                    self.pending.push_back(Event::default().data(c.to_string()));
                }
                self.finish();
            }
            // Headers are sent by now, so a late failure travels in the stream, as vLLM does it.
            Some(ChatEvent::Failed(e)) => {
                self.pending.push_back(Event::default().data(e.body().to_string()));
                self.finish();
            }
            None => {
                self.pending.push_back(Event::default().data(ApiError::internal("the inference thread stopped mid-stream (see the server log)".into()).body().to_string()));
                self.finish();
            }
        }
    }

    fn finish(&mut self) {
        self.pending.push_back(Event::default().data("[DONE]"));
        self.done = true;
    }
}

impl futures_core::Stream for ChatStream {
    type Item = std::result::Result<Event, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(e) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(e)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match this.events.poll_recv(cx) {
                Poll::Ready(event) => this.on_event(event),
                Poll::Pending => {
                    std::task::ready!(this.deadline.as_mut().poll(cx));
                    this.pending.push_back(Event::default().data(ApiError::timeout(this.timeout).body().to_string()));
                    this.finish();
                }
            }
        }
    }
}
