"""Fixtures for the report tests.

``fake_assessment`` is a *rendering fixture*: an object honouring the assessment
contract of docs/internals.md, built from Beta draws around chosen pass rates. It makes
no claim about the statistics; it only gives the report realistic shapes and numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from changeover.config import MigrationSpec, spec_from_dict
from changeover.records import Record
from changeover.store import open_store
from changeover.store.events import append_event

REGIONS = {"emea": 0.3, "na": 0.5, "apac": 0.2}
SPEC = {
    "incumbent": "legacy-model",
    "candidates": ["cand-a", "cand-b"],
    "segment_by": ["region"],
    "traffic": {"monthly_interactions": 5_300_000, "shares": REGIONS},
    "confidence": 0.95,
    "dimensions": {
        "correctness": {"signal": "correctness", "margin": 0.02},
        "refusal": {"signal": "refusal", "margin": 0.005},
        "style": {"signal": "style", "margin": 0.03, "levels": 5},
    },
    "seed": 7,
}
# true pass rates per (model, dimension); cand-b regresses on correctness in apac
RATES = {
    ("legacy-model", "correctness"): 0.86,
    ("cand-a", "correctness"): 0.89,
    ("cand-b", "correctness"): 0.85,
    ("legacy-model", "refusal"): 0.97,
    ("cand-a", "refusal"): 0.975,
    ("cand-b", "refusal"): 0.96,
    ("legacy-model", "style"): 0.78,
    ("cand-a", "style"): 0.80,
    ("cand-b", "style"): 0.79,
}
APAC_DROP = {("cand-b", "correctness"): -0.09}


@dataclass
class FakePair:
    segments: list[str]
    shares: np.ndarray
    incumbent_rate: np.ndarray
    candidate_rate: np.ndarray
    delta: np.ndarray
    delta_overall: np.ndarray
    judge: dict[str, Any]


@dataclass
class FakeAssessment:
    verdict: str
    result: dict[str, Any]
    pairs: dict[tuple[str, str], FakePair]
    next_labels: list[dict[str, Any]] = field(default_factory=list)
    labels_needed: dict[str, dict[str, int]] = field(default_factory=dict)
    seed: int = 7

    def to_json(self) -> dict[str, Any]:
        return self.result


def _summary(draws: np.ndarray, g: float) -> dict[str, float]:
    a = (1 - g) / 2
    return {
        "mean": float(draws.mean()),
        "lower": float(np.quantile(draws, a)),
        "upper": float(np.quantile(draws, 1 - a)),
    }


def _block(inc: np.ndarray, cand: np.ndarray, margin: float, g: float, monthly: float, share: float) -> dict:
    delta = cand - inc
    out = {
        "delta": _summary(delta, g),
        "incumbent": _summary(inc, g),
        "candidate": _summary(cand, g),
        "p_noninferior": float((delta > -margin).mean()),
        "p_superior": float((delta > 0).mean()),
        "p_regression": float((delta < -margin).mean()),
        "extra_failures_per_month": _summary(np.maximum(0, -delta) * monthly * share, g),
        "net_failures_per_month": _summary(-delta * monthly * share, g),
    }
    out["verdict"] = (
        "regression"
        if out["p_regression"] >= g
        else "superior"
        if out["p_superior"] >= g
        else "non-inferior"
        if out["p_noninferior"] >= g
        else "inconclusive"
    )
    return out


def _dim_verdict(blocks: list[dict], g: float) -> str:
    if any(b["p_regression"] >= g for b in blocks):
        return "regression"
    if all(b["p_superior"] >= g for b in blocks[-1:]) and all(b["p_noninferior"] >= g for b in blocks):
        return "superior"
    if all(b["p_noninferior"] >= g for b in blocks):
        return "non-inferior"
    return "inconclusive"


def make_assessment(
    spec: MigrationSpec, labels_per_cell: int = 400, draws: int = 2000, seed: int = 3
) -> FakeAssessment:
    """Beta posteriors around RATES; fewer labels give wider posteriors (and NEED-LABELS)."""
    rng = np.random.default_rng(seed)
    g, monthly = spec.confidence, spec.traffic.monthly_interactions or 0
    segs, shares = list(REGIONS), np.array(list(REGIONS.values()))
    candidates, pairs, needed, judges = {}, {}, {}, {}
    for cand in spec.candidates:
        dims = {}
        for dim, cfg in spec.dimensions.items():
            n = labels_per_cell * shares / shares.max()
            base = RATES[(spec.incumbent, dim)]
            inc = np.column_stack([rng.beta(base * k + 1, (1 - base) * k + 1, draws) for k in n])
            drop = APAC_DROP.get((cand, dim), 0.0)
            shift = np.array([RATES[(cand, dim)] - base + (drop if s == "apac" else 0) for s in segs])
            noise = np.column_stack([rng.normal(0, 0.35 / np.sqrt(k), draws) for k in n])
            cand_rate = np.clip(inc + shift + noise, 0, 1)
            segments = {
                s: _block(inc[:, i], cand_rate[:, i], cfg.margin, g, monthly, shares[i]) for i, s in enumerate(segs)
            }
            w = shares / shares.sum()
            overall = _block(inc @ w, cand_rate @ w, cfg.margin, g, monthly, 1.0)
            verdict = _dim_verdict([*segments.values(), overall], g)
            dims[dim] = {"verdict": verdict, "overall": overall, "segments": segments}
            k = cfg.levels or 2
            lenient = 0.25 if (cand, dim) == ("cand-b", "correctness") else 0.08
            judge = {spec.incumbent: _judge(k, 0.08), cand: _judge(k, lenient)}
            judges.setdefault(dim, {}).update(judge)
            pairs[(cand, dim)] = FakePair(segs, shares, inc, cand_rate, cand_rate - inc, (cand_rate - inc) @ w, judge)
            if verdict == "inconclusive":
                needed.setdefault(cand, {})[dim] = int(3000 / np.sqrt(labels_per_cell))
        cand_verdict = (
            "NO-GO"
            if any(d["verdict"] == "regression" for d in dims.values())
            else "GO"
            if all(d["verdict"] in ("superior", "non-inferior") for d in dims.values())
            else "NEED-LABELS"
        )
        candidates[cand] = {"verdict": cand_verdict, "dimensions": dims}
    verdicts = {c["verdict"] for c in candidates.values()}
    overall = "GO" if "GO" in verdicts else "NEED-LABELS" if "NEED-LABELS" in verdicts else "NO-GO"
    next_labels = [
        {
            "item": f"q-{i:04d}",
            "model": spec.candidates[i % 2],
            "dimension": "correctness",
            "value": round(0.05 / (i + 1), 4),
        }
        for i in range(20)
    ]
    result = {
        "verdict": overall,
        "confidence": g,
        "candidates": candidates,
        "labels_needed": needed,
        "next_labels": next_labels,
        "segments": dict(REGIONS),
        "diagnostics": {
            "rhat_max": 1.004,
            "ess_min": 812.0,
            "judge": judges,
            "seed": seed,
            "draws": draws,
            "chains": 4,
        },
    }
    return FakeAssessment(overall, result, pairs, next_labels, needed, seed)


def _judge(k: int, false_pass: float) -> dict[str, Any]:
    """The judge summary in the assessment's format, passing bad answers at ``false_pass``."""
    if k == 2:
        return {"sensitivity": 0.93, "specificity": 1 - false_pass, "passes_bad": false_pass, "fails_good": 0.07}
    bad = np.linspace(1.0, 0.2, k)
    good = np.linspace(0.2, 1.0, k)
    return {
        "confusion": {"acceptable": (good / good.sum()).tolist(), "not_acceptable": (bad / bad.sum()).tolist()},
        "levels": f"ordinal signal with {k} levels",
    }


