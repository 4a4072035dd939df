"""The Hugging Face peer of our benchmark (issue #8): the same work done the way people do it
in Python today, transformers + PEFT (+ bitsandbytes for NF4) on the same torch, in fp32, with
the same thread count, on the same weights and the same token ids.

The Rust driver (`crates/phase3-training/benches/peer/`) tokenizes everything itself and sends
ids, so tokenizers never differ. Cases:

- `train`   one optimizer step as a Trainer does it: forward with labels (mean loss over the
            labelled tokens), backward, clip_grad_norm_, AdamW step, zero_grad. `method`:
            `lora` (PEFT LoRA on the fp32 model, also the peer of our QLoRA on the dequantized
            weights), `full`, or `qlora_bnb` (bitsandbytes NF4 with double quantization, PEFT
            LoRA on top, fp32 compute).
- `mcq`     lm-evaluation-harness's `loglikelihood` with the HF backend: every (context, option)
            pair is its own row, rows sorted longest first and right-padded in batches, a
            log_softmax over the vocabulary, the option's token log-probs summed.
- `decode`  `model.generate` greedy, exactly `new_tokens` tokens per row; time to first token
            from a streamer (its second `put` is the first generated token).

Two ways to run it:

    python hf_bench.py --spec case.json [--reps 5]   # one case: warm-up, reps, one JSON object
    python hf_bench.py --serve                        # JSON lines on stdin/stdout (the driver)

Serve commands: {"cmd": "hello"}, {"cmd": "setup", "spec": {...}}, {"cmd": "run"},
{"cmd": "finish"}. Every reply is one JSON line; a failure is {"error": "..."} and the process
keeps serving. Peak RSS is VmHWM of this process, reset (Linux `clear_refs` 5) at each setup,
so it covers one case: model load included, like ours.
"""

import argparse
import datetime
import gc
import json
import os
import sys
import time
import traceback


