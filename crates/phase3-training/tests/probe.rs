//! The probe during training on the tiny model: scored at step 0 and at every evaluation into
//! `metrics.jsonl`, early stopping on it, `load_best_at_end` writing the best evaluation's
//! weights (also across a resume, and the whole model for full fine-tuning), the config keys'
//! validation, the study's system prompt reaching every run, and the config hash of runs
//! configured before these keys existed.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{metric_lines, serial, setup};
use phase3_training::{train, train_until, Method, TrainConfig};

use tch::Tensor;

fn write_probe(path: &Path, items: &[(String, Vec<String>, usize)]) -> PathBuf {
    let lines: Vec<String> = items
        .iter()
        .enumerate()
        .map(|(i, (q, options, answer))| {
            let letter = ["A", "B", "C", "D"][*answer];
            serde_json::json!({"id": format!("p{i}"), "question": q, "options": options, "answer": letter, "answer_index": answer, "part": "probe", "fact_keys": [format!("race{i}")]}).to_string()
        })
        .collect();
    std::fs::write(path, lines.join("\n")).expect("write probe");
    path.to_path_buf()
}

/// Paraphrases of six taught facts ("Who won race i?" -> "Which driver took race i?").
fn taught_probe(dir: &Path) -> PathBuf {
    let items: Vec<_> = (0..6)
        .map(|i| {
            let options: Vec<String> = (0..4).map(|k| common::DRIVERS[(i + k) % 6].to_string()).collect();
            (format!("Which driver took the victory in race {i}?"), options, 0)
        })
        .collect();
    write_probe(&dir.join("probe.jsonl"), &items)
}

/// Questions the tiny model can never answer under `acc`: the right option is 300 characters
/// long, the others one character, and a summed log-probability falls with every token.
fn unanswerable_probe(dir: &Path) -> PathBuf {
    let long = "Hamilton ".repeat(33) + "won";
    let items: Vec<_> = (0..4).map(|i| (format!("Who won race {i}?"), vec!["x".into(), "y".into(), long.clone(), "z".into()], 2)).collect();
    write_probe(&dir.join("unanswerable.jsonl"), &items)
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).expect("summary")).expect("json")
}

/// Tensors of a safetensors file by name, PEFT's prefix stripped.
fn tensors(path: &Path) -> HashMap<String, Tensor> {
    let t = Tensor::read_safetensors(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    t.into_iter().map(|(n, t)| (n.strip_prefix(f1_core::lora::PEFT_PREFIX).unwrap_or(&n).to_string(), t)).collect()
}

fn same(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>) -> bool {
    assert_eq!(a.len(), b.len(), "different tensor sets");
    a.iter().all(|(n, t)| b.get(n).unwrap_or_else(|| panic!("no `{n}`")).allclose(t, 0.0, 1e-7, false))
}

#[test]
fn the_probe_is_scored_before_training_and_at_every_evaluation() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = setup(dir.path(), Method::Lora, "probed");
    cfg.data.probe = Some(taught_probe(dir.path()));
    cfg.data.system_prompt = Some("You are a Formula 1 expert.".into());
    cfg.train.sample_prompts = 0;
    let s = train(&cfg, false).expect("train");
    assert_eq!(s.steps, 6);
    let lines = metric_lines(&cfg.output_dir);
    let probes: Vec<&serde_json::Value> = lines.iter().filter(|v| v.get("probe_acc").is_some()).collect();
    assert_eq!(probes.iter().map(|v| v["step"].as_u64().expect("step")).collect::<Vec<_>>(), vec![0, 3, 6], "{probes:?}");
    for v in &probes {
        assert_eq!(v["probe_n"], 6, "{v}");
        let (acc, norm) = (v["probe_acc"].as_f64().expect("acc"), v["probe_acc_norm"].as_f64().expect("acc_norm"));
        assert!((0.0..=1.0).contains(&acc) && (0.0..=1.0).contains(&norm), "{v}");
        // Six questions: every accuracy is a whole number of sixths.
        assert!((acc * 6.0 - (acc * 6.0).round()).abs() < 1e-9, "{v}");
    }
    // The validation lines keep their keys.
    let evals: Vec<u64> = lines.iter().filter(|v| v.get("eval_loss").is_some()).map(|v| v["step"].as_u64().expect("step")).collect();
    assert_eq!(evals, vec![3, 6]);
    let sum = summary(&cfg.output_dir);
    assert_eq!(sum["early_stopping_metric"], "probe");
    let p = &sum["probe"];
    assert_eq!(p["n"], 6);
    assert_eq!(p["initial_acc"], probes[0]["probe_acc"]);
    assert_eq!(p["final_acc"], probes[2]["probe_acc"]);
    // The best of the evaluations after training started, the earlier among equals.
    let (a3, a6) = (probes[1]["probe_acc"].as_f64().expect("3"), probes[2]["probe_acc"].as_f64().expect("6"));
    let (best, step) = if a6 > a3 { (a6, 6) } else { (a3, 3) };
    assert_eq!(p["best_acc"].as_f64(), Some(best), "{p}");
    assert_eq!(p["best_step"], step);
    assert_eq!(p["restored_step"], step);
    assert!(s.probe.is_some_and(|p| p.n == 6));
}

