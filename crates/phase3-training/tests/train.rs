//! The training loop on a tiny random model and a tiny chat dataset written by the test:
//! a golden short loss curve, exact resume after an interruption, QLoRA and full fine-tuning
//! producing loadable artifacts, the preflight refusing broken examples, and config errors.

mod common;

use std::path::Path;

use common::{losses, serial, setup};
use phase3_training::config::expand;
use phase3_training::data::{preflight, Example};
use phase3_training::{train, train_until, train_with, Method, Resume, TrainConfig};

#[test]
fn lora_loss_curve_is_golden_and_the_adapter_loads() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = setup(dir.path(), Method::Lora, "lora");
    let s = train(&cfg, false).expect("train");
    // 24 examples / batch 4 = 6 micro-batches = 3 optimizer steps per epoch, 2 epochs.
    assert_eq!(s.steps, 6);
    let l = losses(&cfg.output_dir);
    assert_eq!(l.len(), 6);
    eprintln!("loss curve: {l:?}");
    assert!(l[5] < 0.9 * l[0], "the loss must fall: {l:?}");
    // Golden values (CPU, fp32, seed 42); a change to data, masking, loss or optimizer moves them.
    let golden = [6.9783, 6.9065, 6.8977, 6.4776, 6.2634, 6.2136];
    for (i, (a, b)) in l.iter().zip(golden).enumerate() {
        assert!((a - b).abs() < 2e-3, "step {}: loss {a:.4}, golden {b:.4}", i + 1);
    }
    assert!(s.trainable_params > 0 && s.trainable_share < 0.2);
    assert!(cfg.output_dir.join("adapter/adapter_model.safetensors").exists());
    assert!(cfg.output_dir.join("summary.json").exists() && cfg.output_dir.join("resolved_config.yaml").exists());
    let mut m = f1_core::load_model(&cfg.model, &f1_core::ModelOptions::cpu(), None).expect("base");
    f1_core::lora::load(&s.artifacts, &mut m.model).expect("the adapter loads");
    assert!(s.final_eval.as_ref().is_some_and(|e| e.loss.is_finite() && e.samples.len() == 2));
}

#[test]
fn resume_after_an_interruption_reproduces_the_uninterrupted_run() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let whole = setup(dir.path(), Method::Lora, "whole");
    train(&whole, false).expect("train");
    let mut cut = setup(dir.path(), Method::Lora, "cut");
    cut.output_dir = dir.path().join("cut");
    // Killed after step 5 (last checkpoint at step 4), then resumed.
    assert!(train_until(&cut, false, Some(5)).is_err());
    let s = train(&cut, true).expect("resume");
    assert!(s.resumed_from.as_ref().is_some_and(|p| p.ends_with("step-000004")), "{:?}", s.resumed_from);
    let (a, b) = (losses(&whole.output_dir), losses(&cut.output_dir));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
    }
    // A checkpoint of another config is refused.
    let mut other = cut.clone();
    other.train.lr = 1e-3;
    let err = train(&other, true).expect_err("different config").to_string();
    assert!(err.contains("different config"), "{err}");
}

#[test]
fn a_finished_run_is_reported_and_changed_data_starts_over() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = setup(dir.path(), Method::Lora, "run");
    let first = train(&cfg, false).expect("train");
    let summary = std::fs::read(cfg.output_dir.join("summary.json")).expect("summary");
    let metrics = std::fs::read(cfg.output_dir.join("metrics.jsonl")).expect("metrics");
    // Resuming a finished run reports it: nothing retrained, nothing blanked or rewritten.
    for resume in [Resume::Continue, Resume::ContinueOrRestart] {
        let again = train_with(&cfg, resume).expect("finished run");
        assert_eq!((again.steps, again.run_key.as_str()), (first.steps, first.run_key.as_str()));
        assert!(again.final_eval.is_some(), "the finished run's evaluation is kept");
        assert_eq!(std::fs::read(cfg.output_dir.join("summary.json")).expect("summary"), summary);
        assert_eq!(std::fs::read(cfg.output_dir.join("metrics.jsonl")).expect("metrics"), metrics);
    }
    // New training data under the same config: another run key. An interrupted run of the
    // old data is not continued: `train --resume` refuses it, naming both keys, and the
    // study's own resume sets its checkpoints aside and trains from step 0.
    let mut cut = cfg.clone();
    cut.output_dir = dir.path().join("cut");
    assert!(train_until(&cut, false, Some(5)).is_err());
    let text = std::fs::read_to_string(&cut.data.train).expect("train data");
    std::fs::write(&cut.data.train, text.replace("Who won race 3?", "Which driver won race 3?")).expect("edit");
    let err = train(&cut, true).expect_err("changed data").to_string();
    assert!(err.contains("different config, data or model") && err.contains("without --resume"), "{err}");
    let s = train_with(&cut, Resume::ContinueOrRestart).expect("restart");
    assert!(s.resumed_from.is_none(), "{:?}", s.resumed_from);
    assert_ne!(s.run_key, first.run_key);
    assert_eq!(s.steps, first.steps);
    assert!(cut.output_dir.join("checkpoints.stale/step-000004").is_dir(), "the old checkpoints are set aside, not deleted");
    assert_eq!(losses(&cut.output_dir).len(), first.steps, "metrics of the old run are not mixed in");
}

