//! Files: JSONL records in Hugging Face chat and Alpaca shapes, atomic writes (a temporary
//! file in the same folder, then a rename, so a reader never sees half a file) and sha256.

use std::path::Path;

use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::Pair;
use crate::{Error, Result};

/// Lowercase hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Write `bytes` to `path` through `path.tmp` and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// One JSON value per line.
pub fn jsonl<T: Serialize>(records: &[T]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        // Serializing our own plain structs cannot fail; a failure would be a bug worth a panic.
        out.extend(serde_json::to_vec(r).expect("records serialize"));
        out.push(b'\n');
    }
    out
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