#[test]
fn early_stopping_on_the_probe_stops_a_run_that_no_longer_improves() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = setup(dir.path(), Method::Lora, "stalled");
    cfg.data.probe = Some(unanswerable_probe(dir.path()));
    cfg.train.eval_every = 1;
    cfg.train.sample_prompts = 0;
    cfg.train.early_stopping_patience = 2;
    let s = train(&cfg, false).expect("train");
    // Accuracy 0 at step 1 is the best; steps 2 and 3 do not beat it: patience 2 runs out.
    assert!(s.stopped_early, "{s:?}");
    assert_eq!(s.steps, 3);
    let p = s.probe.as_ref().expect("probe summary");
    assert_eq!((p.best_acc, p.best_step, p.initial_acc, p.final_acc, p.n), (Some(0.0), Some(1), Some(0.0), Some(0.0), 4));
    let last = metric_lines(&cfg.output_dir).last().cloned().expect("a line");
    assert_eq!(last["step"], 3);
    // With no probe, "probe" falls back to the validation loss.
    let mut plain = setup(dir.path(), Method::Lora, "plain");
    plain.train.max_steps = Some(2);
    plain.train.sample_prompts = 0;
    let s = train(&plain, false).expect("train");
    assert_eq!(s.early_stopping_metric.name(), "val_loss");
    assert!(s.probe.is_none());
}

