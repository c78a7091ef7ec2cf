"""What an evaluation produced: per-arm call statistics and the result object with its summary."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from changeover.config import MigrationSpec
from changeover.prompts import Arm
from changeover.providers import Completion
from changeover.records import Record


@dataclass
class ArmStats:
    """Calls made and served from the cache, errors, request rejections, and summed latency, tokens, cost.

    A rejection (the endpoint refused a request parameter, e.g. ``max_tokens``) is counted apart
    from errors: it says the request needs a ``param_map``, not that the model failed.
    """

    calls: int = 0
    cached: int = 0
    errors: int = 0
    rejected: int = 0
    latency_ms: float = 0.0
    tokens_in: float = 0.0
    tokens_out: float = 0.0
    cost_usd: float = 0.0

    def add(self, c: Completion, cached: bool) -> None:
        self.cached += cached
        self.calls += not cached
        self.rejected += c.rejection is not None
        self.errors += not c.ok and c.rejection is None
        self.latency_ms += c.latency_ms or 0.0
        self.tokens_in += c.tokens_in or 0
        self.tokens_out += c.tokens_out or 0
        self.cost_usd += c.cost_usd or 0.0


@dataclass
class EvaluationResult:
    """What an evaluation produced: records for ``assess``, items to label, and run statistics."""

    records: list[Record]
    arms: list[Arm]
    spec_for_assess: MigrationSpec
    arm_stats: dict[str, ArmStats]
    judge_stats: dict[str, Counter[str]]
    to_label: list[dict[str, Any]] = field(default_factory=list)
    label_source: str = ""
    judge_calls: dict[str, ArmStats] = field(default_factory=dict)  # per LLM-judged signal

    def summary(self) -> dict[str, Any]:
        signals: dict[str, dict[str, float | None]] = defaultdict(dict)
        tool_status: dict[str, Counter[str]] = defaultdict(Counter)
        for arm in self.arms:
            recs = [r for r in self.records if r.model == arm.name]
            for sig in self.judge_stats:
                vals = [float(v) for r in recs if (v := r.signals.get(sig)) is not None]
                signals[arm.name][sig] = round(sum(vals) / len(vals), 4) if vals else None
            for r in recs:
                if "tool_status" in r.extra:
                    tool_status[arm.name][r.extra["tool_status"]] += 1
        return {
            "items": len({r.item for r in self.records}),
            "samples": max((int(r.extra.get("sample", 0)) for r in self.records), default=0) + 1,
            "arms": [
                {
                    "name": a.name,
                    "model": a.model,
                    "prompt_for": a.prompt_for,
                    **rounded(vars(self.arm_stats[a.name])),
                    "signal_means": signals[a.name],
                    **({"tool_status": dict(tool_status[a.name])} if tool_status[a.name] else {}),
                    **({"rejections": rejections(self.records, a.name)} if self.arm_stats[a.name].rejected else {}),
                    **({"empty_answers": empty} if (empty := empty_answers(self.records, a.name)) else {}),
                }
                for a in self.arms
            ],
            "judges": {
                s: {**dict(c), **({"calls": rounded(vars(self.judge_calls[s]))} if s in self.judge_calls else {})}
                for s, c in self.judge_stats.items()
            },
            "incumbent": self.spec_for_assess.incumbent,
            "candidates": self.spec_for_assess.candidates,
            "to_label": len(self.to_label),
            "label_source": self.label_source,
        }


def rejections(records: list[Record], arm: str) -> list[dict[str, Any]]:
    """The distinct request rejections of one arm, with how many records each one hit."""
    seen: Counter[tuple[str, str, str]] = Counter()
    for r in records:
        rej = r.extra.get("rejected") if r.model == arm else None
        if rej:
            seen[(rej.get("param") or "", rej.get("reason") or "", rej.get("suggest") or "")] += 1
    return [
        {"param": p or None, "reason": why, "suggest": s or None, "records": n} for (p, why, s), n in seen.most_common()
    ]


def empty_answers(records: list[Record], arm: str) -> dict[str, int]:
    """How many of one arm's answers were empty (no content, no tool call), by finish reason."""
    return dict(Counter(str(r.extra["empty_answer"]) for r in records if r.model == arm and "empty_answer" in r.extra))


def rounded(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in stats.items()}
