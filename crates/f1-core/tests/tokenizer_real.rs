//! The tokenizer and chat template of the real SmolLM2-135M-Instruct GGUF, checked against
//! Hugging Face transformers and tokenizers run from the project's Python venv.
//!
//! Needs `F1_MODEL_GGUF` (path to `SmolLM2-135M-Instruct.Q4_1.gguf`) and `F1_PYTHON` (a Python
//! with `transformers` and `gguf`); `cargo xtask test` sets both.
//!
//! One Python call reads the GGUF's `tokenizer.*` metadata with `gguf.GGUFReader` and computes
//! the reference ids. The reference is SmolLM2's ORIGINAL tokenizer (its `tokenizer.json`:
//! pre-tokenizer `Sequence[Digits(individual_digits), ByteLevel(add_prefix_space=false)]`), which
//! llama.cpp's `smollm` pre-tokenizer also reproduces. transformers' GGUF loader rebuilds it
//! without the `Digits` step, so it is not the reference by itself: on ASCII digits the two agree
//! (the vocabulary has no merge joining a digit to anything, so digits come out one per token
//! either way), but where a space precedes a non-ASCII digit (`" ١٢"`) transformers merges the
//! space into the digit's first byte while the original keeps it apart. The Python side therefore
//! also builds the original pipeline (transformers' vocabulary and merges with the original
//! pre-tokenizer put back); we must equal that on every string, and equal transformers' GGUF
//! tokenizer wherever it agrees with the original.

use std::path::{Path, PathBuf};
use std::process::Command;

use f1_core::chat::{ChatMessage, ChatTemplate};
use f1_core::tokenizer::{DecodeStream, GgufTokenizerSpec, Tokenizer};
use serde_json::{json, Value};

/// Dumps the GGUF's tokenizer metadata and the reference tokenizations as JSON.
/// argv: gguf path, input JSON ({"strings": [...], "conversations": [[{role, content}]]}), output.
const REFERENCE_PY: &str = r#"
import json, os, sys
from gguf import GGUFReader, GGUFValueType

gguf_path, in_path, out_path = sys.argv[1:4]
reader = GGUFReader(gguf_path)

def field(name):
    f = reader.fields.get(name)
    if f is None:
        return None
    if f.types[-1] == GGUFValueType.STRING:
        values = [bytes(f.parts[i]).decode("utf-8") for i in f.data]
    else:
        values = [f.parts[i].tolist()[0] for i in f.data]
    return values if f.types[0] == GGUFValueType.ARRAY else values[0]

meta = {k: field("tokenizer." + k) for k in [
    "ggml.model", "ggml.pre", "ggml.tokens", "ggml.scores", "ggml.token_type", "ggml.merges",
    "ggml.bos_token_id", "ggml.eos_token_id", "ggml.unknown_token_id", "ggml.padding_token_id",
    "ggml.add_bos_token", "ggml.add_eos_token", "chat_template"]}

from transformers import AutoTokenizer
from tokenizers import Tokenizer, pre_tokenizers

with open(in_path, encoding="utf-8") as f:
    inp = json.load(f)
tok = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(gguf_path)), gguf_file=os.path.basename(gguf_path))
gguf_backend = tok.backend_tokenizer
original = Tokenizer.from_str(gguf_backend.to_str())
original.pre_tokenizer = pre_tokenizers.Sequence([
    pre_tokenizers.Digits(individual_digits=True),
    pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
])
strings = inp["strings"]
hf_original = [original.encode(s, add_special_tokens=False).ids for s in strings]
out = {
    "meta": meta,
    "hf_gguf": [gguf_backend.encode(s, add_special_tokens=False).ids for s in strings],
    "hf_original": hf_original,
    "hf_decoded": [original.decode(ids, skip_special_tokens=False) for ids in hf_original],
    "hf_decoded_skip": [original.decode(ids, skip_special_tokens=True) for ids in hf_original],
    "hf_chat": [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in inp["conversations"]],
    "hf_bos": tok.bos_token, "hf_eos": tok.eos_token, "hf_len": len(tok),
}
with open(out_path, "w", encoding="utf-8") as f:
    json.dump(out, f, ensure_ascii=False)
"#;

