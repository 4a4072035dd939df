"""Reference logits from Hugging Face transformers for the parity test in tests/real_model.rs.

Usage: hf_logits.py MODEL.gguf REQUEST.json OUT_PREFIX
REQUEST.json is {"prompts": [[token ids], ...]}. Writes OUT_PREFIX.json with the shapes and
OUT_PREFIX.f32 with the concatenated float32 logits (little-endian), one (T, vocab) block per
prompt, computed by transformers loading the same GGUF (dequantized to float32).
"""
import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM

gguf_path, request_path, out_prefix = sys.argv[1:4]
torch.set_num_threads(max(1, os.cpu_count() or 1))
model = AutoModelForCausalLM.from_pretrained(
    os.path.dirname(os.path.abspath(gguf_path)),
    gguf_file=os.path.basename(gguf_path),
    dtype=torch.float32,
)
model.eval()
prompts = json.load(open(request_path))["prompts"]
shapes = []
with open(out_prefix + ".f32", "wb") as out, torch.no_grad():
    for ids in prompts:
        logits = model(torch.tensor([ids])).logits[0].float().contiguous()
        shapes.append(list(logits.shape))
        out.write(logits.numpy().astype("<f4").tobytes())
json.dump({"shapes": shapes, "transformers": __import__("transformers").__version__}, open(out_prefix + ".json", "w"))
