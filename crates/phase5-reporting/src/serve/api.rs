//! The OpenAI request bodies this server reads and the error object it answers with.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use f1_core::ChatMessage;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

use super::{MAX_PROMPTS, RETRY_AFTER_SECS};

/// `POST /v1/chat/completions`. Fields OpenAI defines and this server does not use
/// (`frequency_penalty`, `user`, `tools`, ...) are accepted and ignored, as vLLM does.
#[derive(Deserialize)]
pub(super) struct ChatRequest {
    pub(super) model: Option<String>,
    pub(super) messages: Vec<InMessage>,
    pub(super) max_tokens: Option<i64>,
    pub(super) max_completion_tokens: Option<i64>,
    pub(super) temperature: Option<f64>,
    pub(super) top_p: Option<f64>,
    pub(super) seed: Option<i64>,
    pub(super) stop: Option<Stop>,
    pub(super) stream: Option<bool>,
    pub(super) stream_options: Option<StreamOptions>,
    pub(super) n: Option<i64>,
}

#[derive(Deserialize)]
pub(super) struct StreamOptions {
    pub(super) include_usage: Option<bool>,
}

/// A message as clients send it: `content` is a string, or a list of parts of which the
/// `text` ones are kept (images and audio cannot go to a text model).
#[derive(Deserialize)]
pub(super) struct InMessage {
    role: String,
    #[serde(default)]
    content: Value,
}

impl InMessage {
    pub(super) fn into_chat(self, i: usize) -> Result<ChatMessage, ApiError> {
        let content = match self.content {
            Value::Null => String::new(),
            Value::String(s) => s,
            Value::Array(parts) => {
                let mut text = String::new();
                for part in &parts {
                    match (part.get("type").and_then(Value::as_str), part.get("text").and_then(Value::as_str)) {
                        (Some("text"), Some(t)) => text.push_str(t),
                        (kind, _) => return Err(ApiError::bad_request(format!("messages[{i}]: content part of type {kind:?} is not supported (text only)"))),
                    }
                }
                text
            }
            other => return Err(ApiError::bad_request(format!("messages[{i}].content must be a string or a list of text parts, got {other}"))),
        };
        Ok(ChatMessage { role: self.role, content })
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Stop {
    One(String),
    Many(Vec<String>),
}

/// `POST /v1/completions`.
#[derive(Deserialize)]
pub(super) struct CompletionRequest {
    pub(super) model: Option<String>,
    pub(super) prompt: PromptField,
    pub(super) max_tokens: Option<i64>,
    pub(super) temperature: Option<f64>,
    pub(super) top_p: Option<f64>,
    pub(super) seed: Option<i64>,
    pub(super) stop: Option<Stop>,
    pub(super) echo: Option<bool>,
    pub(super) logprobs: Option<i64>,
    pub(super) stream: Option<bool>,
    pub(super) n: Option<i64>,
}

/// The legacy API's `prompt`: a string, a list of strings, a list of token ids or a list of
/// lists of token ids (lm-evaluation-harness sends the latter two with tokenized requests).
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum PromptField {
    Text(String),
    Texts(Vec<String>),
    Ids(Vec<u32>),
    IdLists(Vec<Vec<u32>>),
}

impl PromptField {
    pub(super) fn into_prompts(self) -> Result<Vec<Prompt>, ApiError> {
        let prompts = match self {
            PromptField::Text(s) => vec![Prompt::Text(s)],
            PromptField::Texts(v) => v.into_iter().map(Prompt::Text).collect(),
            PromptField::Ids(v) => vec![Prompt::Ids(v)],
            PromptField::IdLists(v) => v.into_iter().map(Prompt::Ids).collect(),
        };
        if prompts.is_empty() {
            return Err(ApiError::bad_request("`prompt` is an empty list".into()));
        }
        if prompts.len() > MAX_PROMPTS {
            return Err(ApiError { param: Some("prompt"), ..ApiError::bad_request(format!("`prompt` holds {} prompts; this server takes at most {MAX_PROMPTS} per request: split them over several requests", prompts.len())) });
        }
        Ok(prompts)
    }
}

/// One prompt of a completion request.
pub(super) enum Prompt {
    Text(String),
    Ids(Vec<u32>),
}

/// An OpenAI-style error: `{"error": {"message", "type", "param", "code"}}` with its status.
#[derive(Debug)]
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) message: String,
    pub(super) kind: &'static str,
    pub(super) param: Option<&'static str>,
    pub(super) code: Option<&'static str>,
    /// Seconds for a `Retry-After` header (429).
    pub(super) retry_after: Option<u64>,
}

