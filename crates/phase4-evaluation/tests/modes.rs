//! The scoring modes against a scripted [`Backend`] whose preferences are known, so every number
//! the harness reports can be worked out by hand: the circular mode against a model that always
//! says `A` (circular accuracy 0, where one letter pass would give it the answers under `A`) and
//! one that knows every answer (100%, a flat letter prior); what the chat, plain and circular
//! modes send to the backend; the system prompt in every conversation built from a question;
//! `part`/`fact_keys` parsing; hallucination per kind; over-refusal on open questions.

use std::path::{Path, PathBuf};

use f1_core::{ChatMessage, LogLikelihood};
use phase4_evaluation::mcq::{self, ItemResult, McqItem, McqModes};
use phase4_evaluation::open;
use phase4_evaluation::{Backend, Generation, LlRequest, Result};

const SYSTEM: &str = "You are a Formula 1 expert. Answer in one sentence.";

/// A backend that renders conversations with a toy template, scores each continuation with
/// `score(context, continuation)`, replies with `reply(conversation)` and records every request.
struct Scripted {
    score: fn(&str, &str) -> f64,
    reply: fn(&[ChatMessage]) -> String,
    template: bool,
    requests: Vec<LlRequest>,
    chats: Vec<Vec<ChatMessage>>,
}

impl Scripted {
    fn new(score: fn(&str, &str) -> f64) -> Self {
        Scripted { score, reply: |_| "A".into(), template: true, requests: vec![], chats: vec![] }
    }
}

/// The toy chat template: every turn in tags, then the assistant's turn opened.
fn render(messages: &[ChatMessage]) -> String {
    messages.iter().map(|m| format!("<{0}>{1}</{0}>", m.role, m.content)).collect::<String>() + "<assistant>"
}

impl Backend for Scripted {
    fn describe(&self) -> String {
        "scripted".into()
    }

    fn loglikelihood(&mut self, requests: &[LlRequest]) -> Result<Vec<Vec<LogLikelihood>>> {
        self.requests.extend_from_slice(requests);
        Ok(requests
            .iter()
            .map(|r| r.continuations.iter().map(|c| LogLikelihood { logprob: (self.score)(&r.context, c), is_greedy: false, n_tokens: 1, greedy_tokens: 0 }).collect())
            .collect())
    }

    fn chat(&mut self, conversations: &[Vec<ChatMessage>], _max_new_tokens: usize, _batch: usize) -> Result<Vec<Generation>> {
        self.chats.extend_from_slice(conversations);
        Ok(conversations
            .iter()
            .map(|c| Generation { text: (self.reply)(c), prompt_tokens: 10, completion_tokens: 3, ttft_ms: 1.0, total_ms: 3.0, finish_reason: "stop".into() })
            .collect())
    }

    fn render_chat(&self, messages: &[ChatMessage]) -> Option<String> {
        self.template.then(|| render(messages))
    }
}

/// Questions and their right answers (what the knowing backend knows).
const FACTS: [(&str, &str); 4] = [
    ("Who won the 2005 Monaco Grand Prix?", "Kimi Raikkonen"),
    ("Where is the Belgian Grand Prix held?", "Spa"),
    ("Which team did Ayrton Senna drive for in 1988?", "McLaren"),
    ("How many titles did Michael Schumacher win?", "Seven"),
];

/// Four questions, the right answer under A, B, C and D in turn.
fn items() -> Vec<McqItem> {
    let options = [
        ["Kimi Raikkonen", "Fernando Alonso", "Jenson Button", "Mark Webber"],
        ["Monza", "Spa", "Suzuka", "Imola"],
        ["Ferrari", "Williams", "McLaren", "Lotus"],
        ["Five", "Six", "Four", "Seven"],
    ];
    FACTS
        .iter()
        .zip(options)
        .enumerate()
        .map(|(i, ((q, a), opts))| McqItem {
            id: format!("q{i}"),
            question: q.to_string(),
            answer_index: opts.iter().position(|o| o == a).expect("answer among options"),
            options: opts.iter().map(|o| o.to_string()).collect(),
            category: None,
            difficulty: None,
            control: None,
            part: "recall".into(),
            fact_keys: vec![format!("fact-{i}")],
        })
        .collect()
}

