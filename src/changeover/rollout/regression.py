"""The ``p_regression`` trigger: the assessment core's posterior probability that the candidate regresses.

With ``shadow.judge`` on, the records are the judged pairs of the window as the
judging worker stored them (the spec's judges, the same records ``changeover
assess`` reads; ``min_samples`` counts judged pairs); otherwise the window's
mirrored pairs become records with the gateway's deterministic signals
(``shadowlog.export``). Human labels already in the store are merged in, and
``changeover.assess.assess`` gives the posterior of each required dimension's
overall delta; the trigger's value is the largest ``P(delta < -margin)``. When
the core is missing or cannot assess these records, the measurement is an
``error`` (Argo's own budget), never a pass.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from changeover.config import MigrationSpec
from changeover.labeling.gold import spec_answers
from changeover.records import Record
from changeover.rollout.config import Trigger
from changeover.rollout.measure import EquivalenceReading, Window
from changeover.shadowlog.export import JUDGED_SOURCE, pair_records
from changeover.store import Store
from changeover.store.responses import Answers, load_records_counted, merge_store_labels


def judged_records(
    store: Store, incumbent: str, candidate: str, window: Window, gold: Answers | None = None
) -> list[Record]:
    """The stored judged records of the window's pairs (labels and the ``gold`` answers merged), both models
    of each pair."""
    if not window.pairs:
        return []
    ids = {p.incumbent.request_id for p in window.pairs}
    since = min(p.incumbent.at for p in window.pairs)
    recs, _ = load_records_counted(store, [incumbent, candidate], source=JUDGED_SOURCE, since=since, gold=gold)
    recs = [r for r in recs if r.item in ids]
    both = {r.item for r in recs if r.model == incumbent} & {r.item for r in recs if r.model == candidate}
    return [r for r in recs if r.item in both]


def window_records(store: Store, spec: MigrationSpec, window: Window) -> list[Record]:
    """The window's pairs with the gateway's deterministic signals, human labels merged as ``changeover assess``
    merges them (``merge_store_labels``: annotators named, settled and gold answers beside the verdicts)."""
    records = pair_records(window.pairs)
    merge_store_labels(store, records, spec_answers(spec))
    return records


def equivalence_signal(spec: MigrationSpec) -> tuple[str, str] | None:
    """(signal, rubric) of the spec's LLM judge for semantic equivalence: the comparison judge (its signal is 1
    for equivalent or candidate better), else the equivalence judge; None: there is neither."""
    from changeover.judges import judge_configs

    llm = {s: c.rubric for s, c in judge_configs(spec).items() if c.kind == "llm"}
    return next(((s, r) for r in ("comparison", "equivalence") for s, rr in llm.items() if rr == r), None)


def equivalence_for(
    spec: MigrationSpec, store: Store, incumbent: str, candidate: str
) -> Callable[[Window], EquivalenceReading] | None:
    """The ``semantic_equivalence`` trigger on judged pairs: the share of the window's judged candidate
    answers the comparison judge called equivalent or better (or the equivalence judge called the same)
    as the incumbent's (unscorable ones left out), and which judge; None when the spec has no such judge."""
    found = equivalence_signal(spec)
    if found is None:
        return None
    signal, rubric = found
    method = f"llm judge '{signal}' ({rubric} rubric)"

    def rate(window: Window) -> EquivalenceReading:
        values = [
            r.signals[signal]
            for r in judged_records(store, incumbent, candidate, window)
            if r.model == candidate and r.signals.get(signal) is not None
        ]
        return (sum(values) / len(values) if values else None), len(values), method

    return rate


def regression_for(
    spec: MigrationSpec, store: Store, incumbent: str, candidate: str, draws: int = 400, judged: bool = False
) -> Callable[[Trigger, Window], tuple[float | None, int]]:
    def p_regression(trigger: Trigger, window: Window) -> tuple[float | None, int]:
        records = judged_records(store, incumbent, candidate, window, spec_answers(spec)) if judged else None
        n = len(records) // 2 if records is not None else len(window.pairs)
        if n < trigger.min_samples:
            return None, n
        try:
            from changeover.assess import assess
        except ImportError as exc:
            raise RuntimeError(f"the assessment core is not available ({exc})") from None
        if records is None:
            records = window_records(store, spec, window)
        sub = spec.model_copy(update={"candidates": [candidate]})
        assessment = assess(sub, records, draws=draws, chains=2, seed=spec.seed)
        dims = [trigger.dimension] if trigger.dimension else [d for d, v in spec.dimensions.items() if v.required]
        p = max(
            float(np.mean(assessment.pairs[(candidate, d)].delta_overall < -spec.dimensions[d].margin)) for d in dims
        )
        return p, n

    return p_regression