def make_records(spec: MigrationSpec, n_items: int = 300, seed: int = 5, shadow: bool = False) -> list[Record]:
    """Responses of every model with signals, some labels (a few double-labelled), texts,
    and with ``shadow`` latency, tokens, cost and errors."""
    rng = np.random.default_rng(seed)
    records = []
    regions = list(REGIONS)
    latency = {"legacy-model": 900, "cand-a": 620, "cand-b": 1400}
    for i in range(n_items):
        item = f"q-{i:04d}"
        region = regions[rng.choice(3, p=list(REGIONS.values()))]
        prompt = f"Customer question {i}: how do I change the billing address on invoice #{1000 + i}?"
        for model in spec.models:
            signals, labels = {}, {}
            for dim, cfg in spec.dimensions.items():
                ok = int(rng.random() < RATES[(model, dim)])
                if cfg.levels:
                    signals[cfg.signal] = int(np.clip(rng.normal(2 + 2 * ok, 0.8), 1, cfg.levels).round())
                else:
                    signals[cfg.signal] = ok if rng.random() > 0.1 else 1 - ok
                if i % 5 == 0:
                    labels[dim] = [ok, ok if rng.random() > 0.1 else 1 - ok] if i % 15 == 0 else [ok]
            text = (
                f"To change the billing address on invoice #{1000 + i}, open Settings → Billing and "
                f"edit the address ({model})."
            )
            if model == "cand-b" and i % 7 == 0:
                text = '```json\n{"answer": "open Settings, then Billing"}\n```'
            rec = Record(
                item=item,
                model=model,
                segment={"region": region},
                signals=signals,
                labels=labels,
                prompt=prompt,
                response=text,
            )
            if shadow:
                rec.latency_ms = float(rng.lognormal(np.log(latency[model]), 0.35))
                rec.tokens_in = float(rng.integers(180, 260))
                rec.tokens_out = float(rng.integers(40, 160))
                rec.cost_usd = rec.tokens_out * (2e-6 if model == "cand-a" else 6e-6)
                rec.error = "timeout" if rng.random() < (0.01 if model != "cand-b" else 0.03) else None
                rec.extra = {"refused": bool(rng.random() < 0.03)}
            records.append(rec)
    return records


