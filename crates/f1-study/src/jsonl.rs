//! JSONL (one JSON value per line), read with 1-based line numbers in every error and written
//! atomically. Blank lines are skipped but counted, so a reported line is the one an editor
//! shows.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{fs, Error, Result};

/// The non-blank lines of `text` with their 1-based line numbers.
pub fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty())
}

/// Parse every non-blank line of `path` as a `T`; the first bad line is an error naming the
/// file, the line and serde's reason.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse(path, &text)
}

/// Parse JSONL `text` read from `path` (named in errors).
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<Vec<T>> {
    lines(text).map(|(line, l)| serde_json::from_str(l).map_err(|e| Error::Parse { path: path.to_path_buf(), line, reason: e.to_string() })).collect()
}

/// `records` as JSONL bytes, one line each, each line ending in a newline.
pub fn to_bytes<T: Serialize>(path: &Path, records: &[T]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for r in records {
        serde_json::to_writer(&mut out, r).map_err(|e| Error::Serialize { path: path.to_path_buf(), reason: e.to_string() })?;
        out.push(b'\n');
    }
    Ok(out)
}

/// Write `records` to `path` as JSONL, atomically and durably.
pub fn write<T: Serialize>(path: &Path, records: &[T]) -> Result<()> {
    fs::write_atomic(path, &to_bytes(path, records)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_line_numbers_count_blank_lines() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let path = dir.path().join("r.jsonl");
        write(&path, &[serde_json::json!({"a": 1}), serde_json::json!({"a": 2})])?;
        let back: Vec<serde_json::Value> = read(&path)?;
        assert_eq!(back, vec![serde_json::json!({"a": 1}), serde_json::json!({"a": 2})]);

        std::fs::write(&path, "{\"a\": 1}\n\n{\"a\": oops}\n").map_err(|e| Error::io(&path, e))?;
        match read::<serde_json::Value>(&path) {
            Err(Error::Parse { line, path: p, .. }) => assert_eq!((line, p), (3, path.clone())),
            other => panic!("expected a parse error on line 3, got {other:?}"),
        }
        Ok(())
    }
}
