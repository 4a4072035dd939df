"""Recall and control accuracy split by a winner-frequency prior (issue #13 analysis).

A model that learned only "these drivers win a lot" picks, among the options, the driver who
won the most taught races. This splits the recall and control questions by whether that prior
points at the answer, and reports each variant's chat-format accuracy on both halves with the
paired change against the baseline (gains / losses, exact two-sided McNemar p). On the half where
the prior points elsewhere, only knowledge of the fact itself raises accuracy.

Reads `data/curated/benchmark.jsonl` and `results/<variant>/mcq_items.jsonl` of a study root;
the standard library only:
    python3 crates/phase4-evaluation/tests/python/prior_split.py [STUDY_ROOT]
"""

import collections
import json
import math
import os
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else "."
VARIANTS = ("baseline", "lora", "qlora", "full")


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def mcnemar_exact(gains, losses):
    n = gains + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(gains, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)


def main():
    bench = {q["id"]: q for q in read_jsonl(os.path.join(ROOT, "data/curated/benchmark.jsonl"))}
    # Taught wins per driver: every recall question states one taught race winner.
    wins = collections.Counter(q["options"][q["answer_index"]] for q in bench.values() if q.get("part") == "recall")

    def prior_points_at_answer(q):
        opts, a = q["options"], q["answer_index"]
        return all(wins[opts[a]] > wins[o] for i, o in enumerate(opts) if i != a)

    right = {}
    for v in VARIANTS:
        path = os.path.join(ROOT, "results", v, "mcq_items.jsonl")
        if os.path.exists(path):
            right[v] = {x["id"]: x["chat"]["pred"] == x["answer_index"] for x in read_jsonl(path) if x.get("chat")}
    if "baseline" not in right:
        sys.exit(f"no results/baseline/mcq_items.jsonl under {ROOT}: run the study first")

    for part in ("recall", "control"):
        for at_answer in (True, False):
            ids = [i for i, q in bench.items() if q.get("part") == part and prior_points_at_answer(q) == at_answer]
            if not ids:
                continue
            cells = []
            for v, ok in right.items():
                c = sum(ok[i] for i in ids)
                cell = f"{v} {c}/{len(ids)} ({100 * c / len(ids):.0f}%"
                if v != "baseline":
                    base = right["baseline"]
                    g = sum(ok[i] and not base[i] for i in ids)
                    l = sum(base[i] and not ok[i] for i in ids)
                    cell += f", +{g}/-{l}, p = {mcnemar_exact(g, l):.2g}"
                cells.append(cell + ")")
            where = "prior points at the answer" if at_answer else "prior points elsewhere"
            print(f"{part:8} {where:27} " + " | ".join(cells))


if __name__ == "__main__":
    main()