def _flag_payload(stage: int, weight: int, before: int) -> dict[str, Any]:
    """What ``set_flag`` records for a rollout stage change (weights in percent)."""
    return {
        "from_weight": before,
        "to_weight": weight,
        "to_stage": stage,
        "to": {"candidate": "cand-a", "stage": stage, "weight": weight},
    }


def _analysis(action: str, phase: str, value: float) -> dict[str, Any]:
    return {
        "action": action,
        "measurements": [
            {"trigger": "refusal_rate", "metric": "refusal_rate", "phase": phase, "value": value, "limit": 0.015}
        ],
    }


def add_migration_events(store) -> None:
    """A rollout (as the rollout feature logs it) with a failed check and a rollback, and an
    embedding comparison (the embedding feature's JSON) with a fitted adapter."""
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    steps = [
        (0, "rollout.start", "operator:ops", "shadow only", _flag_payload(0, 0, 0)),
        (20, "rollout.analysis", "controller", "window passed", _analysis("advance", "successful", 0.01)),
        (20, "rollout.advance", "controller", "stabilisation window passed", _flag_payload(1, 5, 0)),
        (26, "rollout.analysis", "controller", "all clear", _analysis("hold", "successful", 0.011)),
        (44, "rollout.advance", "controller", "stabilisation window passed", _flag_payload(2, 25, 5)),
        (
            50,
            "rollout.analysis",
            "controller",
            "refusal rate 1.9% > baseline + 0.5 pts",
            _analysis("rollback", "failed", 0.019),
        ),
        (50.2, "rollout.rollback", "controller", "trigger refusal_rate failed", _flag_payload(0, 0, 25)),
        (70, "rollout.advance", "operator:alice", "guardrail prompt fixed; resuming", _flag_payload(1, 5, 0)),
        (94, "rollout.advance", "controller", "stabilisation window passed", _flag_payload(3, 50, 5)),
    ]
    overlap = np.random.default_rng(1).binomial(10, 0.81, 225)
    comparison = {
        "old": "all-MiniLM-L6-v2",
        "new": "multilingual-e5-small",
        "k": 10,
        "queries": 225,
        "mean_overlap": float(overlap.mean() / 10),
        "verdict": "preserves retrieval",
        "histogram": {f"{i}/10": int((overlap == i).sum()) for i in range(11)},
        "worst": [
            {"query": "what is the flutter boundary?", "overlap": 0.2},
            {"query": "shock wave interaction on a cone", "overlap": 0.3},
        ],
        "quality": {
            "old": {"recall@10": 0.401, "nDCG@10": 0.412},
            "new": {"recall@10": 0.433, "nDCG@10": 0.447},
            "adapted": {"recall@10": 0.388, "nDCG@10": 0.395},
        },
    }
    with store.engine.begin() as conn:
        for hours, kind, actor, reason, payload in steps:
            _append_at(conn, t0 + timedelta(hours=hours), kind, "rollout:support-bot", actor, reason, payload)
        _append_at(conn, t0 + timedelta(hours=30), "embeddings.compare", "embeddings:docs", "cli", None, comparison)
        _append_at(
            conn,
            t0 + timedelta(hours=31),
            "embeddings.adapter.fitted",
            "embeddings:adapter",
            "cli",
            None,
            {"id": 1, "form": "orthogonal Procrustes", "held_out_overlap": 0.71},
        )


