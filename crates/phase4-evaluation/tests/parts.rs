//! Per-part reporting and comparison on hand-made cases: clusters of items sharing a fact, the
//! cluster-bootstrap interval (wider than the item interval when outcomes go together within a
//! fact, identical to it when every item stands alone), the paired cluster bootstrap, the per-part
//! summary of `eval.json` and the per-part comparison of `comparison.json`.

use phase4_evaluation::compare::{compare, Comparison, COMPARISON_SCHEMA_VERSION};
use phase4_evaluation::mcq::{self, ItemResult, LlOutcome};
use phase4_evaluation::stats::{bootstrap_ci, cluster_accuracy, cluster_bootstrap_ci, clusters, paired_bootstrap, paired_cluster_bootstrap};

fn keys(k: &[&[&str]]) -> Vec<Vec<String>> {
    k.iter().map(|ks| ks.iter().map(|s| s.to_string()).collect()).collect()
}

#[test]
fn clusters_are_the_connected_components_of_shared_facts() {
    // Item 2 links facts a and c, so items 0, 2 and 4 are one cluster; keyless items stand alone.
    assert_eq!(clusters(&keys(&[&["a"], &["b"], &["a", "c"], &[], &["c"], &["d"], &[]])), vec![0, 1, 0, 2, 0, 3, 4]);
    // A late bridge joins two clusters formed earlier.
    assert_eq!(clusters(&keys(&[&["x"], &["y"], &["y"], &["x", "y"], &["z"]])), vec![0, 0, 0, 0, 1]);
    assert_eq!(clusters(&keys(&[&["x"], &["y"], &["z"], &["z", "y"]])), vec![0, 1, 1, 1]);
    assert!(clusters(&[]).is_empty());
}

#[test]
fn the_cluster_interval_is_wider_when_a_fact_decides_all_its_questions() {
    // Ten facts, five questions each; the model knows five facts (all their questions right)
    // and not the other five. 50 items at 50%, but only ten independent draws.
    let values: Vec<f64> = (0..50).map(|i| if i / 5 < 5 { 1.0 } else { 0.0 }).collect();
    let cluster: Vec<usize> = (0..50).map(|i| i / 5).collect();
    let item = bootstrap_ci(&values, 2000, 7, 0.95);
    let clustered = cluster_bootstrap_ci(&values, &cluster, 2000, 7, 0.95).expect("cluster ci");
    let (wi, wc) = (item.1 - item.0, clustered.1 - clustered.0);
    // The normal approximation: item width ~ 2 * 1.96 * sqrt(.25 / 50) = 0.28, cluster width
    // ~ 2 * 1.96 * sqrt(.25 / 10) = 0.62.
    assert!(wi > 0.2 && wi < 0.36, "item interval {item:?}");
    assert!(wc > 0.5 && wc < 0.75, "cluster interval {clustered:?}");
    assert!(clustered.0 <= 0.5 && 0.5 <= clustered.1);
    // Every item its own cluster: the same draws as the item bootstrap, the same interval.
    let alone: Vec<usize> = (0..50).collect();
    assert_eq!(cluster_bootstrap_ci(&values, &alone, 2000, 7, 0.95).expect("singletons"), item);
    let acc = cluster_accuracy(&values.iter().map(|&v| v == 1.0).collect::<Vec<_>>(), &cluster, 2000, 7).expect("accuracy");
    assert_eq!((acc.correct, acc.n, acc.acc, acc.ci95), (25, 50, 0.5, clustered));
    assert!(cluster_bootstrap_ci(&values, &cluster[..10], 10, 1, 0.95).is_err(), "lengths must agree");
}

#[test]
fn the_paired_cluster_bootstrap_resamples_facts_together() {
    let cluster: Vec<usize> = (0..40).map(|i| i / 4).collect();
    let a: Vec<bool> = (0..40).map(|i| i % 4 == 0).collect();
    // B gains a whole fact (four questions) in six of the ten clusters.
    let b: Vec<bool> = (0..40).map(|i| i % 4 == 0 || i / 4 < 6).collect();
    let c = paired_cluster_bootstrap(&a, &b, &cluster, 2000, 3).expect("paired");
    assert!((c.diff - 18.0 / 40.0).abs() < 1e-12);
    assert_eq!((c.clusters, c.resamples), (10, 2000));
    assert!(c.ci95.0 > 0.0 && c.share_at_or_below_zero < 0.01, "{c:?}");
    // The item bootstrap of the same data is narrower.
    let item = paired_bootstrap(&a, &b, 2000, 3).expect("item");
    assert!(c.ci95.1 - c.ci95.0 > item.ci95.1 - item.ci95.0);
    // No difference: every resample sums to zero.
    let same = paired_cluster_bootstrap(&a, &a, &cluster, 500, 3).expect("same");
    assert_eq!((same.diff, same.ci95, same.share_at_or_below_zero, same.p_value), (0.0, (0.0, 0.0), 1.0, 1.0));
    // Singletons draw what the item bootstrap draws.
    let alone: Vec<usize> = (0..40).collect();
    let s = paired_cluster_bootstrap(&a, &b, &alone, 2000, 3).expect("singletons");
    assert_eq!((s.ci95, s.p_value), (item.ci95, item.p_value));
    assert!(paired_cluster_bootstrap(&a, &b, &cluster, 0, 3).is_err());
}