/// Strings to tokenize: F1 questions, numbers and lap times, ChatML, Unicode, odd whitespace.
const STRINGS: &[&str] = &[
    "Who won the 2021 Formula 1 World Championship?",
    "Lewis Hamilton has 7 world titles and 103 race wins.",
    "2021",
    "1:23.456",
    "Fastest lap: 1:18.750 (Max Verstappen, lap 53) at 230.214 km/h",
    "Lap 44/58: gap +0.347s, DRS enabled.",
    "<|im_start|>system\nYou are an F1 expert.<|im_end|>\n<|im_start|>user\nWhat is DRS?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\n¿Quién ganó en Mónaco?<|im_end|><|endoftext|>",
    "  leading spaces",
    "trailing spaces   ",
    "    ",
    "line one\nline two\r\n\n\ttabbed\n",
    "Kimi Räikkönen, Sergio Pérez, Nico Hülkenberg",
    "São Paulo — Interlagos (Autódromo José Carlos Pace)",
    "モナコグランプリ 2024 🏎️💨 上海",
    "It's the team's car; they'll win, won't they? I'M SURE'D",
    "£1,000,000 prize; 3.5% faster; 1e-3 tolerance",
    "x²³ and ½ of ①",
    "٣٤٥ ١٢",
    "def pit_stop(t):\n    return t * 2.5\n",
    "Ferrari's P1-P2 in Bahrain 2022",
    "",
];

/// The GGUF path and the venv Python, from the environment.
fn environment() -> (PathBuf, PathBuf) {
    let get = |name: &str, what: &str| -> PathBuf {
        match std::env::var_os(name) {
            Some(v) if !v.is_empty() => PathBuf::from(v),
            _ => panic!("{name} is not set: it must name {what} (run `cargo xtask test`, which sets it)"),
        }
    };
    let gguf = get("F1_MODEL_GGUF", "the SmolLM2-135M-Instruct GGUF file");
    let python = get("F1_PYTHON", "a Python with transformers and gguf installed (the project's .venv/bin/python)");
    assert!(gguf.is_file(), "F1_MODEL_GGUF={} is not a file", gguf.display());
    (gguf, python)
}

fn conversations() -> Vec<Vec<ChatMessage>> {
    vec![
        vec![ChatMessage::user("Who won the 2021 Abu Dhabi Grand Prix?")],
        vec![
            ChatMessage::system("You are a concise Formula 1 expert."),
            ChatMessage::user("What does DRS stand for?"),
            ChatMessage::assistant("Drag Reduction System."),
            ChatMessage::user("When was it introduced?"),
        ],
    ]
}

/// Run the Python side once: metadata and reference tokenizations.
fn reference(python: &Path, gguf: &Path, dir: &Path) -> Value {
    let input = dir.join("input.json");
    let output = dir.join("reference.json");
    let body = json!({ "strings": STRINGS, "conversations": conversations() });
    std::fs::write(&input, body.to_string()).expect("write the Python input");
    let run = Command::new(python)
        .arg("-c")
        .arg(REFERENCE_PY)
        .arg(gguf)
        .arg(&input)
        .arg(&output)
        .env("HF_HUB_OFFLINE", "1")
        .env("TRANSFORMERS_VERBOSITY", "error")
        .output()
        .unwrap_or_else(|e| panic!("cannot run F1_PYTHON={}: {e}", python.display()));
    assert!(
        run.status.success(),
        "the reference script failed ({}):\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(&output).expect("read the reference JSON");
    serde_json::from_str(&text).expect("parse the reference JSON")
}

/// The tokenizer spec in the GGUF's `tokenizer.ggml.*` metadata, read by f1-core's own GGUF
/// reader (the loader's path) and cross-checked against what `gguf.GGUFReader` read.
fn tokenizer_spec(gguf_path: &Path, reference: &Value) -> GgufTokenizerSpec {
    let file = f1_core::gguf::GgufFile::open(gguf_path).expect("open the GGUF");
    let spec = f1_core::load::gguf_tokenizer_spec(&file).expect("tokenizer metadata");
    let meta = &reference["meta"];
    let strings = |k: &str| -> Vec<String> { meta[k].as_array().map(|a| a.iter().map(|v| v.as_str().expect("a string").to_string()).collect()).unwrap_or_default() };
    assert_eq!(spec.tokens, strings("ggml.tokens"), "tokens read by f1-core and by gguf-py differ");
    assert_eq!(spec.merges.clone().unwrap_or_default(), strings("ggml.merges"), "merges differ");
    assert_eq!(spec.model, meta["ggml.model"].as_str().expect("model"));
    assert_eq!(spec.eos_id.map(u64::from), meta["ggml.eos_token_id"].as_u64());
    spec
}

fn id_lists(v: &Value) -> Vec<Vec<u32>> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|ids| ids.as_array().expect("ids").iter().map(|i| i.as_u64().expect("an id") as u32).collect())
        .collect()
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array().expect("a list").iter().map(|s| s.as_str().expect("a string").to_string()).collect()
}