def _append_at(conn, at, kind, subject, actor, reason, payload) -> None:
    from sqlalchemy import update

    from changeover.store.schema import events

    event_id = append_event(conn, kind, subject, actor, reason, payload)
    conn.execute(update(events).where(events.c.id == event_id).values(at=at))


RESOURCE_ATTR = re.compile(r"""\b(?:src|href|xlink:href|action|poster|data|srcset)\s*=\s*["']([^"']*)["']""", re.I)


def find_external_references(html: str) -> list[str]:
    """Anything the page could fetch: resource attributes that are not in-page anchors,
    CSS url()/@import, and any http(s) or protocol-relative URL at all."""
    found = [v for v in RESOURCE_ATTR.findall(html) if not v.startswith("#")]
    found += re.findall(r"url\(\s*['\"]?([^)'\"]+)", html)
    found += re.findall(r"@import[^;]+;", html)
    found += re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}", html, re.I)
    return found


@pytest.fixture
def external_references() -> Callable[[str], list[str]]:
    return find_external_references


@pytest.fixture
def sections() -> Callable[[str], set[str]]:
    """The ids of the report's rendered sections."""
    return lambda html: set(re.findall(r'<section id="([\w-]+)"', html))


@dataclass
class Demo:
    """The real demo migration (bundled XSTest) assessed by the real core, once per session."""

    spec: MigrationSpec
    records: list[Record]
    assessment: Any


@pytest.fixture(scope="session")
def demo() -> Demo:
    from changeover import demo as demo_data
    from changeover.assess import assess

    data = demo_data.prepare(labels=120, seed=7)
    return Demo(data.spec, data.records, assess(data.spec, data.records))


def with_traffic_metrics(records: list[Record], seed: int = 11) -> list[Record]:
    """Copies of the records with latency, tokens, cost and errors as a gateway logs them
    (synthetic numbers: XSTest has none), to exercise the shadow section on real texts."""
    rng = np.random.default_rng(seed)
    scale = {"llama2orig": 1900.0, "gpt4": 1100.0, "mistralguard": 450.0}
    out = []
    for r in records:
        copy = Record(**{f: getattr(r, f) for f in r.__slots__})
        copy.latency_ms = float(rng.lognormal(np.log(scale.get(r.model, 800.0)), 0.4))
        copy.tokens_in = float(len((r.prompt or "").split()) * 1.3 + 40)
        copy.tokens_out = float(len((r.response or "").split()) * 1.3)
        copy.cost_usd = copy.tokens_out * (3e-5 if r.model == "gpt4" else 2e-6)
        copy.error = "timeout" if rng.random() < 0.005 else None
        out.append(copy)
    return out


@pytest.fixture
def demo_store(tmp_path: Path, demo: Demo):
    """A store with the demo's responses (with traffic metrics), rollout and embedding events."""
    from changeover.store.responses import add_records

    store = open_store(f"sqlite:///{tmp_path / 'demo.db'}")
    add_records(store, with_traffic_metrics(demo.records), source="gateway")
    add_migration_events(store)
    yield store
    store.dispose()


@pytest.fixture
def migration_events() -> Callable[[Any], None]:
    """The function that adds the rollout and embedding events to a store."""
    return add_migration_events


@pytest.fixture
def spec() -> MigrationSpec:
    return spec_from_dict(dict(SPEC), "migration.yaml")


@pytest.fixture
def assessment(spec: MigrationSpec) -> FakeAssessment:
    return make_assessment(spec)


@pytest.fixture
def records(spec: MigrationSpec) -> list[Record]:
    return make_records(spec)


@pytest.fixture
def full_store(tmp_path: Path, spec: MigrationSpec):
    """A SQLite store holding shadow records and rollout / embedding events."""
    from changeover.store.responses import add_records

    store = open_store(f"sqlite:///{tmp_path / 'migration.db'}")
    add_records(store, make_records(spec, shadow=True), source="gateway")
    add_migration_events(store)
    yield store
    store.dispose()