/// Prefers the letter `A` whatever the question.
fn always_a(_context: &str, continuation: &str) -> f64 {
    if continuation == "A" {
        -0.1
    } else {
        -3.0
    }
}

/// Knows every answer: high for the letter in front of the right option or for its text.
fn knows(context: &str, continuation: &str) -> f64 {
    let known = FACTS.iter().any(|(q, a)| context.contains(q) && (context.contains(&format!("\n{continuation}. {a}\n")) || continuation.trim() == *a));
    if known {
        0.0
    } else {
        -5.0
    }
}

fn circular_only() -> McqModes {
    McqModes { chat: false, loglikelihood: false, circular: true, generative: false, ..McqModes::default() }
}

#[test]
fn a_model_that_always_says_a_scores_zero_circularly_and_shows_its_prior() {
    let mut b = Scripted::new(always_a);
    let results = mcq::evaluate(&mut b, &items(), &circular_only(), Some(SYSTEM)).expect("evaluate");
    let r = mcq::report(&results, 1);
    let c = r.circular.as_ref().expect("circular report");
    assert_eq!((c.accuracy.overall.correct, c.accuracy.overall.n), (0, 4));
    // Right whenever the answer sits under A, never otherwise: 25% per prompt, the accuracy a
    // single letter pass over this balanced file would report.
    assert_eq!(c.by_position.iter().map(|(l, a)| (l.as_str(), a.acc)).collect::<Vec<_>>(), vec![("A", 1.0), ("B", 0.0), ("C", 0.0), ("D", 0.0)]);
    assert!((c.per_prompt_acc - 0.25).abs() < 1e-12);
    assert_eq!(c.chosen_letters.get("A"), Some(&16));
    // The prior is the softmax of the letter scores, the same in every prompt.
    let (hi, lo) = ((-0.1f64).exp(), (-3.0f64).exp());
    let want_a = hi / (hi + 3.0 * lo);
    assert!((c.letter_prior["A"] - want_a).abs() < 1e-12, "{:?}", c.letter_prior);
    assert!((c.letter_prior.values().sum::<f64>() - 1.0).abs() < 1e-12);
    // Per item: the chosen letter and the probabilities of every rotation.
    let o = results[2].circular.as_ref().expect("item outcome");
    assert_eq!(o.chosen, vec!["A"; 4]);
    assert_eq!(o.letter_probs.len(), 4);
    assert!((o.letter_probs[3][0] - want_a).abs() < 1e-12);
    assert_eq!(results[2].circular_correct(), Some(false));
    assert_eq!(r.by_part["recall"].modes["circular"].acc, 0.0);
}

#[test]
fn a_model_that_knows_the_answers_is_right_in_every_rotation_with_a_flat_prior() {
    let mut b = Scripted::new(knows);
    let results = mcq::evaluate(&mut b, &items(), &circular_only(), Some(SYSTEM)).expect("evaluate");
    let c = mcq::report(&results, 1).circular.expect("circular report");
    assert_eq!((c.accuracy.overall.correct, c.accuracy.overall.n), (4, 4));
    assert!(c.by_position.values().all(|a| a.acc == 1.0) && c.by_position.len() == 4);
    for (l, p) in &c.letter_prior {
        assert!((p - 0.25).abs() < 1e-12, "{l}: {p}");
    }
    // Each question is asked once per option, each time with the answer at that letter.
    assert_eq!(b.requests.len(), 16);
    for (k, r) in b.requests[..4].iter().enumerate() {
        let line = format!("\n{}. Kimi Raikkonen\n", ["A", "B", "C", "D"][k]);
        assert!(r.context.contains(&line), "rotation {k}: {}", r.context);
    }
}

