"""Reference values for the open-question text metrics in src/metrics.rs (tests/metrics.rs).

Usage: text_metrics_fixtures.py [OUT.json]   (default: ../fixtures/text_metrics.json)

Over the checked-in PAIRS below it writes, as pretty JSON with sorted keys:
- per pair: SQuAD v1.1 normalisation, exact match and token F1 (the official evaluate-v1.1.py
  definition, restated here; the both-empty case follows evaluate-v2.0.py, see `token_f1`),
  the sacreBLEU 13a tokenisation, `sacrebleu.corpus_bleu([pred], [[ref]])` with every default,
  the rouge-score tokens and `RougeScorer(["rouge1", "rouge2", "rougeL"]).score(ref, pred)`;
- sacreBLEU corpus BLEU over a few sub-corpora (all pairs, the first five, the odd indices);
- the aggregate `open_metrics` over all pairs.
Needs sacrebleu 2.6.0 and rouge-score 0.1.2 (the venv of `cargo xtask setup`). The output is
deterministic: tests/metrics.rs re-runs this script (when F1_PYTHON is set) and requires the
result to equal the checked-in fixture byte for byte.
"""
import collections
import json
import os
import re
import string
import sys
from importlib.metadata import version

import sacrebleu
from rouge_score import rouge_scorer, tokenize
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

# (id, prediction, reference). F1-domain answers chosen to hit every branch of the three
# tokenisers: decimals and thousands separators, quotes, hyphens after digits, apostrophes
# (straight and curly), parentheses, "&" and "<" (raw and as HTML entities), non-ASCII names
# (composed and decomposed), empty and article-only strings, identical and disjoint pairs,
# multi-sentence and multi-line answers, non-breaking space and the ASCII separators U+001C-1F
# that Python counts as whitespace.
PAIRS = [
    ("identical", "Lewis Hamilton won the 2008 championship.", "Lewis Hamilton won the 2008 championship."),
    ("partial", "Hamilton won the 2008 title.", "Lewis Hamilton won the 2008 championship."),
    ("lap_time", "The fastest lap was 1:18.149, set by Max Verstappen.", "Max Verstappen set the fastest lap, a 1:18.149."),
    ("thousands", "He scored 1,234.5 points in total.", "He scored 1234.5 points"),
    ("quotes", 'He said "box, box" on lap 52.', "The team radio said 'box box' on lap 52."),
    ("hyphen_words", "The Mercedes-AMG F1 W11 was dominant in 2020.", "In 2020 the Mercedes W11 dominated."),
    ("hyphen_digits", "The 2021-22 rules brought 18-inch wheels.", "The 2022 rules introduced 18-inch wheels."),
    ("apostrophes", "Hamilton's seventh title came in 2020.", "Lewis Hamilton\u2019s 7th title was won in 2020."),
    ("parentheses", "Kimi R\u00e4ikk\u00f6nen (Ferrari) won in 2007.", "R\u00e4ikk\u00f6nen won the 2007 title with Ferrari."),
    ("amp_lt", "Red Bull & Honda: gap < 0.5s", "Red Bull and Honda, gap under 0.5 s"),
    ("html_entities", "AT&amp;T Williams &lt;3 &quot;FW26&quot; &amp;lt;", 'AT&T Williams <3 "FW26" <'),
    ("perez", "Sergio P\u00e9rez finished P2 (+5.2s).", "P\u00e9rez was second, 5.2 seconds behind."),
    ("nfd_vs_nfc", "Sergio Pe\u0301rez", "Sergio P\u00e9rez"),
    ("empty_prediction", "", "Fernando Alonso"),
    ("articles_only", "The", "a"),
    ("disjoint", "Monaco Grand Prix", "Silverstone circuit in 1950"),
    ("multi_sentence",
     "Michael Schumacher won seven titles. Five came with Ferrari. The last was in 2004.",
     "Schumacher won seven world championships, five of them with Ferrari, the last in 2004."),
    ("repeats", "the the the car car car", "the car"),
    ("case", "LEWIS HAMILTON WON THE 2008 CHAMPIONSHIP", "Lewis Hamilton won the 2008 championship"),
    ("dotted_capital_i", "\u0130stanbul Park hosted the Turkish GP.", "Istanbul Park hosted the Turkish Grand Prix."),
    ("skipped_and_newlines", "Formula-\none <skipped> race in\n2019-\n", "Formulaone race in 2019"),
    ("whitespace", "  Nico Rosberg\tin 2016  \n", "Nico Rosberg (2016)"),
    ("period_comma_rules", "Lap 1.5, then .5 and 5. a,b x,5 e.g.. 3-4", "Lap 1.5 then 0.5 and 5 a b x 5 e.g. 3 4"),
    ("cjk", "Suzuka (\u9234\u9e7f) hosted it.", "Suzuka hosted the Japanese Grand Prix."),
    ("punctuation_only", "...", "Max Verstappen"),
    ("pre_tokenized", "Verstappen won in 2021 .", "Verstappen won in 2021."),
    ("nbsp_and_unit_separator", "Charles\u00a0Leclerc and Lando\u001fNorris", "Charles Leclerc and Lando Norris"),
    ("underscore", "pole_position at Spa-Francorchamps", "pole position at Spa Francorchamps"),
]

