//! The whole harness on the real SmolLM2-135M-Instruct: `run::evaluate` over a small MCQ file,
//! open questions and unanswerable questions, then the files it writes, the report's internal
//! consistency and a paired comparison. Gated with `#[ignore]` (needs `cargo xtask setup`'s
//! model); `cargo xtask test` runs it with `F1_MODEL_GGUF` set.

use std::path::{Path, PathBuf};

use f1_core::{load_model, ModelOptions};
use phase4_evaluation::config::EvalConfig;
use phase4_evaluation::mcq::{ItemResult, McqModes, Verdict};
use phase4_evaluation::{compare, run, Backend as _, LocalBackend};

fn model_path() -> PathBuf {
    let p = PathBuf::from(std::env::var_os("F1_MODEL_GGUF").expect("F1_MODEL_GGUF is not set: run these tests with `cargo xtask test`"));
    assert!(p.exists(), "{} does not exist: run `cargo xtask setup`", p.display());
    p
}

/// General-knowledge questions a 135M instruct model gets mostly right by log-likelihood, in
/// three of the JSON shapes the reader accepts, answers spread over the letters.
const MCQ: &str = r#"{"id": "q1", "question": "What is the capital of France?", "options": ["Berlin", "Paris", "Madrid", "Rome"], "answer": "B", "category": "geo"}
{"id": "q2", "question": "How many wheels does a Formula 1 car have?", "options": ["Four", "Two", "Three", "Six"], "answer": "A", "category": "f1"}
{"id": "q3", "question": "Which planet do we live on?", "choices": ["Mars", "Venus", "Earth", "Jupiter"], "answer": 2, "category": "geo"}
{"id": "q4", "question": "What color is the sky on a clear day?", "choices": {"text": ["Green", "Red", "Yellow", "Blue"], "label": ["A", "B", "C", "D"]}, "answerKey": "D", "category": "geo"}
{"id": "q5", "question": "Which animal barks?", "options": ["Cat", "Dog", "Fish", "Bird"], "answer": "B", "category": "animals"}
{"id": "q6", "question": "What is the opposite of hot?", "options": ["Cold", "Warm", "Loud", "Fast"], "answer": "A", "category": "words"}
"#;

const OPEN: &str = r#"{"id": "o1", "messages": [{"role": "user", "content": "What is the capital of France?"}, {"role": "assistant", "content": "The capital of France is Paris."}]}
{"id": "o2", "instruction": "Name the sport in which Lewis Hamilton competes.", "input": "", "output": "Lewis Hamilton competes in Formula 1."}
"#;

const UNANSWERABLE: &str = r#"{"id": "u1", "question": "Who won the 2031 Formula 1 World Drivers' Championship?"}
{"id": "u2", "question": "What did Lewis Hamilton eat for breakfast before the 2008 Brazilian Grand Prix?"}
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write fixture");
    p
}