#[test]
fn the_chat_mode_sends_the_rendered_turn_and_the_bare_option_texts() {
    let mut b = Scripted::new(knows);
    let items = items();
    let modes = McqModes { generative: false, ..McqModes::default() };
    let results = mcq::evaluate(&mut b, &items, &modes, Some(SYSTEM)).expect("evaluate");
    // Chat requests first: the system prompt and the question rendered by the template with the
    // assistant's turn opened, the options as they are written.
    let want = render(&[ChatMessage::system(SYSTEM), ChatMessage::user(items[1].question.clone())]);
    assert_eq!(b.requests[1].context, want);
    assert_eq!(b.requests[1].continuations, items[1].options);
    // Then the plain format, options after a space.
    assert_eq!(b.requests[5].context, format!("Question: {}\nAnswer:", items[1].question));
    assert_eq!(b.requests[5].continuations[0], " Monza");
    // Then the circular prompts: letter prompt in the chat format, bare letters.
    let circ = &b.requests[8];
    assert!(circ.context.starts_with(&format!("<system>{SYSTEM}</system><user>Answer the following multiple-choice question.")) && circ.context.ends_with("Answer:</user><assistant>"), "{}", circ.context);
    assert_eq!(circ.continuations, vec!["A", "B", "C", "D"]);
    assert_eq!(b.requests.len(), 4 + 4 + 16);
    assert!(results.iter().all(|r| r.chat_correct() == Some(true) && r.circular_correct() == Some(true)));
    let r = mcq::report(&results, 1);
    assert_eq!(r.chat.as_ref().map(|c| c.acc.overall.acc), Some(1.0));
    assert_eq!(r.by_part["recall"].modes.keys().map(String::as_str).collect::<Vec<_>>(), vec!["acc", "acc_norm", "chat_acc", "chat_acc_norm", "circular"]);
}

#[test]
fn without_a_chat_template_the_chat_and_circular_modes_are_skipped() {
    let mut b = Scripted::new(knows);
    b.template = false;
    let results = mcq::evaluate(&mut b, &items(), &McqModes::default(), None).expect("evaluate");
    assert!(results.iter().all(|r| r.chat.is_none() && r.circular.is_none() && r.ll.is_some() && r.generative.is_some()));
    let r = mcq::report(&results, 1);
    assert!(r.chat.is_none() && r.circular.is_none() && r.loglikelihood.is_some());
    // The generative prompt still carries no system turn when none is set.
    assert_eq!(b.chats[0].len(), 1);
}

#[test]
fn the_generative_prompt_starts_with_the_system_turn() {
    let mut b = Scripted::new(always_a);
    let modes = McqModes { chat: false, loglikelihood: false, circular: false, generative: true, ..McqModes::default() };
    let results = mcq::evaluate(&mut b, &items(), &modes, Some(SYSTEM)).expect("evaluate");
    assert_eq!(b.chats[0][0], ChatMessage::system(SYSTEM));
    assert!(b.chats[0][1].content.contains("A. Kimi Raikkonen\nB. Fernando Alonso"));
    // "A" is right for the first question only.
    assert_eq!(results.iter().map(|r| r.gen_correct()).collect::<Vec<_>>(), vec![Some(true), Some(false), Some(false), Some(false)]);
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write fixture");
    p
}

#[test]
fn parts_and_fact_keys_are_read_and_default_to_all() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(
        dir.path(),
        "b.jsonl",
        r#"{"id": "a", "question": "Q?", "options": ["x", "y"], "answer": "A", "part": "recall", "fact_keys": ["race:2005:monaco:winner"]}
{"id": "b", "question": "Q?", "options": ["x", "y"], "answer": "B"}
"#,
    );
    let items = mcq::read_mcq(&p).expect("read");
    assert_eq!((items[0].part.as_str(), items[0].fact_keys.as_slice()), ("recall", &["race:2005:monaco:winner".to_string()][..]));
    assert_eq!((items[1].part.as_str(), items[1].fact_keys.len()), (mcq::DEFAULT_PART, 0));
    let bad = write(dir.path(), "bad.jsonl", "{\"question\": \"Q?\", \"options\": [\"x\", \"y\"], \"answer\": \"A\", \"fact_keys\": \"k\"}\n");
    let e = mcq::read_mcq(&bad).expect_err("fact_keys not a list").to_string();
    assert!(e.contains("bad.jsonl line 1") && e.contains("fact_keys"), "{e}");
    // A per-item line written before parts and the chat and circular modes still reads.
    let old = r#"{"id":"q1","answer_index":2,"category":null,"difficulty":null,"control":true,"ll":{"logprobs":[-1.0,-2.0,-0.5],"pred":2,"pred_norm":2},"generative":null}"#;
    let r: ItemResult = serde_json::from_str(old).expect("old item line");
    assert_eq!((r.part.as_str(), r.chat.is_none(), r.circular.is_none(), r.ll_correct()), ("all", true, true, Some(true)));
}