#[test]
#[ignore = "needs the real model and the venv: run `cargo xtask test`"]
fn smollm2_gguf_tokenizer_matches_the_reference() {
    let (gguf, python) = environment();
    let dir = tempfile::tempdir().expect("temp dir");
    let reference = reference(&python, &gguf, dir.path());
    let spec = tokenizer_spec(&gguf, &reference);
    assert_eq!((spec.model.as_str(), spec.pre.as_deref()), ("gpt2", Some("smollm")));
    let tok = Tokenizer::from_gguf_spec(spec, &format!("GGUF metadata of {}", gguf.display())).expect("build the tokenizer");

    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!(reference["hf_len"].as_u64(), Some(49152));
    assert_eq!((tok.bos_id(), tok.eos_id(), tok.pad_id()), (Some(1), Some(2), Some(2)));
    assert_eq!(tok.bos_token(), reference["hf_bos"].as_str());
    assert_eq!(tok.eos_token(), reference["hf_eos"].as_str());
    assert!(!tok.add_bos(), "SmolLM2 adds no BOS");
    for (token, id) in [("<|endoftext|>", 0), ("<|im_start|>", 1), ("<|im_end|>", 2), ("<empty_output>", 16)] {
        assert_eq!(tok.token_to_id(token), Some(id), "{token}");
        assert_eq!(tok.encode(token, true).expect("encode"), vec![id], "{token} is one special token");
    }

    let hf_gguf = id_lists(&reference["hf_gguf"]);
    let hf_original = id_lists(&reference["hf_original"]);
    let decoded = str_list(&reference["hf_decoded"]);
    let decoded_skip = str_list(&reference["hf_decoded_skip"]);
    let mut transformers_differs = Vec::new();
    for (i, s) in STRINGS.iter().enumerate() {
        let ours = tok.encode(s, false).expect("encode");
        assert_eq!(ours, hf_original[i], "ids of {s:?} differ from SmolLM2's own tokenizer");
        if hf_gguf[i] == hf_original[i] {
            assert_eq!(ours, hf_gguf[i], "ids of {s:?} differ from transformers");
        } else {
            transformers_differs.push(*s);
        }
        assert_eq!(tok.decode(&ours, false).expect("decode"), decoded[i], "decoding {s:?}");
        assert_eq!(tok.decode(&ours, false).expect("decode"), *s, "{s:?} does not round-trip");
        assert_eq!(tok.decode(&ours, true).expect("decode"), decoded_skip[i], "decoding {s:?} without specials");

        // Digits are always their own tokens.
        for &id in &ours {
            let piece = tok.id_to_token(id).expect("a token");
            if piece.chars().any(|c| c.is_ascii_digit()) {
                assert_eq!(piece.chars().count(), 1, "token {piece:?} of {s:?} holds a digit and more");
            }
        }

        let mut stream = DecodeStream::new(&tok, true);
        let mut streamed = String::new();
        for &id in &ours {
            streamed.push_str(&stream.step(id).expect("stream step").unwrap_or_default());
        }
        assert_eq!(streamed, decoded_skip[i], "streaming {s:?}");
    }
    // Every digit separate, and the space before a number a token of its own ('Ġ' = 216).
    assert_eq!(
        tok.encode("2021 and 1:23.456", false).expect("encode"),
        vec![34, 32, 34, 33, 284, 216, 33, 42, 34, 35, 30, 36, 37, 38]
    );
    // Expected: the Arabic-Indic digits after a space (see the module comment).
    eprintln!("transformers' GGUF tokenizer differs from SmolLM2's on: {transformers_differs:?}");

    // The GGUF's chat template renders as transformers renders it.
    let source = reference["meta"]["chat_template"].as_str().expect("tokenizer.chat_template");
    let template = ChatTemplate::new(source, "model", tok.bos_token(), tok.eos_token()).expect("compile the template");
    let hf_chat = str_list(&reference["hf_chat"]);
    for (conversation, expected) in conversations().iter().zip(&hf_chat) {
        let prompt = template.render(conversation, true).expect("render");
        assert_eq!(&prompt, expected);
        let ids = tok.encode(&prompt, false).expect("encode the prompt");
        assert_eq!(ids.first(), Some(&1), "the prompt opens with <|im_start|>");
        assert!(ids.ends_with(&[1, 520, 9531, 198]), "the prompt ends with <|im_start|>, 'ass', 'istant', '\\n'");
    }
}
