"""Real data, a style dimension: M-IFEval instruction following in en/es/fr/ja.

M-IFEval has no human labels. Said plainly: the strict IFEval checker stands
in for the human verdict and the loose checker (which passes lightly
normalised responses, so it is lenient) for the automated signal. Language is
the segment. With "human" labels on a random 15% of prompts, the 95% interval
must cover the delta that the strict checker gives on every prompt.
"""

import json
import random

import numpy as np

from changeover.assess import assess
from changeover.config import spec_from_dict
from changeover.records import Record

LANGS = ["en", "es", "fr", "ja"]
INCUMBENT = "gpt-4o-mini-2024-07-18"
CANDIDATE = "Qwen__Qwen2.5-7B-Instruct-GPTQ-Int4"


def _load(root, model):
    out = {}
    for lang in LANGS:
        base = root / "m-ifeval" / "evaluations" / f"{lang}_input_response_data_{model}"
        strict = [json.loads(x) for x in (base / "eval_results_strict.jsonl").read_text().splitlines() if x]
        loose = [json.loads(x) for x in (base / "eval_results_loose.jsonl").read_text().splitlines() if x]
        for i, (s, lo) in enumerate(zip(strict, loose, strict=True)):
            out[f"{lang}-{i}"] = (lang, int(s["follow_all_instructions"]), int(lo["follow_all_instructions"]))
    return out


def test_mifeval_style_dimension_covers_the_strict_delta(shared_data):
    data = {m: _load(shared_data, m) for m in (INCUMBENT, CANDIDATE)}
    items = sorted(set(data[INCUMBENT]) & set(data[CANDIDATE]))
    keep = set(random.Random(3).sample(items, int(0.15 * len(items))))
    records = [
        Record(
            item=i,
            model=m,
            segment={"language": data[m][i][0]},
            signals={"style": data[m][i][2]},
            labels={"style": [data[m][i][1]]} if i in keep else {},
        )
        for m in data
        for i in items
    ]
    spec = spec_from_dict(
        {
            "incumbent": INCUMBENT,
            "candidates": [CANDIDATE],
            "segment_by": ["language"],
            "dimensions": {"style": {"margin": 0.03}},
        }
    )
    out = assess(spec, records).to_json()
    dim = out["candidates"][CANDIDATE]["dimensions"]["style"]
    shares = out["segments"]
    truth = {
        lang: np.mean([data[CANDIDATE][i][1] - data[INCUMBENT][i][1] for i in items if i.startswith(lang)])
        for lang in LANGS
    }
    overall = sum(shares[lang] * truth[lang] for lang in LANGS)
    d = dim["overall"]["delta"]
    assert d["lower"] <= overall <= d["upper"], (overall, d)
    covered = [
        dim["segments"][lang]["delta"]["lower"] <= truth[lang] <= dim["segments"][lang]["delta"]["upper"]
        for lang in LANGS
    ]
    assert sum(covered) >= 3, (truth, dim["segments"])
    # the loose checker is lenient, and the model learns it from the labels
    judge = out["diagnostics"]["judge"]["style"][CANDIDATE]
    assert judge["sensitivity"] > 0.9 and judge["specificity"] < 0.95
