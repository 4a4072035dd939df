//! The table `run-all` prints at the end: the study's headline numbers per variant, read
//! loosely from each variant's `eval.json` and its training run's `summary.json` (xtask does
//! not link the phase crates, so a field that is missing or of another shape shows as `-`).
//!
//! It leads with what fine-tuning taught: chat-format accuracy on the benchmark's `recall`
//! part (with its 95% cluster-bootstrap interval), then `control` and `reasoning`, the plain
//! Question/Answer format on recall and the hallucination rate. A benchmark without a `recall`
//! part (an imported study with one part) gets the overall chat accuracy instead, or the plain
//! one when the chat format did not run.

use std::path::PathBuf;

use serde_json::Value;

/// One variant's inputs to the table.
pub struct Row {
    /// Variant name.
    pub name: String,
    /// Its `eval.json`.
    pub eval: Value,
    /// Seconds its training run took, when it has one.
    pub train_seconds: Option<f64>,
}

/// Read every variant's files named by the study layout (baseline first) and format the table.
pub fn table(layout: &crate::manifest::StudyLayout) -> String {
    let read = |p: PathBuf| std::fs::read_to_string(p).ok().and_then(|t| serde_json::from_str::<Value>(&t).ok());
    let variants = std::iter::once(("baseline".to_string(), PathBuf::new())).chain(layout.variants.iter().cloned());
    let rows: Vec<Row> = variants
        .filter_map(|(name, trained)| {
            let eval = read(layout.results.join(&name).join("eval.json"))?;
            let train_seconds = trained.parent().and_then(|d| read(d.join("summary.json"))).and_then(|s| s["train_seconds"].as_f64());
            Some(Row { name, eval, train_seconds })
        })
        .collect();
    format_table(&rows)
}

/// A share as a percentage with one decimal, or `-`.
fn pct(v: &Value) -> String {
    v.as_f64().map_or("-".to_string(), |x| format!("{:.1}", 100.0 * x))
}

/// An `Accuracy` object as `83.3 [66.7-95.8]`, or `-`.
fn acc_ci(a: &Value) -> String {
    if a["acc"].is_null() {
        "-".into()
    } else {
        format!("{} [{}-{}]", pct(&a["acc"]), pct(&a["ci95"][0]), pct(&a["ci95"][1]))
    }
}

/// The accuracy object of `part` in the chat format, else the plain one.
fn part_acc<'a>(e: &'a Value, part: &str) -> &'a Value {
    let modes = &e["mcq"]["by_part"][part]["modes"];
    if modes["chat_acc"].is_object() {
        &modes["chat_acc"]
    } else {
        &modes["acc"]
    }
}

/// Format the table: per-part columns when any variant's benchmark has a `recall` part, else
/// one overall accuracy column.
pub fn format_table(rows: &[Row]) -> String {
    let by_part = rows.iter().any(|r| r.eval["mcq"]["by_part"]["recall"].is_object());
    let has_chat = rows.iter().any(|r| r.eval["mcq"]["chat"].is_object());
    let mut out = if by_part {
        format!("{:<10} {:>24} {:>12} {:>14} {:>12} {:>10}", "variant", "recall chat % [95% CI]", "control %", "reasoning %", "recall plain", "halluc. %")
    } else {
        format!("{:<10} {:>24} {:>10}", "variant", if has_chat { "chat acc % [95% CI]" } else { "plain acc % [95% CI]" }, "halluc. %")
    };
    out += &format!(" {:>30} {:>10} {:>8}\n", "generative C/I/Inv (acc %)", "median ms", "train s");
    for r in rows {
        let e = &r.eval;
        let halluc = pct(&e["hallucination"]["hallucination_rate"]);
        let mut line = if by_part {
            let recall_plain = &e["mcq"]["by_part"]["recall"]["modes"]["acc"]["acc"];
            format!("{:<10} {:>24} {:>12} {:>14} {:>12} {halluc:>10}", r.name, acc_ci(part_acc(e, "recall")), pct(&part_acc(e, "control")["acc"]), pct(&part_acc(e, "reasoning")["acc"]), pct(recall_plain))
        } else {
            let overall = if has_chat { &e["mcq"]["chat"]["acc"]["overall"] } else { &e["mcq"]["loglikelihood"]["acc"]["overall"] };
            format!("{:<10} {:>24} {halluc:>10}", r.name, acc_ci(overall))
        };
        let g = &e["mcq"]["generative"];
        let g_s = if g.is_null() { "-".into() } else { format!("{}/{}/{} ({})", g["correct"], g["incorrect"], g["invalid"], pct(&g["accuracy"]["overall"]["acc"])) };
        let lat = e["latency"]["total_ms"]["median"].as_f64().map_or("-".into(), |m| format!("{m:.0}"));
        let train = r.train_seconds.map_or("-".into(), |t| format!("{t:.0}"));
        line += &format!(" {g_s:>30} {lat:>10} {train:>8}\n");
        out += &line;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn acc(a: f64) -> Value {
        json!({"correct": 1, "n": 2, "acc": a, "stderr": 0.1, "ci95": [a - 0.1, a + 0.1]})
    }

    #[test]
    fn the_table_leads_with_recall_and_falls_back_to_one_overall_column() {
        let parts = json!({
            "recall": {"n": 24, "clusters": 24, "modes": {"chat_acc": acc(0.8), "acc": acc(0.5)}},
            "control": {"n": 8, "clusters": 8, "modes": {"chat_acc": acc(0.25)}},
        });
        let eval = json!({"mcq": {"chat": {}, "by_part": parts, "generative": {"correct": 3, "incorrect": 4, "invalid": 1, "accuracy": {"overall": acc(0.375)}}}, "hallucination": {"hallucination_rate": 0.3}, "latency": {"total_ms": {"median": 812.4}}});
        let t = format_table(&[Row { name: "lora".into(), eval, train_seconds: Some(325.2) }]);
        let line = t.lines().nth(1).expect("a row");
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells, ["lora", "80.0", "[70.0-90.0]", "25.0", "-", "50.0", "30.0", "3/4/1", "(37.5)", "812", "325"], "{t}");
        assert!(t.starts_with("variant") && t.contains("recall chat % [95% CI]"), "{t}");

        // One part and no chat format: the overall plain accuracy.
        let old = json!({"mcq": {"loglikelihood": {"acc": {"overall": acc(0.4)}}, "by_part": {"all": {"modes": {"acc": acc(0.4)}}}}});
        let t = format_table(&[Row { name: "baseline".into(), eval: old, train_seconds: None }]);
        assert!(t.contains("plain acc % [95% CI]"), "{t}");
        let cells: Vec<&str> = t.lines().nth(1).expect("a row").split_whitespace().collect();
        assert_eq!(cells, ["baseline", "40.0", "[30.0-50.0]", "-", "-", "-", "-"], "{t}");
    }
}
