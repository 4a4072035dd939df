//! `phase1-curation import`: a user's JSONL into the same layout as `run` (chat and Alpaca
//! files per split, data card; no benchmark). Each line is detected on its own: `messages`
//! (Hugging Face chat), `instruction`/`input`/`output` (Alpaca) or `prompt`/`completion`. A line
//! that is not JSON, not an object, or none of these shapes becomes a reject naming its line.

use std::path::Path;

use serde_json::Value;

use super::card::{FileHash, Stage, StageReject};
use super::output::sha256_hex;
use super::pipeline::{dedup, empty_card, pair_counts, write, Curated};
use super::split::{self, Split};
use super::{Category, Difficulty, Message, Pair, Source};
use crate::{Error, Reject, Result};

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)?.as_str().map(str::to_owned)
}

fn category_of(v: &Value) -> Category {
    let name = text(v, "category").unwrap_or_default();
    Category::ALL.into_iter().find(|c| c.name() == name).unwrap_or(Category::Imported)
}

/// Parse one line into a pair, or say why not.
pub fn parse_line(line: &str, number: usize, file: &str) -> std::result::Result<Pair, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    if !v.is_object() {
        return Err("not a JSON object".into());
    }
    let nonempty = |s: &str| !s.trim().is_empty();
    let (question, answer, input, messages) = if let Some(m) = v.get("messages") {
        let messages: Vec<Message> =
            serde_json::from_value(m.clone()).map_err(|e| format!("`messages` is not a list of {{role, content}}: {e}"))?;
        if let Some(bad) = messages.iter().find(|m| !matches!(m.role.as_str(), "system" | "user" | "assistant")) {
            return Err(format!("unknown role `{}` in `messages`", bad.role));
        }
        let user = messages.iter().position(|m| m.role == "user").ok_or("`messages` has no user turn")?;
        let assistant = messages[user..].iter().find(|m| m.role == "assistant").ok_or("`messages` has no assistant turn after the user")?;
        (messages[user].content.clone(), assistant.content.clone(), String::new(), Some(messages.clone()))
    } else if let (Some(i), Some(o)) = (text(&v, "instruction"), text(&v, "output")) {
        (i, o, text(&v, "input").unwrap_or_default(), None)
    } else if let (Some(p), Some(c)) = (text(&v, "prompt"), text(&v, "completion")) {
        (p, c, String::new(), None)
    } else {
        return Err("neither `messages`, `instruction`/`output` nor `prompt`/`completion` (strings)".into());
    };
    if !nonempty(&question) || !nonempty(&answer) {
        return Err("empty question or answer".into());
    }
    let id = text(&v, "id").unwrap_or_else(|| format!("import:{number}"));
    Ok(Pair {
        fact_keys: vec![format!("import:{number}")],
        group: format!("import:{number}"),
        provenance: format!("{file} line {number}"),
        id,
        question,
        answer,
        input,
        messages,
        source: Source::Import,
        category: category_of(&v),
        difficulty: Difficulty::Medium,
    })
}

/// Read `input`, split 80/10/10 (stratified by `category` when given), write into `out`.
pub fn import(input: &Path, out: &Path, seed: u64, near_duplicate: f64) -> Result<Curated> {
    let bytes = std::fs::read(input).map_err(|e| Error::io(input, e))?;
    let text = String::from_utf8(bytes.clone()).map_err(|e| Error::Parse {
        path: input.display().to_string(),
        line: None,
        reason: format!("not UTF-8 ({e}); hint: save the file as UTF-8 JSONL"),
    })?;
    let file = input.display().to_string();
    let mut card = empty_card("phase1-curation import", None);
    card.licenses = vec![super::card::License {
        source: "import".into(),
        license: "as stated by the provider of the input".into(),
        attribution: file.clone(),
    }];
    card.inputs = vec![FileHash { path: file.clone(), bytes: bytes.len() as u64, sha256: sha256_hex(&bytes) }];
    let mut pairs = Vec::new();
    let mut rejects = Vec::new();
    let mut lines = 0;
    for (n, line) in f1_study::jsonl::lines(&text) {
        lines += 1;
        match parse_line(line, n, &file) {
            Ok(p) => pairs.push(p),
            Err(reason) => rejects.push(Reject::line(input, n, reason)),
        }
    }
    card.stages.push(Stage::new("import parse", "non-blank lines", lines, pairs.len(), rejects.len()));
    card.rejects.extend(rejects.into_iter().map(|r| StageReject { stage: "import parse".into(), reject: r }));
    let n = pairs.len();
    let (pairs, dups) = dedup(pairs, near_duplicate, &file);
    card.stages.push(Stage::new("pairs", "pairs", n, pairs.len(), dups.len()));
    card.rejects.extend(dups.into_iter().map(|r| StageReject { stage: "pairs".into(), reject: r }));
    let assignment = split::assign(&pairs, seed);
    let mut with_split: Vec<(Pair, Split)> =
        pairs.into_iter().map(|p| { let s = assignment.get(&p.group).copied().unwrap_or(Split::Train); (p, s) }).collect();
    with_split.sort_by_key(|(_, s)| *s);
    card.stages.push(Stage::new("split", "pairs", with_split.len(), with_split.len(), 0));
    pair_counts(&mut card, &with_split);
    card.check()?;
    let mut curated = Curated { pairs: with_split, questions: Vec::new(), probe: Vec::new(), open_recall: Vec::new(), unanswerable: Vec::new(), card };
    write(&mut curated, out)?;
    Ok(curated)
}