def reset_peak_rss():
    """Make VmHWM start again from the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return None


def versions():
    import torch
    import transformers
    import peft

    try:
        import bitsandbytes

        bnb = bitsandbytes.__version__
    except Exception as e:  # not installed, or no usable backend
        bnb = None
        bnb_error = f"{type(e).__name__}: {e}"
    else:
        bnb_error = None
    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "bitsandbytes": bnb,
        "bitsandbytes_error": bnb_error,
        "python": sys.version.split()[0],
        "threads": torch.get_num_threads(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def load_model(spec, quantization=None):
    import torch
    from transformers import AutoModelForCausalLM

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    kwargs = {"dtype": torch.float32}
    if quantization is not None:
        kwargs.update(quantization_config=quantization, device_map="cpu")
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], **kwargs)
    return model


class Train:
    def __init__(self, spec):
        import torch

        t = spec["train"]
        method = t["method"]
        quant = None
        if method == "qlora_bnb":
            from transformers import BitsAndBytesConfig

            # The QLoRA paper's recipe: NF4, double-quantized scales; fp32 compute as ours.
            # No gradient checkpointing (prepare_model_for_kbit_training turns it on), since
            # ours recomputes nothing either.
            quant = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=torch.float32,
            )
        elif method not in ("lora", "full"):
            raise ValueError(f"unknown train method {method!r}: lora, full or qlora_bnb")
        model = load_model(spec, quant)
        if method in ("lora", "qlora_bnb"):
            from peft import LoraConfig, get_peft_model

            lc = t["lora"]
            model = get_peft_model(
                model,
                LoraConfig(
                    r=lc["r"],
                    lora_alpha=lc["lora_alpha"],
                    lora_dropout=lc["lora_dropout"],
                    target_modules=lc["target_modules"],
                    use_rslora=lc["use_rslora"],
                    bias="none",
                    task_type="CAUSAL_LM",
                ),
            )
        self.model = model
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=t["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=t["weight_decay"])
        self.max_grad_norm = t["max_grad_norm"]
        self.batch = {k: torch.tensor(t[k], dtype=torch.long) for k in ("input_ids", "attention_mask", "labels")}
        self.tokens = int(self.batch["attention_mask"].sum())
        self.trainable = sum(p.numel() for p in self.params)

    def run(self):
        import torch

        start = time.perf_counter()
        self.model.train()
        loss = self.model(**self.batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        value = loss.item()
        return {"seconds": time.perf_counter() - start, "work": self.tokens, "loss": value}


class Mcq:
    def __init__(self, spec):
        m = spec["mcq"]
        self.model = load_model(spec).eval()
        self.batch_size = m["batch_size"]
        self.pad = m["pad_token_id"]
        self.questions = len(m["requests"])
        # lm-eval's `_encode_pair` output, one row per option: input is (context +
        # continuation)[:-1], the continuation's tokens are scored at the last positions.
        rows = []
        for q, req in enumerate(m["requests"]):
            for o, cont in enumerate(req["continuations"]):
                whole = req["context"] + cont
                rows.append((q, o, whole[:-1], cont))
        # lm-eval's Collator: longest first, so each batch pads little.
        rows.sort(key=lambda r: -len(r[2]))
        self.rows = rows
        self.tokens = sum(len(r[2]) for r in rows)

    def run(self):
        import torch
        import torch.nn.functional as F

        start = time.perf_counter()
        scores = {}
        with torch.inference_mode():
            for i in range(0, len(self.rows), self.batch_size):
                chunk = self.rows[i : i + self.batch_size]
                width = max(len(r[2]) for r in chunk)
                ids = torch.full((len(chunk), width), self.pad, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for b, (_, _, inp, _) in enumerate(chunk):
                    ids[b, : len(inp)] = torch.tensor(inp)
                    mask[b, : len(inp)] = 1
                logprobs = F.log_softmax(self.model(input_ids=ids, attention_mask=mask).logits, dim=-1)
                for b, (q, o, inp, cont) in enumerate(chunk):
                    n = len(cont)
                    lp = logprobs[b, len(inp) - n : len(inp)]
                    target = torch.tensor(cont).unsqueeze(-1)
                    greedy = bool((lp.argmax(dim=-1) == target.squeeze(-1)).all())
                    scores[(q, o)] = (float(lp.gather(-1, target).sum()), greedy)
        return {"seconds": time.perf_counter() - start, "work": self.questions, "tokens": self.tokens}


class FirstToken:
    """A transformers streamer that only notes when the first generated token arrives."""

    def __init__(self, start):
        self.start = start
        self.puts = 0
        self.first = None

    def put(self, value):
        # The first call carries the prompt; the second the first new token.
        self.puts += 1
        if self.puts == 2:
            self.first = time.perf_counter() - self.start

    def end(self):
        pass


class Decode:
    def __init__(self, spec):
        import torch

        d = spec["decode"]
        self.model = load_model(spec).eval()
        self.ids = torch.tensor([d["prompt"]] * d["batch"], dtype=torch.long)
        self.mask = torch.ones_like(self.ids)
        self.new_tokens = d["new_tokens"]
        self.pad = d["pad_token_id"]

    def run(self):
        import torch

        start = time.perf_counter()
        streamer = FirstToken(start)
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=self.ids,
                attention_mask=self.mask,
                do_sample=False,
                max_new_tokens=self.new_tokens,
                min_new_tokens=self.new_tokens,
                pad_token_id=self.pad,
                streamer=streamer,
            )
        seconds = time.perf_counter() - start
        new = (out.shape[1] - self.ids.shape[1]) * out.shape[0]
        return {"seconds": seconds, "work": int(new), "ttft_s": streamer.first}


CASES = {"train": Train, "mcq": Mcq, "decode": Decode}


class Server:
    def __init__(self):
        self.case = None

    def handle(self, msg):
        import torch

        cmd = msg.get("cmd")
        if cmd == "hello":
            return versions()
        if cmd == "setup":
            self.case = None
            gc.collect()
            spec = msg["spec"]
            torch.set_num_threads(int(spec["threads"]))
            torch.manual_seed(int(spec.get("seed", 0)))
            rss_reset = reset_peak_rss()
            kind = spec["kind"]
            if kind not in CASES:
                raise ValueError(f"unknown case kind {kind!r}: one of {sorted(CASES)}")
            start = time.perf_counter()
            self.case = CASES[kind](spec)
            return {"ok": True, "setup_s": time.perf_counter() - start, "rss_reset": rss_reset, "threads": torch.get_num_threads()}
        if cmd == "run":
            if self.case is None:
                raise RuntimeError("`run` before a successful `setup`")
            return self.case.run()
        if cmd == "finish":
            extra = {"trainable_params": getattr(self.case, "trainable", None)}
            self.case = None
            gc.collect()
            return {"peak_rss_mib": peak_rss_mib(), **extra}
        raise ValueError(f"unknown command {cmd!r}")


def serve():
    server = Server()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = server.handle(json.loads(line))
        except Exception as e:
            traceback.print_exc(file=sys.stderr)
            reply = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


def one_shot(spec_path, reps):
    with open(spec_path) as f:
        spec = json.load(f)
    server = Server()
    setup = server.handle({"cmd": "setup", "spec": spec})
    server.handle({"cmd": "run"})  # warm-up
    runs = [server.handle({"cmd": "run"}) for _ in range(reps)]
    done = server.handle({"cmd": "finish"})
    print(json.dumps({"versions": versions(), "setup": setup, "runs": runs, **done}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--serve", action="store_true", help="JSON-lines server for the Rust driver")
    p.add_argument("--spec", help="one case as JSON (what the driver sends in `setup`)")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions after one warm-up")
    a = p.parse_args()
    # Hugging Face libraries print to stdout on import in some versions; the protocol owns it.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if a.serve:
        serve()
    elif a.spec:
        one_shot(a.spec, a.reps)
    else:
        p.error("pass --serve or --spec FILE")


if __name__ == "__main__":
    main()