SUB_CORPORA = {
    "all": list(range(len(PAIRS))),
    "first_5": list(range(5)),
    "odd_indices": list(range(1, len(PAIRS), 2)),
}


# --- SQuAD v1.1 (evaluate-v1.1.py), restated from its definition ---------------------------

def normalize_answer(s):
    """Lower text and remove punctuation, articles and extra whitespace."""

    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def token_f1(prediction, ground_truth):
    pred = normalize_answer(prediction).split()
    gold = normalize_answer(ground_truth).split()
    # evaluate-v1.1 returns 0 here even when both are empty; evaluate-v2.0 (and our API)
    # scores two empty answers as agreeing, so an answer that is only articles or punctuation
    # against a reference of the same kind counts as a match, consistent with exact match.
    if not pred or not gold:
        return float(pred == gold)
    common = collections.Counter(pred) & collections.Counter(gold)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = 1.0 * num_same / len(pred)
    recall = 1.0 * num_same / len(gold)
    return (2 * precision * recall) / (precision + recall)


def exact_match(prediction, ground_truth):
    return normalize_answer(prediction) == normalize_answer(ground_truth)


# --- sacreBLEU and rouge-score, called with their defaults ---------------------------------

def bleu(hyps, refs):
    b = sacrebleu.corpus_bleu(hyps, [refs])
    return {
        "score": b.score,
        "precisions": [float(p) for p in b.precisions],
        "bp": float(b.bp),
        "sys_len": b.sys_len,
        "ref_len": b.ref_len,
        "counts": list(b.counts),
        "totals": list(b.totals),
    }


SCORER = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
TOK13A = Tokenizer13a()


def rouge(reference, prediction):
    scores = SCORER.score(reference, prediction)
    # The zero-length branches return int 0; store floats so the JSON types do not vary.
    return {
        k: {"precision": float(s.precision), "recall": float(s.recall), "fmeasure": float(s.fmeasure)}
        for k, s in scores.items()
    }


def mean(xs):
    # An explicit left-to-right sum: Python 3.12's sum() of floats is compensated, which
    # would make the fixture depend on the interpreter version.
    total = 0.0
    for x in xs:
        total += x
    return total / len(xs)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "fixtures", "text_metrics.json")
    preds = [p for _, p, _ in PAIRS]
    refs = [r for _, _, r in PAIRS]
    pairs = []
    for pid, pred, ref in PAIRS:
        pairs.append({
            "id": pid,
            "prediction": pred,
            "reference": ref,
            "squad": {
                "normalized_prediction": normalize_answer(pred),
                "normalized_reference": normalize_answer(ref),
                "exact_match": exact_match(pred, ref),
                "token_f1": float(token_f1(pred, ref)),
            },
            "tok13a": {"prediction": TOK13A(pred), "reference": TOK13A(ref)},
            "bleu": bleu([pred], [ref]),
            "rouge_tokens": {
                "prediction": tokenize.tokenize(pred, None),
                "reference": tokenize.tokenize(ref, None),
            },
            "rouge": rouge(ref, pred),
        })
    corpora = {
        name: {"indices": idx, "bleu": bleu([preds[i] for i in idx], [refs[i] for i in idx])}
        for name, idx in SUB_CORPORA.items()
    }
    open_metrics = {
        "n": len(pairs),
        "exact_match": mean([1.0 if p["squad"]["exact_match"] else 0.0 for p in pairs]),
        "token_f1": mean([p["squad"]["token_f1"] for p in pairs]),
        "bleu": corpora["all"]["bleu"]["score"],
        "rouge1": mean([p["rouge"]["rouge1"]["fmeasure"] for p in pairs]),
        "rouge2": mean([p["rouge"]["rouge2"]["fmeasure"] for p in pairs]),
        "rouge_l": mean([p["rouge"]["rougeL"]["fmeasure"] for p in pairs]),
    }
    doc = {
        "generator": "crates/phase4-evaluation/tests/python/text_metrics_fixtures.py",
        "versions": {"sacrebleu": version("sacrebleu"), "rouge_score": version("rouge-score")},
        "pairs": pairs,
        "corpora": corpora,
        "open_metrics": open_metrics,
    }
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        json.dump(doc, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