#[test]
fn hallucination_is_reported_per_kind_after_the_system_prompt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(
        dir.path(),
        "u.jsonl",
        r#"{"id": "u1", "question": "Who won the 2031 title?", "kind": "future_season", "why": "not yet raced"}
{"id": "u2", "question": "Who won the 2032 title?", "kind": "future_season", "why": "not yet raced"}
{"id": "u3", "question": "How many wins does Jaxon Velloria have?", "kind": "invented_driver", "why": "no such driver"}
{"id": "u4", "question": "What is the best pizza?"}
"#,
    );
    let mut b = Scripted::new(always_a);
    b.reply = |c| if c.iter().any(|m| m.content.contains("2031") || m.content.contains("pizza")) { "I don't know; that has not happened yet.".into() } else { "Max Verstappen.".into() };
    let (report, rows) = open::evaluate_unanswerable(&mut b, &p, 0, Some(SYSTEM), 16, 2).expect("probe");
    assert_eq!((report.n, report.declined), (4, 2));
    assert!((report.hallucination_rate - 0.5).abs() < 1e-12);
    let kinds: Vec<(&str, usize, usize, f64)> = report.by_kind.iter().map(|(k, v)| (k.as_str(), v.n, v.declined, v.hallucination_rate)).collect();
    assert_eq!(kinds, vec![("future_season", 2, 1, 0.5), ("invented_driver", 1, 0, 1.0), ("unknown", 1, 1, 0.0)]);
    assert_eq!(rows[2].kind, "invented_driver");
    assert_eq!(b.chats[0][0], ChatMessage::system(SYSTEM));
}

#[test]
fn declining_answerable_questions_shows_as_over_refusal_per_part() {
    let dir = tempfile::tempdir().expect("tempdir");
    let line = |id: &str, q: &str, a: &str, part: Option<&str>| {
        let mut v = serde_json::json!({"id": id, "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}, {"role": "assistant", "content": a}]});
        if let Some(p) = part {
            v["part"] = p.into();
        }
        v.to_string() + "\n"
    };
    let text = [
        line("o1", "Who won the 2005 Monaco Grand Prix?", "Kimi Raikkonen", Some("recall")),
        line("o2", "Where is the Belgian Grand Prix held?", "Spa", Some("recall")),
        line("o3", "Who won the 1998 Monaco Grand Prix?", "Mika Hakkinen", Some("unseen")),
        line("o4", "Who won the 1999 Monaco Grand Prix?", "Michael Schumacher", None),
    ]
    .concat();
    let p = write(dir.path(), "test.jsonl", &text);
    let items = open::read_open(&p).expect("read");
    assert_eq!(items.iter().map(|i| i.part.as_str()).collect::<Vec<_>>(), vec!["recall", "recall", "unseen", "all"]);
    let mut b = Scripted::new(always_a);
    // Knows the taught answers, declines the rest.
    b.reply = |c| match c.last().map(|m| m.content.as_str()) {
        Some(q) if q.contains("2005") => "Kimi Raikkonen".into(),
        Some(q) if q.contains("Belgian") => "Spa".into(),
        _ => "I'm not sure.".into(),
    };
    let results = open::evaluate_open(&mut b, &items, 16, 2).expect("open");
    assert_eq!(b.chats[0][0], ChatMessage::system(SYSTEM), "open questions keep the file's system turn");
    let r = open::open_report(&results).expect("report");
    assert_eq!(r.declined, 2);
    assert!((r.declined_rate - 0.5).abs() < 1e-12);
    let recall = &r.by_part["recall"];
    assert_eq!((recall.n, recall.declined, recall.token_f1, recall.exact_match), (2, 0, 1.0, 1.0));
    let unseen = &r.by_part["unseen"];
    assert_eq!((unseen.n, unseen.declined, unseen.declined_rate, unseen.token_f1), (1, 1, 1.0, 0.0));
    assert_eq!(r.by_part["all"].declined, 1);
    assert!(results[2].declined && !results[0].declined);
}
