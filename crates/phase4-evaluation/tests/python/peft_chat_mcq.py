"""Independent check of the study's headline numbers (issue #13).

Hugging Face transformers + PEFT load the study's base GGUF, its LoRA adapter and its full
fine-tuned model directory, and score every recall and control question of the benchmark the
way phase 4's primary mode defines it: each option's text as the start of the assistant's reply
in the model's chat template, after the study's system prompt; the option with the highest
summed log-probability is the answer. Other code, same definition: the printed counts should
equal the `chat_acc` counts in `results/<variant>/eval.json`.

Usage (the venv `cargo xtask setup` creates has transformers, peft and gguf):
    $F1_VENV/bin/python crates/phase4-evaluation/tests/python/peft_chat_mcq.py [STUDY_ROOT]
"""

import json
import os
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = sys.argv[1] if len(sys.argv) > 1 else "."
GGUF_DIR, GGUF = os.path.join(ROOT, "models/base"), "SmolLM2-135M-Instruct.Q4_1.gguf"
SYSTEM = "You are a Formula 1 expert. Answer in one sentence."
PARTS = ("recall", "control")


def questions():
    with open(os.path.join(ROOT, "data/curated/benchmark.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [q for q in rows if q.get("part") in PARTS]


def option_logprob(model, tok, context, option):
    c_ids = tok(context, return_tensors="pt", add_special_tokens=False).input_ids
    ids = tok(context + option, return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        logp = model(ids).logits[0, :-1].log_softmax(-1)
    target = ids[0, 1:]
    return logp[torch.arange(len(target)), target][c_ids.shape[1] - 1 :].sum().item()


def score(model, tok, items):
    right = {p: 0 for p in PARTS}
    total = {p: 0 for p in PARTS}
    for q in items:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q["question"]}]
        context = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        lps = [option_logprob(model, tok, context, o) for o in q["options"]]
        best = max(range(len(lps)), key=lambda i: lps[i])
        right[q["part"]] += best == q["answer_index"]
        total[q["part"]] += 1
    return {p: f"{right[p]}/{total[p]}" for p in PARTS}


def main():
    items = questions()
    tok = AutoTokenizer.from_pretrained(GGUF_DIR, gguf_file=GGUF)
    base = AutoModelForCausalLM.from_pretrained(GGUF_DIR, gguf_file=GGUF, dtype=torch.float32)
    print("baseline", score(base, tok, items), flush=True)
    adapter = os.path.join(ROOT, "models/adapters/lora/adapter")
    if os.path.isdir(adapter):
        print("lora", score(PeftModel.from_pretrained(base, adapter), tok, items), flush=True)
    full = os.path.join(ROOT, "models/adapters/full/model")
    if os.path.isdir(full):
        print("full", score(AutoModelForCausalLM.from_pretrained(full, dtype=torch.float32), tok, items), flush=True)


if __name__ == "__main__":
    main()
