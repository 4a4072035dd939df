"""PEFT side of the adapter round trip in tests/lora_real.rs.

Usage: peft_roundtrip.py MODEL.gguf OUR_ADAPTER_DIR REQUEST.json OUT_PREFIX PEFT_ADAPTER_DIR
1. Loads the base from the GGUF with transformers (float32), applies the adapter we saved with
   `peft.PeftModel.from_pretrained`, and writes its logits for REQUEST's token ids to
   OUT_PREFIX.ours.f32.
2. Creates a PEFT LoRA adapter with non-zero B (init_lora_weights=False, seed 0) on the same
   base, saves it to PEFT_ADAPTER_DIR, and writes its logits to OUT_PREFIX.peft.f32.
Logits are little-endian float32 of shape (T, vocab).
"""
import json
import os
import sys

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

gguf_path, ours_dir, request_path, out_prefix, peft_dir = sys.argv[1:6]
ids = torch.tensor([json.load(open(request_path))["ids"]])


def base():
    return AutoModelForCausalLM.from_pretrained(
        os.path.dirname(os.path.abspath(gguf_path)), gguf_file=os.path.basename(gguf_path), dtype=torch.float32
    ).eval()


def dump(model, path):
    with torch.no_grad():
        logits = model(ids).logits[0].float().contiguous()
    open(path, "wb").write(logits.numpy().astype("<f4").tobytes())


dump(PeftModel.from_pretrained(base(), ours_dir).eval(), out_prefix + ".ours.f32")

torch.manual_seed(0)
config = LoraConfig(r=4, lora_alpha=16, target_modules=["k_proj", "down_proj"], init_lora_weights=False, task_type="CAUSAL_LM")
peft_model = get_peft_model(base(), config).eval()
peft_model.save_pretrained(peft_dir)
dump(peft_model, out_prefix + ".peft.f32")