#[test]
fn qlora_and_full_fine_tuning_train_and_save_loadable_artifacts() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let q = setup(dir.path(), Method::Qlora, "qlora");
    let s = train(&q, false).expect("qlora");
    let l = losses(&q.output_dir);
    assert!(l[l.len() - 1] < l[0], "{l:?}");
    let (before, after) = (s.base_weight_bytes, s.base_weight_bytes_nf4.expect("nf4 bytes"));
    assert!((after as f64) < 0.15 * before as f64, "{before} -> {after}");
    let mut full = setup(dir.path(), Method::Full, "full");
    full.train.lr = 1e-3;
    let s = train(&full, false).expect("full");
    assert_eq!(s.trainable_params, s.total_params);
    let m = f1_core::load_model(s.artifacts.to_str().expect("utf8"), &f1_core::ModelOptions::cpu(), None).expect("the fine-tuned model loads");
    assert_eq!(m.model.config().num_hidden_layers, 2);
}

#[test]
fn packing_trains_with_fewer_rows() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = setup(dir.path(), Method::Lora, "packed");
    cfg.data.packing = true;
    cfg.data.max_seq_len = 512;
    cfg.train.epochs = 4;
    let s = train(&cfg, false).expect("packed run");
    // About 148 tokens per example (byte-level tokenizer), 512-token rows: 3 examples per row,
    // 8 rows, 2 micro-batches of 4 rows, 1 optimizer step per epoch (unpacked: 3).
    assert_eq!(s.steps, 4, "{s:?}");
    // Every epoch sees every example, and step 1 runs at warmup's lr 0: steps 1 and 2 score
    // the same weights on the same examples, then the loss falls.
    let l = losses(&cfg.output_dir);
    assert!((l[1] - l[0]).abs() < 1e-9 && l[3] < l[1], "{l:?}");
}

#[test]
fn preflight_refuses_empty_masks_double_bos_and_missing_eos() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = setup(dir.path(), Method::Lora, "pf");
    let m = f1_core::load_model(&cfg.model, &f1_core::ModelOptions::cpu(), None).expect("load");
    let ok = Example { input_ids: vec![256, 10, 11, 258], labels: vec![-100, -100, 11, 258], prompt: vec![], reply: String::new() };
    assert!(preflight(&m, std::slice::from_ref(&ok), 1).is_ok());
    let empty = Example { labels: vec![-100; 4], ..ok.clone() };
    assert!(preflight(&m, &[empty], 0).expect_err("empty").to_string().contains("no labelled token"));
    let double = Example { input_ids: vec![256, 256, 11, 258], ..ok.clone() };
    assert!(preflight(&m, &[double], 0).expect_err("bos").to_string().contains("two BOS"));
    let no_eos = Example { labels: vec![-100, -100, 11, 12], ..ok };
    assert!(preflight(&m, &[no_eos], 0).expect_err("eos").to_string().contains("EOS"));
}

