"""Agreement between annotators: Cohen's kappa on responses judged by two of them, and each
annotator's observed agreement with the others.

kappa = (p_o - p_e) / (1 - p_e), where p_o is the share of pairs that agree and
p_e the agreement expected by chance from each rater's own rate of 1s. For a
unit judged by more than two annotators the first two verdicts form the pair.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Agreement:
    pairs: int
    observed: float | None  # share of pairs that agree
    kappa: float | None  # None when undefined (no pairs, or both raters constant and equal)

    def to_json(self) -> dict[str, float | int | None]:
        return {"pairs": self.pairs, "observed": self.observed, "kappa": self.kappa}


def cohen_kappa(pairs: Iterable[tuple[int, int]]) -> Agreement:
    pairs = list(pairs)
    n = len(pairs)
    if n == 0:
        return Agreement(0, None, None)
    p_o = sum(a == b for a, b in pairs) / n
    p1 = sum(a for a, _ in pairs) / n
    p2 = sum(b for _, b in pairs) / n
    p_e = p1 * p2 + (1 - p1) * (1 - p2)
    kappa = None if p_e >= 1.0 else (p_o - p_e) / (1 - p_e)
    return Agreement(n, p_o, kappa)


def kappa_by_dimension(verdicts: dict[tuple[str, str, str], list[int]], dimensions: list[str]) -> dict[str, Agreement]:
    """Per dimension, kappa over (item, model) units with at least two verdicts."""
    pairs: dict[str, list[tuple[int, int]]] = {d: [] for d in dimensions}
    for (_item, _model, dim), values in verdicts.items():
        if dim in pairs and len(values) >= 2:
            pairs[dim].append((values[0], values[1]))
    return {d: cohen_kappa(p) for d, p in pairs.items()}


def agreement_by_annotator(verdicts: dict[tuple[str, str, str, str], int]) -> dict[str, Agreement]:
    """Per annotator: the share of their verdicts that match another annotator's on the same response
    and dimension, over every such pair (``verdicts``: (item, model, dimension, annotator) -> 1/0).
    ``kappa`` is left None: with one rater against many, the share is what is read."""
    units: dict[tuple[str, str, str], dict[str, int]] = {}
    for (item, model, dim, annotator), value in verdicts.items():
        units.setdefault((item, model, dim), {})[annotator] = value
    same: dict[str, list[bool]] = {}
    for by in units.values():
        for a, v in by.items():
            for b, w in by.items():
                if a != b:
                    same.setdefault(a, []).append(v == w)
    return {a: Agreement(len(s), sum(s) / len(s), None) for a, s in sorted(same.items())}