impl ApiError {
    pub(super) fn bad_request(message: String) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, message, kind: "invalid_request_error", param: None, code: None, retry_after: None }
    }

    pub(super) fn unauthorized(message: &str) -> Self {
        ApiError { status: StatusCode::UNAUTHORIZED, code: Some("invalid_api_key"), ..ApiError::bad_request(message.into()) }
    }

    pub(super) fn busy(workers: usize, queue: usize) -> Self {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!("the server is busy ({workers} running and {queue} waiting requests, --workers and --queue); retry after {RETRY_AFTER_SECS} s"),
            kind: "rate_limit_error",
            param: None,
            code: Some("server_busy"),
            retry_after: Some(RETRY_AFTER_SECS),
        }
    }

    pub(super) fn timeout(limit: Duration) -> Self {
        ApiError {
            status: StatusCode::GATEWAY_TIMEOUT,
            message: format!("the request did not finish within the server's limit of {:.1} s (--timeout-secs); ask for fewer max_tokens or retry when the server is less busy", limit.as_secs_f64()),
            kind: "server_error",
            param: None,
            code: Some("timeout"),
            retry_after: None,
        }
    }

    pub(super) fn unsupported_media_type(content_type: &str) -> Self {
        let got = if content_type.is_empty() { "none".to_string() } else { format!("`{content_type}`") };
        ApiError { status: StatusCode::UNSUPPORTED_MEDIA_TYPE, code: Some("unsupported_media_type"), ..ApiError::bad_request(format!("send the body as JSON with `Content-Type: application/json` (the request's Content-Type: {got})")) }
    }

    pub(super) fn forbidden_origin(origin: &str) -> Self {
        ApiError { status: StatusCode::FORBIDDEN, code: Some("origin_not_allowed"), ..ApiError::bad_request(format!("requests from web pages at {origin} are refused; start the server with --allow-origin {origin} to allow that page")) }
    }

    pub(super) fn too_long(message: String) -> Self {
        ApiError { code: Some("context_length_exceeded"), ..ApiError::bad_request(message) }
    }

    pub(super) fn internal(message: String) -> Self {
        ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, message, kind: "server_error", param: None, code: None, retry_after: None }
    }

    pub(super) fn unavailable() -> Self {
        ApiError { status: StatusCode::SERVICE_UNAVAILABLE, message: "the inference threads have stopped; restart the server (see its log for the cause)".into(), kind: "server_error", param: None, code: Some("worker_unavailable"), retry_after: None }
    }

    pub(super) fn body(&self) -> Value {
        json!({ "error": { "message": self.message, "type": self.kind, "param": self.param, "code": self.code } })
    }
}

impl From<f1_core::Error> for ApiError {
    /// What the request could fix (a template that rejects the roles, a bad token id) is a
    /// 400; anything else is the server's fault.
    fn from(e: f1_core::Error) -> Self {
        match e {
            f1_core::Error::Invalid(_) | f1_core::Error::ChatTemplate { .. } | f1_core::Error::Tokenizer { .. } => ApiError::bad_request(e.to_string()),
            other => {
                tracing::error!("inference failed: {other}");
                ApiError::internal(other.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_have_the_openai_shape() {
        let e = ApiError::too_long("too long".into());
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let body = e.body();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["code"], "context_length_exceeded");
        assert_eq!(body["error"]["message"], "too long");
    }

    #[test]
    fn busy_errors_say_when_to_retry() {
        let r = ApiError::busy(1, 1).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("1"));
        let r = ApiError::unauthorized("no key").into_response();
        assert_eq!(r.headers().get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()), Some("Bearer"));
    }

    #[test]
    fn prompts_parse_in_every_legacy_form() {
        let parse = |v: Value| serde_json::from_value::<PromptField>(v).map(|p| p.into_prompts().map(|p| p.len()));
        assert_eq!(parse(json!("a")).ok().and_then(|r| r.ok()), Some(1));
        assert_eq!(parse(json!(["a", "b"])).ok().and_then(|r| r.ok()), Some(2));
        assert_eq!(parse(json!([1, 2, 3])).ok().and_then(|r| r.ok()), Some(1));
        assert_eq!(parse(json!([[1], [2]])).ok().and_then(|r| r.ok()), Some(2));
        assert!(parse(json!([])).ok().is_some_and(|r| r.is_err()), "an empty list is refused");
        // 100,000 one-token prompts held a server for minutes before.
        let many = parse(json!(vec![vec![1u32]; MAX_PROMPTS + 1])).ok().and_then(|r| r.err()).map(|e| e.message).unwrap_or_default();
        assert!(many.contains("65 prompts") && many.contains("at most 64"), "{many}");
        assert_eq!(parse(json!(vec!["a"; MAX_PROMPTS])).ok().and_then(|r| r.ok()), Some(MAX_PROMPTS));
        assert!(parse(json!(3)).is_err());
    }
}
