//! The study document (`config/study.yaml` or another domain's): read and parsed in this one
//! place, its top-level sections checked against [`SECTIONS`], so that a misspelled section
//! (`evalution:`) is an error naming it instead of a section silently left at its defaults.
//! Each phase deserializes its own section from the document [`read_document`] returns.

use std::path::Path;

use serde_yaml::Value;

use crate::{Error, Result};

/// The top-level keys a study document may hold.
pub const SECTIONS: &[&str] = &["domain", "system_prompt", "model", "curation", "training", "evaluation"];

/// Read and parse the study document at `path`, refusing a file that is not YAML, is not a
/// mapping of sections, or holds a top-level key outside [`SECTIONS`]. An empty file is an
/// empty document (every section at its defaults).
pub fn read_document(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let bad = |reason: String| Error::Config { path: path.to_path_buf(), reason };
    let doc: Value = serde_yaml::from_str(&text).map_err(|e| bad(format!("not valid YAML: {e}")))?;
    match &doc {
        Value::Null => Ok(Value::Mapping(Default::default())),
        Value::Mapping(sections) => {
            for key in sections.keys() {
                let name = key.as_str().ok_or_else(|| bad(format!("top-level key {key:?} is not a section name")))?;
                if !SECTIONS.contains(&name) {
                    return Err(bad(format!("unknown top-level section `{name}` (the sections are {}); check its spelling", SECTIONS.join(", "))));
                }
            }
            Ok(doc)
        }
        _ => Err(bad("a study config is a mapping of sections (model:, curation:, training:, evaluation:, ...)".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Value> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let path = dir.path().join("study.yaml");
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
        read_document(&path)
    }

    #[test]
    fn a_misspelled_section_is_an_error_naming_it_and_the_known_ones() {
        let err = read("model:\n  base: m.gguf\nevalution:\n  benchmark: b.jsonl\n").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("study.yaml") && err.contains("`evalution`") && err.contains("evaluation"), "{err}");
        assert!(read("- a\n- b\n").is_err());
        assert!(read("model: [unclosed\n").err().map(|e| e.to_string()).unwrap_or_default().contains("not valid YAML"));
    }

    #[test]
    fn the_shipped_studies_and_an_empty_file_read() -> Result<()> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for study in ["config/study.yaml", "config/examples/pipeline-faq.yaml"] {
            let doc = read_document(&root.join(study))?;
            assert!(doc.get("evaluation").is_some(), "{study}");
        }
        assert_eq!(read("")?, Value::Mapping(Default::default()));
        Ok(())
    }
}