/// An item scored in the chat and plain modes: `chat_ok` decides the chat prediction, the plain
/// prediction is always wrong.
fn item(id: &str, part: &str, facts: &[&str], chat_ok: bool) -> ItemResult {
    let outcome = |ok: bool| LlOutcome { logprobs: vec![-1.0, -2.0], pred: usize::from(!ok), pred_norm: usize::from(!ok) };
    ItemResult {
        id: id.into(),
        answer_index: 0,
        part: part.into(),
        fact_keys: facts.iter().map(|s| s.to_string()).collect(),
        category: None,
        difficulty: None,
        control: None,
        chat: Some(outcome(chat_ok)),
        ll: Some(outcome(false)),
        circular: None,
        generative: None,
    }
}

/// Recall: six questions on three facts; control: two on facts of their own. `known` says which
/// recall facts the variant knows (all questions on a known fact right).
fn variant(known: &[&str], control_ok: bool) -> Vec<ItemResult> {
    let mut v = vec![];
    for (i, f) in ["f1", "f1", "f2", "f2", "f3", "f3"].iter().enumerate() {
        v.push(item(&format!("r{i}"), "recall", &[f], known.contains(f)));
    }
    v.push(item("c0", "control", &["g1"], control_ok));
    v.push(item("c1", "control", &[], control_ok));
    v
}

#[test]
fn every_part_is_reported_with_its_clusters_and_modes() {
    let r = mcq::report_resampled(&variant(&["f1", "f2"], false), 5, 500);
    assert_eq!(r.by_part.keys().map(String::as_str).collect::<Vec<_>>(), vec!["control", "recall"]);
    let recall = &r.by_part["recall"];
    assert_eq!((recall.n, recall.clusters), (6, 3));
    assert_eq!(recall.modes.keys().map(String::as_str).collect::<Vec<_>>(), vec!["acc", "acc_norm", "chat_acc", "chat_acc_norm"]);
    let chat = &recall.modes["chat_acc"];
    assert_eq!((chat.correct, chat.n), (4, 6));
    // Three clusters: a resample holds 0 to 3 known facts out of 3.
    assert!(chat.ci95.0 >= 0.0 && chat.ci95.1 <= 1.0 && chat.ci95.0 < chat.acc && chat.acc < chat.ci95.1);
    assert_eq!(recall.modes["acc"].acc, 0.0);
    assert_eq!((r.by_part["control"].n, r.by_part["control"].clusters), (2, 2));
    // The whole-benchmark breakdowns are there for the chat mode too.
    assert_eq!(r.chat.as_ref().map(|c| (c.acc.overall.correct, c.acc.overall.n)), Some((4, 8)));
    // And eval.json's summary round-trips.
    let back: mcq::McqReport = serde_json::from_str(&serde_json::to_string(&r).expect("json")).expect("read back");
    assert_eq!(back.by_part["recall"].clusters, 3);
}

#[test]
fn comparisons_are_made_per_part_with_cluster_intervals() {
    let base = variant(&[], false);
    let tuned = variant(&["f1", "f2", "f3"], false);
    let c = compare("baseline", &base, "lora", &tuned, 1000, 9).expect("compare");
    assert_eq!(c.schema_version, COMPARISON_SCHEMA_VERSION);
    assert_eq!(c.modes.iter().map(|m| m.mode.as_str()).collect::<Vec<_>>(), vec!["chat_acc", "chat_acc_norm", "acc", "acc_norm"]);
    let recall = &c.by_part["recall"];
    assert_eq!((recall.n, recall.clusters), (6, 3));
    let chat = recall.modes.iter().find(|m| m.mode == "chat_acc").expect("chat_acc");
    assert_eq!((chat.n, chat.acc_a, chat.acc_b), (6, 0.0, 1.0));
    assert_eq!((chat.mcnemar.only_b, chat.cluster_bootstrap.clusters), (6, 3));
    assert_eq!((chat.cluster_bootstrap.diff, chat.cluster_bootstrap.share_at_or_below_zero), (1.0, 0.0));
    // Control: nothing changed.
    let control = c.by_part["control"].modes.iter().find(|m| m.mode == "chat_acc").expect("control chat_acc");
    assert_eq!((control.acc_a, control.acc_b, control.cluster_bootstrap.diff, control.mcnemar.p_value), (0.0, 0.0, 0.0, 1.0));
    // Whole benchmark: 6 of 8 gained.
    let all = c.modes.iter().find(|m| m.mode == "chat_acc").expect("all chat_acc");
    assert_eq!((all.n, all.acc_b), (8, 0.75));
    // comparison.json round-trips, and a file from before parts reads as version 1.
    let back: Vec<Comparison> = serde_json::from_str(&serde_json::to_string(&vec![c.clone()]).expect("json")).expect("read back");
    assert_eq!(back[0].by_part.len(), 2);
    let old: Comparison = serde_json::from_str(r#"{"a": "baseline", "b": "lora", "modes": []}"#).expect("old comparison");
    assert_eq!((old.schema_version, old.by_part.len()), (1, 0));
}
