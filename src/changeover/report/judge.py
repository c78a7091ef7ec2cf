"""Judge calibration: per dimension and model, how the automated signal relates to the
human verdict — how often it passes bad answers and fails good ones — and whether it is
kinder to one model than another (the bias the measurement model corrects).

The confusion matrices come from the posterior (``PairPosterior.judge``); when a pair is
missing, the decision's ``diagnostics.judge`` stands in.
Counts on the labelled responses are shown next to them, so a reader can check.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from markupsafe import Markup

from changeover.assessment.result import Decision
from changeover.config import MigrationSpec
from changeover.records import Record
from changeover.report import plots
from changeover.report.formatting import pct
from changeover.report.labels import human_verdict

KINDER_GAP = 0.05  # a difference in false-pass rates worth pointing out to a reader


@dataclass(slots=True)
class JudgeModel:
    """The judge's behaviour on one model's responses for one dimension."""

    model: str
    confusion: np.ndarray  # [2, K]: P(signal level k | human verdict z)
    passes_bad: float  # P(signal says pass | human says not acceptable)
    fails_good: float  # P(signal says fail | human says acceptable)
    labelled: int  # labelled responses with a signal
    agreement: float | None  # observed judge-human agreement on them (binary signals)
    heatmap_svg: Markup


@dataclass(slots=True)
class JudgeDimension:
    dimension: str
    levels: list[str]
    models: list[JudgeModel] = field(default_factory=list)
    note: str | None = None


def confusion_from_any(value: Any) -> np.ndarray | None:
    """A [2, K] matrix (row 0: human says not acceptable) from what an assessment reports:
    an array-like, ``{'sensitivity', 'specificity'}`` for a binary signal, or
    ``{'confusion': {'not_acceptable': [...], 'acceptable': [...]}}`` for an ordinal one."""
    if isinstance(value, dict):
        if "sensitivity" in value and "specificity" in value:
            se, sp = float(value["sensitivity"]), float(value["specificity"])
            return np.array([[sp, 1 - sp], [1 - se, se]])
        if "acceptable" in value and "not_acceptable" in value:
            return confusion_from_any([value["not_acceptable"], value["acceptable"]])
        for key in ("confusion", "matrix", "phi"):
            if key in value:
                return confusion_from_any(value[key])
        return None
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return None
    if arr.ndim != 2 or arr.shape[0] != 2 or arr.shape[1] < 2:
        return None
    return arr


def pass_levels(k: int) -> np.ndarray:
    """Which signal levels count as a 'pass': the upper half (for binary, level 1)."""
    return np.arange(k) >= k / 2


def _level_names(k: int) -> list[str]:
    return ["fail", "pass"] if k == 2 else [str(i + 1) for i in range(k)]


def _observed(records: Iterable[Record], dimension: str, signal: str) -> dict[str, tuple[int, float | None]]:
    """Per model: labelled responses with a signal, and the share where a binary signal
    matches the majority human verdict (None when the signal is not binary)."""
    seen: dict[str, list[int]] = {}
    binary: dict[str, bool] = {}
    for r in records:
        verdicts = r.labels.get(dimension)
        value = r.signals.get(signal)
        if not verdicts or value is None:
            continue
        n_agree = seen.setdefault(r.model, [0, 0])
        n_agree[0] += 1
        is_binary = isinstance(value, int) and value in (0, 1)
        binary[r.model] = binary.get(r.model, True) and is_binary
        n_agree[1] += int(is_binary and value == human_verdict(verdicts))
    return {m: (n, a / n if binary[m] else None) for m, (n, a) in seen.items()}


def judge_sections(
    decision: Decision, pairs: dict[tuple[str, str], Any], spec: MigrationSpec, records: list[Record]
) -> list[JudgeDimension]:
    """One calibration block per dimension with a matrix for every model."""
    diag = decision.diagnostics.judge
    dims = list(spec.dimensions)
    out = []
    for dim in dims:
        matrices: dict[str, np.ndarray] = {}
        for cand in spec.candidates:
            pair = pairs.get((cand, dim))
            for model, conf in (getattr(pair, "judge", None) or {}).items():
                m = confusion_from_any(conf)
                if m is not None:
                    matrices.setdefault(model, m)
        for model, judge in (diag.get(dim) or {}).items():
            matrices.setdefault(model, np.asarray(judge.matrix, float))
        if not matrices:
            continue
        k = next(iter(matrices.values())).shape[1]
        signal = spec.dimensions[dim].signal or dim
        observed = _observed(records, dim, signal)
        block = JudgeDimension(dim, _level_names(k))
        order = [m for m in spec.models if m in matrices] + [m for m in matrices if m not in spec.models]
        for model in order:
            conf = matrices[model]
            conf = conf / np.clip(conf.sum(axis=1, keepdims=True), 1e-12, None)
            up = pass_levels(conf.shape[1])
            n, agreement = observed.get(model, (0, None))
            block.models.append(
                JudgeModel(
                    model,
                    conf,
                    float(conf[0, up].sum()),
                    float(conf[1, ~up].sum()),
                    n,
                    agreement,
                    plots.heatmap(
                        conf,
                        ["human: not OK", "human: OK"],
                        _level_names(conf.shape[1]),
                        label=f"{dim} judge confusion on {model}",
                        title=model,
                    ),
                )
            )
        block.note = kinder_note(block, spec.incumbent)
        out.append(block)
    return out


def kinder_note(block: JudgeDimension, incumbent: str) -> str | None:
    """A sentence when the judge passes bad answers of one model clearly more often."""
    if len(block.models) < 2:
        return None
    lenient = max(block.models, key=lambda m: m.passes_bad)
    strict = min(block.models, key=lambda m: m.passes_bad)
    if lenient.passes_bad - strict.passes_bad < KINDER_GAP:
        low, high = pct(strict.passes_bad, 0), pct(lenient.passes_bad, 0)
        share = f"about {low}" if low == high else f"{low}–{high}"
        return (
            f"The judge treats the models alike on {block.dimension}: it passes {share} of the bad "
            "answers of every model."
        )
    who = "the incumbent" if lenient.model == incumbent else lenient.model
    return (
        f"The judge is kinder to {who} on {block.dimension}: it passes {pct(lenient.passes_bad, 0)} of "
        f"{lenient.model}'s bad answers but only {pct(strict.passes_bad, 0)} of {strict.model}'s. "
        "Judge scores alone would flatter it; the assessment corrects for this with the human labels "
        "on each model."
    )
