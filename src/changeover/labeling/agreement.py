"""Agreement between annotators, as the progress page shows it.

Per dimension: pairwise agreement and Fleiss' kappa over the responses with
two or more verdicts in force (``stats.agreement``, the one definition the
report uses too). Per annotator: the share of their verdicts that match
another annotator's on the same response and dimension.
"""

from __future__ import annotations

from typing import Any

from changeover.stats.agreement import Agreement, fleiss_kappa

__all__ = ["Agreement", "agreement_by_annotator", "agreement_json", "kappa_by_dimension"]


def agreement_json(a: Agreement) -> dict[str, Any]:
    return {"responses": a.responses, "pairs": a.pairs, "observed": a.observed, "kappa": a.kappa}


def kappa_by_dimension(verdicts: dict[tuple[str, str, str], list[int]], dimensions: list[str]) -> dict[str, Agreement]:
    """Per dimension, Fleiss' kappa over (item, model) responses with at least two verdicts."""
    lists: dict[str, list[list[int]]] = {d: [] for d in dimensions}
    for (_item, _model, dim), values in verdicts.items():
        if dim in lists:
            lists[dim].append(list(values))
    return {d: fleiss_kappa(v) for d, v in lists.items()}


def agreement_by_annotator(verdicts: dict[tuple[str, str, str, str], int]) -> dict[str, Agreement]:
    """Per annotator: the share of their verdicts that match another annotator's on the same response
    and dimension, over every such pair (``verdicts``: (item, model, dimension, annotator) -> 1/0).
    ``kappa`` is left None: with one rater against many, the share is what is read."""
    units: dict[tuple[str, str, str], dict[str, int]] = {}
    for (item, model, dim, annotator), value in verdicts.items():
        units.setdefault((item, model, dim), {})[annotator] = value
    same: dict[str, list[bool]] = {}
    shared: dict[str, int] = {}
    for by in units.values():
        if len(by) < 2:
            continue
        for a, v in by.items():
            shared[a] = shared.get(a, 0) + 1
            same.setdefault(a, []).extend(v == w for b, w in by.items() if b != a)
    return {a: Agreement(shared[a], len(s), sum(s) / len(s), None) for a, s in sorted(same.items())}