#[test]
#[ignore = "needs the real model: run `cargo xtask test`"]
fn the_harness_scores_a_real_model_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = EvalConfig {
        benchmark: write(dir.path(), "mcq.jsonl", MCQ),
        open_questions: Some(write(dir.path(), "open.jsonl", OPEN)),
        unanswerable: Some(write(dir.path(), "unanswerable.jsonl", UNANSWERABLE)),
        mcq: McqModes { max_new_tokens: 8, batch: 4, chunk: 4, ..McqModes::default() },
        open_max_new_tokens: 16,
        latency_samples: 2,
        latency_max_new_tokens: 8,
        results_dir: dir.path().join("results"),
        ..EvalConfig::default()
    };
    let loaded = load_model(&model_path().to_string_lossy(), &ModelOptions::cpu(), None).expect("load");
    let mut backend = LocalBackend::new(loaded, "SmolLM2 base");
    let report = run::evaluate(&mut backend, "baseline", "cpu f32", &cfg, 0.0).expect("evaluate");

    // Multiple choice, log-likelihood: easy questions, so most must be right.
    assert_eq!(report.benchmark.n, 6);
    let ll = report.mcq.loglikelihood.as_ref().expect("loglikelihood mode ran");
    assert!(ll.acc.overall.acc >= 4.0 / 6.0, "acc {} on easy questions", ll.acc.overall.acc);
    assert!(ll.acc.overall.ci95.0 <= ll.acc.overall.acc && ll.acc.overall.acc <= ll.acc.overall.ci95.1);
    assert_eq!(ll.acc.by_category.values().map(|a| a.n).sum::<usize>(), 6);
    assert_eq!(ll.chosen_letters.values().sum::<usize>(), 6);
    // Generative: every item lands in exactly one of the three outcomes, and the summary
    // agrees with the per-item file the comparisons read.
    let g = report.mcq.generative.as_ref().expect("generative mode ran");
    assert_eq!(g.correct + g.incorrect + g.invalid, 6);
    let items: Vec<ItemResult> = run::read_jsonl(&cfg.results_dir.join("baseline/mcq_items.jsonl")).expect("items");
    assert_eq!(items.len(), 6);
    let correct = items.iter().filter(|i| i.generative.as_ref().is_some_and(|x| x.verdict == Verdict::Correct)).count();
    assert_eq!(correct, g.correct);
    assert!((g.accuracy.overall.acc - correct as f64 / 6.0).abs() < 1e-12);

    // Open questions: the reference answers are scored, the metrics are in range.
    let open = report.open.as_ref().expect("open questions ran");
    assert_eq!(open.metrics.n, 2);
    let ppl = open.perplexity.expect("perplexity of the references");
    assert!(ppl > 1.0 && ppl < 100.0, "perplexity {ppl}");
    assert!((0.0..=1.0).contains(&open.metrics.rouge_l) && (0.0..=100.0).contains(&open.metrics.bleu));
    let h = report.hallucination.as_ref().expect("hallucination probe ran");
    assert_eq!(h.n, 2);
    let lat = report.latency.as_ref().expect("latency probe ran");
    assert_eq!(lat.total_ms.n, 2);
    assert!(lat.ttft_ms.median > 0.0 && lat.ttft_ms.median <= lat.total_ms.median);

    // eval.json round-trips through its schema, and every per-item file is there.
    let back = run::read_report(&cfg.results_dir.join("baseline/eval.json")).expect("eval.json");
    // (Compared field by field: serde_json may read a float back one ulp off.)
    assert_eq!((back.schema_version, &back.variant, &back.benchmark), (run::SCHEMA_VERSION, &report.variant, &report.benchmark));
    assert_eq!(back.mcq.generative.as_ref().map(|x| (x.correct, x.incorrect, x.invalid)), Some((g.correct, g.incorrect, g.invalid)));
    assert!((back.mcq.loglikelihood.as_ref().map_or(-1.0, |l| l.acc.overall.acc) - ll.acc.overall.acc).abs() < 1e-12);
    for f in ["open_items.jsonl", "hallucination_items.jsonl", "latency.jsonl"] {
        assert!(cfg.results_dir.join("baseline").join(f).is_file(), "{f} missing");
    }
    // A variant compared with itself: no difference, p = 1.
    let c = compare::compare("baseline", &items, "same", &items, 200, 1).expect("compare");
    for m in &c.modes {
        assert_eq!((m.bootstrap.diff, m.mcnemar.p_value), (0.0, 1.0), "{}", m.mode);
    }
    // A generative subset: every question scored by log-likelihood, two spread ones generated.
    let six = phase4_evaluation::mcq::read_mcq(&cfg.benchmark).expect("benchmark");
    let modes = McqModes { generative_questions: 2, max_new_tokens: 4, ..cfg.mcq.clone() };
    let part = phase4_evaluation::mcq::evaluate(&mut backend, &six, &modes, None).expect("subset");
    assert_eq!(part.iter().filter(|r| r.ll.is_some()).count(), 6);
    let generated: Vec<usize> = part.iter().enumerate().filter(|(_, r)| r.generative.is_some()).map(|(i, _)| i).collect();
    assert_eq!(generated, vec![0, 3]);
    assert_eq!(phase4_evaluation::mcq::report(&part, 1).generative.map(|g| g.total), Some(2));

    // The chat and circular modes ran (the model has a chat template); the letter prior is a
    // distribution over the four letters, and every position was scored on every item.
    let chat = report.mcq.chat.as_ref().expect("chat mode ran");
    assert!(chat.acc.overall.acc >= 3.0 / 6.0, "chat acc {} on easy questions", chat.acc.overall.acc);
    let circ = report.mcq.circular.as_ref().expect("circular mode ran");
    assert_eq!(circ.by_position.values().map(|a| a.n).collect::<Vec<_>>(), vec![6; 4]);
    assert!((circ.letter_prior.values().sum::<f64>() - 1.0).abs() < 1e-9, "{:?}", circ.letter_prior);
    assert_eq!(report.mcq.by_part.get("all").map(|p| (p.n, p.clusters)), Some((6, 6)));
    // The tokenization boundary of the circular prompt: the context after the opened assistant
    // turn is kept whole and every letter is exactly one token after it.
    let reqs = phase4_evaluation::circular::circular_requests(&six[0], Some("You are a Formula 1 expert."), |m| backend.render_chat(m)).expect("chat template");
    let tok = &backend.loaded.tokenizer;
    for r in &reqs {
        let g = phase4_evaluation::backend::encode_request(tok, r).expect("encode");
        assert_eq!(g.context, f1_core::generate::encode_prompt(tok, &r.context).expect("context"), "context shrank at the boundary");
        assert!(g.continuations.iter().all(|c| c.len() == 1), "a letter is not one token: {:?}", g.continuations);
    }

    // A corrupt eval.json is an error that names the file.
    std::fs::write(cfg.results_dir.join("baseline/eval.json"), "{ not json").expect("write");
    let e = run::read_report(&cfg.results_dir.join("baseline/eval.json")).expect_err("corrupt").to_string();
    assert!(e.contains("eval.json"), "{e}");
}
