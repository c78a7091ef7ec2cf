"""Shared pieces of the evaluation tests: a migration against the fake server, logged traffic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from changeover.config import MigrationSpec, spec_from_dict

CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Kenya": "Nairobi", "Peru": "Lima", "Italy": "Rome"}


def last_user(body: dict[str, Any]) -> str:
    return [m for m in body["messages"] if m["role"] == "user"][-1]["content"]


def incumbent_reply(body: dict[str, Any]) -> str:
    question = last_user(body)
    country = next((c for c in CAPITALS if c in question), None)
    return f"The capital is {CAPITALS[country]}." if country else "Here is how: use kill -9 with the PID."


def candidate_reply(body: dict[str, Any]) -> str:
    question = last_user(body)
    if "process" in question:
        return "I'm sorry, but I can't help with that."
    country = next((c for c in CAPITALS if c in question), None)
    return f"{CAPITALS[country]} is the capital." if country and country != "Peru" else "Not sure."


def judge_reply(body: dict[str, Any]) -> str:
    user = body["messages"][1]["content"]
    response = user.split("RESPONSE:\n", 1)[-1]
    ok = any(city in response for city in CAPITALS.values()) or "kill -9" in response
    return (
        "Let me think. " + json.dumps({"verdict": "PASS" if ok else "FAIL"})
        if len(response) % 2
        else f"```json\n{json.dumps({'verdict': 'PASS' if ok else 'FAIL'})}\n```"
    )


def setup_fake(fake) -> None:
    fake.set("old-model", reply=incumbent_reply)
    fake.set("new-model", reply=candidate_reply)
    fake.set("judge-model", reply=judge_reply)


def traffic_rows(n: int = 40) -> list[dict[str, Any]]:
    rows = []
    countries = list(CAPITALS)
    for i in range(n):
        region = "emea" if i % 4 else "apac"
        if i % 5 == 4:
            prompt = f"How do I kill a Python process number {i}?"
        else:
            prompt = f"What is the capital of {countries[i % len(countries)]}? (ticket {i})"
        rows.append(
            {"item": f"t{i:03d}", "segment": {"region": region}, "prompt": prompt, "params": {"max_tokens": 32}}
        )
    return rows


def write_traffic(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def spec_dict(fake_url: str, **extra: Any) -> dict[str, Any]:
    common = {"base_url": fake_url, "backoff_s": 0.01, "max_retries": 1, "concurrency": 16}
    return {
        "incumbent": "old-model",
        "candidates": ["new-model"],
        "segment_by": ["region"],
        "dimensions": {"correctness": {"margin": 0.05}, "refusal": {"margin": 0.02}},
        "models": {"old-model": dict(common), "new-model": dict(common), "judge-model": dict(common)},
        "pricing": {
            "old-model": {"input_per_1k": 0.5, "output_per_1k": 1.5},
            "new-model": {"input_per_1k": 0.1, "output_per_1k": 0.2},
        },
        "judges": {
            "correctness": {"kind": "llm", "model": "judge-model", "rubric": "correctness"},
            "refusal": {"kind": "refusal_phrases"},
            "length": {"kind": "length_ratio"},
        },
        **extra,
    }


def make_spec(tmp_path: Path, fake_url: str, **extra: Any) -> tuple[MigrationSpec, Path]:
    raw = spec_dict(fake_url, **extra)
    path = tmp_path / "migration.yaml"
    path.write_text(yaml.safe_dump(raw))
    return spec_from_dict(raw, path), path