#[test]
fn configs_report_typos_and_sweeps_expand() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "name: x\nmethod: lora\nmodel: m\noutput_dir: o\ntrain:\n  learning_rate: 0.1\n").expect("write");
    let err = TrainConfig::from_file(&path).expect_err("typo").to_string();
    assert!(err.contains("bad.yaml") && err.contains("learning_rate"), "{err}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for name in ["lora", "qlora", "full"] {
        let cfg = TrainConfig::from_file(&root.join(format!("config/{name}.yaml"))).expect("shipped config parses");
        assert_eq!(cfg.name, name);
    }
    let mut cfg = TrainConfig::from_file(&root.join("config/lora.yaml")).expect("lora");
    cfg.sweep.insert("lora.r".into(), [8, 16, 32, 64].iter().map(|&r| serde_yaml::Value::from(r)).collect());
    let runs = expand(&cfg).expect("expand");
    assert_eq!(runs.iter().map(|r| r.lora.r).collect::<Vec<_>>(), vec![8, 16, 32, 64]);
    assert_eq!(runs[2].name, "lora-r32");
    assert!(runs[2].output_dir.ends_with("lora-r32"));
    // An empty list (an index panic before) names its key.
    cfg.sweep.insert("train.lr".into(), vec![]);
    let err = expand(&cfg).expect_err("empty sweep").to_string();
    assert!(err.contains("`train.lr`") && err.contains("no values"), "{err}");
}

#[test]
fn a_run_killed_with_sigkill_resumes_from_its_last_checkpoint() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = setup(dir.path(), Method::Lora, "killed");
    cfg.train.epochs = 60; // 180 steps: long enough to be killed mid-run
    cfg.train.eval_every = 0;
    cfg.train.save_every = 2;
    cfg.train.sample_prompts = 0;
    let yaml = dir.path().join("killed.yaml");
    std::fs::write(&yaml, serde_yaml::to_string(&cfg).expect("yaml")).expect("write");
    let bin = env!("CARGO_BIN_EXE_phase3-training");
    let mut child = std::process::Command::new(bin).args(["train", "--config"]).arg(&yaml).stderr(std::process::Stdio::null()).spawn().expect("spawn");
    let first = cfg.output_dir.join("checkpoints/step-000004");
    let started = std::time::Instant::now();
    while !first.exists() {
        assert!(started.elapsed().as_secs() < 120, "no checkpoint appeared");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert!(!cfg.output_dir.join("summary.json").exists(), "the run finished before it could be killed");
    let status = std::process::Command::new(bin).args(["train", "--resume", "--config"]).arg(&yaml).stderr(std::process::Stdio::null()).status().expect("resume");
    assert!(status.success());
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(cfg.output_dir.join("summary.json")).expect("summary")).expect("json");
    assert_eq!(summary["steps"], 180);
    assert!(summary["resumed_from"].as_str().is_some_and(|p| p.contains("step-")));
    // The resumed run's losses equal an uninterrupted run's.
    let mut whole = cfg.clone();
    whole.output_dir = dir.path().join("whole");
    train(&whole, false).expect("whole run");
    let (a, b) = (losses(&whole.output_dir), losses(&cfg.output_dir));
    assert_eq!(a.len(), 180);
    assert_eq!(a.len(), b.len());
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6));
    // And so do its final weights and its summary (but for where it resumed and its times).
    let weights = |d: &Path| {
        let mut w = tch::Tensor::read_safetensors(d.join("adapter/adapter_model.safetensors")).expect("adapter");
        w.sort_by(|a, b| a.0.cmp(&b.0));
        w
    };
    let (wa, wb) = (weights(&whole.output_dir), weights(&cfg.output_dir));
    assert_eq!(wa.len(), wb.len());
    for ((na, ta), (nb, tb)) in wa.iter().zip(&wb) {
        assert_eq!(na, nb);
        let diff = (ta - tb).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "{na}: max |difference| {diff}");
    }
    let whole_summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(whole.output_dir.join("summary.json")).expect("summary")).expect("json");
    for key in ["steps", "tokens_seen", "trainable_params", "stopped_early", "collapse_flagged", "run_key"] {
        assert_eq!(summary[key], whole_summary[key], "{key}");
    }
    for key in ["/final_train_loss", "/final_eval/loss"] {
        let (x, y) = (summary.pointer(key).and_then(serde_json::Value::as_f64), whole_summary.pointer(key).and_then(serde_json::Value::as_f64));
        assert!(matches!((x, y), (Some(x), Some(y)) if (x - y).abs() < 1e-6), "{key}: {x:?} vs {y:?}");
    }
}
