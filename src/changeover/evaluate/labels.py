"""Which items humans should label next: ``assess``'s ranking, or signal disagreements when it cannot run."""

from __future__ import annotations

import random
import warnings
from typing import Any

from changeover.config import MigrationSpec
from changeover.errors import ChangeoverError
from changeover.records import Record

LABEL_FIT = {"draws": 150, "warmup": 150, "chains": 2}


def pick_labels(
    spec: MigrationSpec, records: list[Record], budget: int, seed: int, fit: dict[str, int] | None = None
) -> tuple[list[dict[str, Any]], str]:
    """The items a human should label next: ``assess``'s ranking, or disagreements when it cannot run.

    ``fit``: sampler settings passed to ``assess``; ranking needs less precision than a verdict,
    so the default is a lighter fit (``LABEL_FIT``).
    """
    if budget <= 0:
        return [], ""
    try:
        from changeover.assess import assess

        with warnings.catch_warnings():  # a light fit for ranking; its convergence note is not the user's
            warnings.simplefilter("ignore")
            settings = {**LABEL_FIT, **(fit or {})}
            assessment = assess(
                spec,
                records,
                seed=seed,
                next_count=budget,
                draws=settings["draws"],
                warmup=settings["warmup"],
                chains=settings["chains"],
            )
        return list(assessment.next_labels[:budget]), "assess.next_labels"
    except (ChangeoverError, ImportError) as exc:
        return disagreements(spec, records, budget, seed), f"signal disagreements ({exc})"


def disagreements(spec: MigrationSpec, records: list[Record], budget: int, seed: int) -> list[dict[str, Any]]:
    """Fallback: (item, candidate, dimension) where a candidate's signal differs from the incumbent's."""
    by = {(r.item, r.model): r for r in records}
    rng = random.Random(seed)
    rows = []
    for r in records:
        if r.model == spec.incumbent:
            continue
        inc = by.get((r.item, spec.incumbent))
        for dim, d in spec.dimensions.items():
            differs = False
            for signal in d.signal_names:
                mine, theirs = r.signals.get(signal), inc.signals.get(signal) if inc else None
                differs = differs or mine is None or theirs is None or mine != theirs
            rows.append((0 if differs else 1, rng.random(), {"item": r.item, "model": r.model, "dimension": dim}))
    rows.sort(key=lambda t: (t[0], t[1]))
    return [row for _, _, row in rows[:budget]]


def label_rows(to_label: list[dict[str, Any]], records: list[Record]) -> list[dict[str, Any]]:
    """Rows for the labelling export: what to judge, with the request and the response (and an agent's calls)."""
    by = {(r.item, r.model): r for r in records}
    out = []
    for want in to_label:
        rec = by.get((want["item"], want["model"]))
        if rec is None:
            continue
        row = {
            "item": rec.item,
            "model": rec.model,
            "dimension": want["dimension"],
            "segment": rec.segment,
            "prompt": rec.prompt,
            "response": rec.response,
            "reference": rec.reference,
        }
        if "tool_calls" in rec.extra:  # an agent's answer is also what it called
            row["tool_calls"] = rec.extra["tool_calls"]
            row["tool_status"] = rec.extra.get("tool_status")
        out.append(row)
    return out