#[test]
fn load_best_at_end_writes_the_best_evaluation_also_after_a_resume() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |name: &str| {
        let mut cfg = setup(dir.path(), Method::Lora, name);
        cfg.data.probe = Some(unanswerable_probe(dir.path()));
        cfg.train.eval_every = 1;
        cfg.train.save_every = 1;
        cfg.train.sample_prompts = 0;
        // No warmup: step 1 moves the weights, so its copy differs from the initial adapter.
        cfg.train.warmup_ratio = 0.0;
        cfg
    };
    // The probe stays at 0 from step 1 on: step 1 is the best (the earliest among equals).
    let whole = run("whole");
    let s = train(&whole, false).expect("train");
    assert_eq!(s.steps, 6);
    let p = s.probe.as_ref().expect("probe summary");
    assert_eq!((p.best_step, p.restored_step), (Some(1), Some(1)));
    let adapter = tensors(&whole.output_dir.join("adapter/adapter_model.safetensors"));
    let last_ck = whole.output_dir.join("checkpoints/step-000006");
    assert!(!same(&adapter, &tensors(&last_ck.join("trainable.safetensors"))), "the adapter holds the last weights, not step 1's");
    assert!(same(&adapter, &tensors(&last_ck.join("best.safetensors"))));
    // The same run interrupted right after step 1 checkpoints exactly the restored weights.
    let at1 = run("at1");
    assert!(train_until(&at1, false, Some(1)).is_err());
    assert!(same(&adapter, &tensors(&at1.output_dir.join("checkpoints/step-000001/trainable.safetensors"))));
    // Killed after step 4 and resumed: the best copy comes back from the checkpoint.
    let cut = run("cut");
    assert!(train_until(&cut, false, Some(4)).is_err());
    let s = train(&cut, true).expect("resume");
    assert!(s.resumed_from.as_ref().is_some_and(|p| p.ends_with("step-000004")), "{:?}", s.resumed_from);
    assert_eq!(s.probe.as_ref().and_then(|p| p.restored_step), Some(1));
    assert!(same(&adapter, &tensors(&cut.output_dir.join("adapter/adapter_model.safetensors"))));
    // Without load_best_at_end the last weights are written.
    let mut last = run("last");
    last.train.load_best_at_end = false;
    let s = train(&last, false).expect("train");
    assert_eq!(s.probe.as_ref().and_then(|p| p.restored_step), None);
    assert!(same(&tensors(&last.output_dir.join("adapter/adapter_model.safetensors")), &tensors(&last_ck.join("trainable.safetensors"))));
}

#[test]
fn early_stopping_keys_are_validated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "name: x\nmethod: lora\nmodel: m\noutput_dir: o\ntrain:\n  early_stopping_metric: accuracy\n").expect("write");
    let err = TrainConfig::from_file(&path).expect_err("unknown metric").to_string();
    assert!(err.contains("bad.yaml") && err.contains("`accuracy`") && err.contains("`probe`") && err.contains("`val_loss`"), "{err}");
    std::fs::write(&path, "name: x\nmethod: lora\nmodel: m\noutput_dir: o\ntrain:\n  early_stopping_min_delta: -0.1\n").expect("write");
    let err = TrainConfig::from_file(&path).expect_err("negative delta").to_string();
    assert!(err.contains("early_stopping_min_delta"), "{err}");
    std::fs::write(&path, "name: x\nmethod: lora\nmodel: m\noutput_dir: o\ndata:\n  probe: data/curated/probe.jsonl\ntrain:\n  early_stopping_metric: val_loss\n  load_best_at_end: false\n").expect("write");
    let cfg = TrainConfig::from_file(&path).expect("valid keys");
    assert_eq!(cfg.stop_metric().name(), "val_loss");
}

#[test]
fn the_study_system_prompt_and_probe_path_reach_every_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("config")).expect("mkdir");
    std::fs::write(root.join("config/run.yaml"), "name: run\nmethod: lora\nmodel: m\noutput_dir: models/run\ndata:\n  probe: data/curated/probe.jsonl\n").expect("write");
    let study = root.join("config/study.yaml");
    std::fs::write(&study, "system_prompt: You are a Formula 1 expert.\nmodel:\n  base: m.gguf\ntraining:\n  runs: [config/run.yaml]\n").expect("write");
    let runs = phase3_training::study::study_runs(&study, "default", root).expect("study");
    assert_eq!(runs[0].data.system_prompt.as_deref(), Some("You are a Formula 1 expert."));
    assert_eq!(runs[0].data.probe.as_deref(), Some(root.join("data/curated/probe.jsonl").as_path()));
    std::fs::write(&study, "system_prompt: [1, 2]\ntraining:\n  runs: [config/run.yaml]\n").expect("write");
    let err = phase3_training::study::study_runs(&study, "default", root).expect_err("not a string").to_string();
    assert!(err.contains("study.yaml") && err.contains("system_prompt"), "{err}");
}

