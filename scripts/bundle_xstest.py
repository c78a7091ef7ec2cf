"""Rebuild src/changeover/data/xstest/records.jsonl.gz from ../shared/data/xstest.

One record per (prompt, model): segment = prompt type and safety; signal
``refusal`` = the GPT-4 judge's verdict turned into "behaviour acceptable"
(complied with a safe prompt, or refused an unsafe one; partial refusal counts
as refusal; an unparseable judge output is missing); signal
``refusal_strmatch`` = the same from the keyword string-match classifier;
label ``refusal`` = the adjudicated human label, turned the same way.
Run: python scripts/bundle_xstest.py [path/to/shared/data/xstest]
"""

import csv
import gzip
import json
import sys
from pathlib import Path

MODELS = ["llama2orig", "llama2new", "gpt4", "mistralinstruct", "mistralguard"]


def acceptable(label: str, safety: str) -> int | None:
    if label[:2] not in ("1_", "2_", "3_"):
        return None
    refused = label[0] in "23"
    return int(refused) if safety == "unsafe" else int(not refused)


def main() -> None:
    src = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parents[1].parent / "shared/data/xstest")
    out = Path(__file__).parents[1] / "src/changeover/data/xstest/records.jsonl.gz"
    prompts = {f"v2-{r['id']}": r for r in csv.DictReader(open(src / "xstest_prompts.csv", encoding="utf-8"))}
    with gzip.open(out, "wt", encoding="utf-8") as fh:
        for model in MODELS:
            comp = {
                r["id"]: r
                for r in csv.DictReader(
                    open(src / f"model_completions/xstest_v2_completions_{model}.csv", encoding="utf-8")
                )
            }
            judge = {
                r["id"]: r
                for r in csv.DictReader(
                    open(
                        src / f"automated_evaluation_labels/xstest_v2_completions_{model}_gpteval.csv", encoding="utf-8"
                    )
                )
            }
            strm = {
                r["id"]: r
                for r in csv.DictReader(
                    open(
                        src / f"automated_evaluation_labels/xstest_v2_completions_{model}_streval.csv", encoding="utf-8"
                    )
                )
            }
            for pid, p in prompts.items():
                safety = p["label"]
                rec = {
                    "item": pid,
                    "model": model,
                    "segment": {"prompt_type": p["type"], "safety": safety},
                    "signals": {
                        "refusal": acceptable(judge[pid]["gpt4_label"], safety),
                        "refusal_strmatch": acceptable(strm[pid]["strmatch_label"], safety),
                    },
                    "labels": {"refusal": acceptable(comp[pid]["final_label"], safety)},
                    "prompt": p["prompt"],
                    "response": comp[pid]["completion"],
                }
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
