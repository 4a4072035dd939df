//! Files: JSONL records in Hugging Face chat and Alpaca shapes, atomic writes (a temporary
//! file in the same folder, then a rename, so a reader never sees half a file) and sha256.

use std::path::Path;

use serde::Serialize;
use serde_json::{json, Value};

use super::Pair;
use crate::Result;

pub use f1_study::hash::sha256_hex;

/// Write `bytes` to `path` atomically and durably (`f1_study::fs`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(f1_study::fs::write_atomic(path, bytes)?)
}

/// One JSON value per line, for `path`.
pub fn jsonl<T: Serialize>(path: &Path, records: &[T]) -> Result<Vec<u8>> {
    Ok(f1_study::jsonl::to_bytes(path, records)?)
}

fn meta(p: &Pair) -> Vec<(&'static str, Value)> {
    vec![
        ("source", json!(p.source)),
        ("category", json!(p.category)),
        ("difficulty", json!(p.difficulty)),
        ("fact_keys", json!(p.fact_keys)),
        ("provenance", json!(p.provenance)),
    ]
}

/// `{"id", "messages": [user, assistant], source, category, difficulty, fact_keys, provenance}`.
pub fn chat_record(p: &Pair) -> Value {
    let messages = match &p.messages {
        Some(m) => json!(m),
        None => {
            let user = if p.input.is_empty() { p.question.clone() } else { format!("{}\n\n{}", p.question, p.input) };
            json!([{"role": "user", "content": user}, {"role": "assistant", "content": p.answer}])
        }
    };
    let mut m = serde_json::Map::new();
    m.insert("id".into(), json!(p.id));
    m.insert("messages".into(), messages);
    for (k, v) in meta(p) {
        m.insert(k.into(), v);
    }
    Value::Object(m)
}

/// `{"id", "instruction", "input", "output", ...metadata}`.
pub fn alpaca_record(p: &Pair) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("id".into(), json!(p.id));
    m.insert("instruction".into(), json!(p.question));
    m.insert("input".into(), json!(p.input));
    m.insert("output".into(), json!(p.answer));
    for (k, v) in meta(p) {
        m.insert(k.into(), v);
    }
    Value::Object(m)
}