#[test]
fn run_overrides_reach_only_the_run_they_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("config")).expect("mkdir");
    for (name, method) in [("lora", "lora"), ("full", "full")] {
        std::fs::write(root.join(format!("config/{name}.yaml")), format!("name: {name}\nmethod: {method}\nmodel: m\noutput_dir: models/{name}\ntrain:\n  grad_accum: 4\n")).expect("write");
    }
    let study = root.join("config/study.yaml");
    let section = "training:\n  runs: [config/lora.yaml, config/full.yaml]\n  overrides: { train: { epochs: 3, grad_accum: 1 } }\n";
    std::fs::write(&study, format!("{section}  run_overrides: {{ full: {{ train: {{ grad_accum: 2 }} }} }}\n")).expect("write");
    let runs = phase3_training::study::study_runs(&study, "default", root).expect("study");
    let by_name = |n: &str| runs.iter().find(|r| r.name == n).expect("run").train.clone();
    assert_eq!((by_name("lora").grad_accum, by_name("lora").epochs), (1, 3));
    assert_eq!((by_name("full").grad_accum, by_name("full").epochs), (2, 3));
    // A name no run has is a mistake the study would otherwise ignore.
    std::fs::write(&study, format!("{section}  run_overrides: {{ ful: {{ train: {{ grad_accum: 2 }} }} }}\n")).expect("write");
    let err = phase3_training::study::study_runs(&study, "default", root).expect_err("unknown run").to_string();
    assert!(err.contains("study.yaml") && err.contains("\"ful\"") && err.contains("lora, full"), "{err}");
}

#[test]
fn the_new_keys_at_their_defaults_leave_the_config_hash_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = setup(dir.path(), Method::Lora, "hash");
    // The hash as it was computed before the probe keys existed: the same YAML without them.
    let mut c = cfg.clone();
    c.output_dir = PathBuf::new();
    c.train.save_every = 0;
    c.train.max_steps = None;
    let new_keys = ["probe:", "system_prompt:", "early_stopping_metric:", "early_stopping_min_delta:", "load_best_at_end:"];
    let old: String = serde_yaml::to_string(&c).expect("yaml").lines().filter(|l| !new_keys.iter().any(|k| l.trim_start().starts_with(k))).map(|l| format!("{l}\n")).collect();
    assert_eq!(cfg.hash(), f1_study::hash::sha256_hex(old.as_bytes()));
    // Set, they change it like any other key.
    let mut other = cfg.clone();
    other.train.early_stopping_metric = "val_loss".into();
    assert_ne!(other.hash(), cfg.hash());
    let mut other = cfg.clone();
    other.data.probe = Some("probe.jsonl".into());
    assert_ne!(other.hash(), cfg.hash());
}

#[test]
fn full_fine_tuning_restores_the_whole_model_of_the_best_evaluation() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = setup(dir.path(), Method::Full, "full");
    cfg.data.probe = Some(unanswerable_probe(dir.path()));
    cfg.train.lr = 1e-3;
    cfg.train.warmup_ratio = 0.0;
    cfg.train.max_steps = Some(3);
    cfg.train.eval_every = 1;
    cfg.train.save_every = 1;
    cfg.train.sample_prompts = 0;
    let s = train(&cfg, false).expect("full");
    assert_eq!(s.probe.as_ref().and_then(|p| p.restored_step), Some(1));
    let written = tensors(&s.artifacts.join("model.safetensors"));
    let ck = cfg.output_dir.join("checkpoints/step-000003");
    let (best, last) = (tensors(&ck.join("best.safetensors")), tensors(&ck.join("trainable.safetensors")));
    let common: Vec<&String> = best.keys().filter(|n| written.contains_key(*n)).collect();
    assert!(common.len() > 10, "{:?}", written.keys().collect::<Vec<_>>());
    assert!(common.iter().all(|n| written[*n].allclose(&best[*n], 0.0, 1e-7, false)), "the model holds step 1's weights");
    assert!(common.iter().any(|n| !written[*n].allclose(&last[*n], 0.0, 1e-7, false)), "and not the last ones");
}
