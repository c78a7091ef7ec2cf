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

A fit is reused until what it was fitted on changes: the window's pairs
(``Window.version``), the store's labels (how many, the newest) and, judged,
the judged records (how many, the newest) - three small aggregate queries per
run instead of a fit every tick.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import numpy as np
from sqlalchemy import func, select

from changeover.config import MigrationSpec
from changeover.labeling.gold import spec_answers
from changeover.records import Record
from changeover.rollout.config import Trigger
from changeover.rollout.measure import EquivalenceReading, Window
from changeover.shadowlog.export import JUDGED_SOURCE, pair_records
from changeover.store import Store
from changeover.store.responses import Answers, load_records_counted, merge_store_labels
from changeover.store.schema import labels, responses


def judged_records(
    store: Store, incumbent: str, candidate: str, window: Window, gold: Answers | None = None
) -> list[Record]:
    """The stored judged records of the window's pairs (labels and the ``gold`` answers merged), both models
    of each pair."""
    if not window.keys:
        return []
    ids = {k.request_id for k in window.keys}
    since = min(k.at for k in window.keys)
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


def judged_verdicts(store: Store, incumbent: str, candidate: str, window: Window, signal: str) -> list[int]:
    """The candidate's stored verdicts on ``signal`` for the window's judged pairs (both models judged;
    unscorable ones left out), read in SQL: the records' signals only, never their texts."""
    if not window.keys:
        return []
    ids = {k.request_id for k in window.keys}
    r = responses.c
    q = select(r.item, r.model, r.signals).where(
        r.source == JUDGED_SOURCE, r.imported_at >= min(k.at for k in window.keys), r.model.in_([incumbent, candidate])
    )
    with store.engine.connect() as conn:
        rows = [row for row in conn.execute(q.order_by(r.id)) if row.item in ids]
    both = {row.item for row in rows if row.model == incumbent}
    return [
        int(v)
        for row in rows
        if row.model == candidate and row.item in both and (v := (row.signals or {}).get(signal)) is not None
    ]


class JudgedEquivalence:
    """The ``semantic_equivalence`` trigger on judged pairs (``equivalence_for``): the share of the window's
    judged candidate answers the comparison judge called equivalent or better (or the equivalence judge
    called the same) as the incumbent's, and which judge; reread only when the window or the judged
    records changed."""

    def __init__(self, store: Store, incumbent: str, candidate: str, signal: str, rubric: str):
        self.store, self.incumbent, self.candidate, self.signal = store, incumbent, candidate, signal
        self.method = f"llm judge '{signal}' ({rubric} rubric)"
        self._last: tuple[Hashable, EquivalenceReading] | None = None

    def __call__(self, window: Window) -> EquivalenceReading:
        key = (window.version, store_version(self.store, labelled=False, judged=True))
        if self._last is None or self._last[0] != key:
            values = judged_verdicts(self.store, self.incumbent, self.candidate, window, self.signal)
            self._last = key, ((sum(values) / len(values) if values else None), len(values), self.method)
        return self._last[1]


def equivalence_for(
    spec: MigrationSpec, store: Store, incumbent: str, candidate: str
) -> Callable[[Window], EquivalenceReading] | None:
    """The judged ``semantic_equivalence`` of the spec's LLM judge (``JudgedEquivalence``); None when the spec
    has neither a comparison nor an equivalence judge."""
    found = equivalence_signal(spec)
    return None if found is None else JudgedEquivalence(store, incumbent, candidate, *found)


def store_version(store: Store, labelled: bool = True, judged: bool = False) -> Hashable:
    """What in the store a reading depends on besides the window: the labels (append-only: a correction or
    a flag is a new row) and, ``judged``, the judging worker's records (insert-only), each as (rows, newest)."""
    version = [select(func.count(), func.max(labels.c.id), func.max(labels.c.created_at))] if labelled else []
    if judged:
        version.append(select(func.count(), func.max(responses.c.id)).where(responses.c.source == JUDGED_SOURCE))
    with store.engine.connect() as conn:
        return tuple(tuple(conn.execute(q).one()) for q in version)


class Regression:
    """The ``p_regression`` measure of one candidate (``regression_for``), with its last fit per trigger."""

    def __init__(self, spec: MigrationSpec, store: Store, incumbent: str, candidate: str, draws: int, judged: bool):
        self.spec, self.store, self.incumbent, self.candidate = spec, store, incumbent, candidate
        self.draws, self.judged = draws, judged
        self.fits = 0  # assessments run (a reading reused from the last fit is not one)
        self._last: dict[str, tuple[Hashable, tuple[float | None, int]]] = {}

    def __call__(self, trigger: Trigger, window: Window) -> tuple[float | None, int]:
        key = (window.version, store_version(self.store, judged=self.judged))
        last = self._last.get(trigger.name)
        if last is not None and last[0] == key:
            return last[1]
        reading = self._measure(trigger, window)
        self._last[trigger.name] = (key, reading)
        return reading

    def _measure(self, trigger: Trigger, window: Window) -> tuple[float | None, int]:
        spec, candidate = self.spec, self.candidate
        records = (
            judged_records(self.store, self.incumbent, candidate, window, spec_answers(spec)) if self.judged else None
        )
        n = len(records) // 2 if records is not None else len(window.keys)
        if n < trigger.min_samples:
            return None, n
        try:
            from changeover.assess import assess
        except ImportError as exc:
            raise RuntimeError(f"the assessment core is not available ({exc})") from None
        if records is None:
            records = window_records(self.store, spec, window)
        sub = spec.model_copy(update={"candidates": [candidate]})
        self.fits += 1
        assessment = assess(sub, records, draws=self.draws, chains=2, seed=spec.seed)
        dims = [trigger.dimension] if trigger.dimension else [d for d, v in spec.dimensions.items() if v.required]
        p = max(
            float(np.mean(assessment.pairs[(candidate, d)].delta_overall < -spec.dimensions[d].margin)) for d in dims
        )
        return p, n


def regression_for(
    spec: MigrationSpec, store: Store, incumbent: str, candidate: str, draws: int = 400, judged: bool = False
) -> Regression:
    """The ``p_regression`` measure: ``(P(regression), pairs)`` of a trigger on a window (``None``: too few)."""
    return Regression(spec, store, incumbent, candidate, draws, judged)
