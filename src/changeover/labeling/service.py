"""The labelling service: the app's logic without HTTP (queue, submissions, progress).

It joins the pieces: the task catalogue and value ranking (refreshed in the
background), the claims, the writes to the ``labels`` table, and the
progress summary. The web layer only translates requests to these calls.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from changeover.config import MigrationSpec
from changeover.errors import ChangeoverError
from changeover.labeling.accounts import store_secret
from changeover.labeling.agreement import agreement_json
from changeover.labeling.config import LabelingConfig, labeled_dimensions, labeling_config
from changeover.labeling.gold import (
    GOLD,
    SETTLED,
    Answers,
    Quality,
    check_answers,
    gold_order,
    read_answers,
    settled_answers,
    wants_gold,
)
from changeover.labeling.history import HISTORY, Past, history
from changeover.labeling.progress import (
    Counts,
    annotator_agreement,
    annotator_noise,
    annotator_quality,
    count_by_annotator,
    decision_summary,
    noisy_annotators,
    total_needed,
)
from changeover.labeling.progress import agreement as agreement_by_dimension
from changeover.labeling.queue import Claims, QueueState, candidates, read_state, with_second_labels
from changeover.labeling.ranking import Refresher, Snapshot, rank_from_next_labels
from changeover.labeling.resolve import Resolution, resolve
from changeover.labeling.submit import Submission, SubmitResult, UnknownTaskError, shown, submit
from changeover.labeling.tables import ensure_tables
from changeover.labeling.tasks import Catalogue, Task, stored_responses
from changeover.records import Record
from changeover.stats.stopping import looks_from_labels
from changeover.store import Store
from changeover.store.responses import all_labels, load_records


def looks_for(records: list[Record]) -> int:
    """How many times the live decision has been read: one look per batch of labelled items (stats.stopping).

    The page refits as labels arrive and a team stops at the first GO it reads; counting the looks
    keeps that loop's false GO at 1 - confidence (measured in benchmarks/bench_stopping.py).
    """
    return looks_from_labels(len({r.item for r in records if any(r.labels.values())}))


def assess_snapshot(
    spec: MigrationSpec, cfg: LabelingConfig, records: list[Record], catalogue: Catalogue, dimensions: list[str]
) -> Snapshot:
    """Fit the assessment on the current records; the snapshot keeps any error for the progress page."""
    try:
        from changeover.assess import assess
    except ImportError:
        return Snapshot(
            catalogue,
            error="the assessment core (changeover.assess) is not available; "
            "the queue is in a random order per annotator",
        )
    try:
        result = assess(
            spec,
            records,
            seed=cfg.seed_for(spec),
            draws=cfg.assess_draws,
            chains=cfg.assess_chains,
            next_count=cfg.rank_depth,
            looks=looks_for(records),
        )
    except ChangeoverError as exc:
        return Snapshot(catalogue, error=f"the assessment cannot run yet: {exc}")
    return Snapshot(
        catalogue,
        rank_from_next_labels(list(result.next_labels), dimensions),
        result.decision,
        dict(result.labels_needed),
    )


class LabelingService:
    """Everything the labelling pages and API do, on one store and one spec."""

    def __init__(self, store: Store, spec: MigrationSpec, cfg: LabelingConfig | None = None):
        self.store = store
        self.spec = spec
        self.cfg = cfg or labeling_config(spec)
        self.dimensions = labeled_dimensions(spec, self.cfg)
        ensure_tables(store)
        self._secret = store_secret(store, "task_id_key")
        self.claims = Claims(store, timedelta(minutes=self.cfg.lease_minutes))
        gold = self.cfg.gold
        self._gold_file: Answers = read_answers(gold, spec.path, self.dimensions) if gold else {}
        self._noisy: frozenset[str] = frozenset()  # annotators the last fit found noisy (``noisy_annotators``)
        self.refresher = Refresher(self._compute, self.cfg.refresh_every_labels, self.cfg.refresh_seconds)
        if self._gold_file:
            check_answers(self._gold_file, self.catalogue, f"{spec.path or 'spec'}: labeling.gold.answers")

    def _gold(self) -> Answers:
        """The gold responses and their answers now (the file's, or the admin's settlements)."""
        if self.cfg.gold is None:
            return {}
        if self.cfg.gold.answers == SETTLED:
            return settled_answers(all_labels(self.store))
        return self._gold_file

    # ----------------------------------------------------------------- snapshot

    def _compute(self, full: bool) -> Snapshot:
        catalogue = Catalogue.build(
            stored_responses(self.store, self.spec.models),
            self.spec.models,
            self.dimensions,
            self._secret,
            self.cfg.double_label_share,
            self.cfg.seed_for(self.spec),
        )
        gold = {k: v for k, v in self._gold().items() if k in catalogue.by_key}
        low = annotator_quality(self.store, gold, self.dimensions) if gold else {}
        recheck = frozenset(a for a, q in low.items() if q.to_json()["low"]) | self._noisy
        if not full:
            return Snapshot(catalogue, gold=gold, recheck=recheck)
        records = load_records(self.store, self.spec.models, gold=self._gold_file)  # as `changeover assess` reads
        snap = assess_snapshot(self.spec, self.cfg, records, catalogue, self.dimensions)
        self._noisy = noisy_annotators(snap.decision, self.dimensions)  # kept for the refreshes between fits
        return replace(snap, gold=gold, recheck=recheck | self._noisy)

    @property
    def catalogue(self) -> Catalogue:
        return self.refresher.snapshot.catalogue

    def rubric(self, dimension: str) -> str | None:
        return self.spec.dimensions[dimension].rubric

    def guidelines(self, dimension: str) -> str | None:
        """The dimension's guidelines (``labeling.guidelines``, Markdown), if the spec gives any."""
        return self.cfg.guidelines.get(dimension)

    # ----------------------------------------------------------------- tasks

    def task(self, task_id: str) -> Task:
        task = self.catalogue.by_id.get(task_id)
        if task is None:
            raise UnknownTaskError(f"unknown task {shown(task_id)}; take one from GET /api/next")
        return task

    def task_for(self, item: str, model: str) -> Task:
        cat = self.catalogue
        task = cat.by_key.get((item, model))
        if task is None:
            what = (
                f"item {item!r} has no response from model {model!r}" if item in cat.items else f"unknown item {item!r}"
            )
            raise UnknownTaskError(
                f"{what}; label only imported responses of the spec's models ({', '.join(self.spec.models)})"
            )
        return task

    def next_task(self, annotator: str) -> Task | None:
        """The response this annotator should judge now (leased to them), or None when done."""
        snap = self.refresher.snapshot
        state = read_state(self.store)
        held = self.claims.current(snap.catalogue, annotator, state)
        if held is not None:
            return held
        gold = self._gold_task(annotator, snap.catalogue, snap.gold, state)
        if gold is not None:
            return gold
        catalogue = with_second_labels(snap.catalogue, state, snap.recheck)
        ranked = candidates(catalogue, annotator, snap.rank, self.cfg.rank_window, state, exclude=snap.gold)
        task = self.claims.claim(annotator, ranked)
        if task is None and self.claims.holds(annotator):  # a parallel request of theirs claimed one
            return self.claims.current(snap.catalogue, annotator, read_state(self.store))
        return task

    def _gold_task(self, annotator: str, catalogue: Catalogue, gold: Answers, state: QueueState) -> Task | None:
        """A gold response for this request, if it is one of the ``gold.share`` that get one and one is left
        that this annotator never handled (blind: nothing tells it apart)."""
        if self.cfg.gold is None or not gold:
            return None
        mine = state.touched.get(annotator, set())
        if not wants_gold(self.cfg.gold.share, self.cfg.seed_for(self.spec), annotator, len(mine)):
            return None
        left = [
            catalogue.by_key[k]
            for k in gold_order(gold, annotator)
            if k not in mine and annotator not in state.claimed.get(k, ())
        ]
        return self.claims.claim_gold(annotator, left) if left else None

    def remaining(self) -> int:
        """Verdicts still wanted over all responses (a response for two annotators counts twice; gold ones
        want none)."""
        state = read_state(self.store)
        gold = self.refresher.snapshot.gold
        return sum(state.remaining(t) for t in self.catalogue.by_key.values() if t.key not in gold)

    # ----------------------------------------------------------------- labels

    def submit(self, annotator: str, task: Task, sub: Submission) -> SubmitResult:
        """Store a submission; a verdict on a gold response is stored as a gold check (not a label of the
        decision), so it does not wake the refit either."""
        if sub.status == "label" and task.key in self.refresher.snapshot.gold:
            sub = replace(sub, status=GOLD)
        result = submit(self.store, annotator, task, self.dimensions, sub)
        if not result.duplicate and sub.status == "label":
            self.refresher.labels_added()
        return result

    def resolve(self, admin: str, task: Task, res: Resolution) -> dict[str, Any]:
        """The admin's resolution of ``task`` (see ``labeling.resolve``); the queue refits after it."""
        payload = resolve(self.store, admin, task, res)
        if res.verdicts:
            self.refresher.labels_added()
        return payload

    def history(self, annotator: str, limit: int = HISTORY) -> list[Past]:
        """The annotator's recent submissions still in force, newest first: what 'undo' can correct."""
        return history(self.store, self.catalogue, annotator, limit)

    def submission(self, annotator: str, client_id: str | None = None) -> Past | None:
        """One of the annotator's recent submissions (the latest when ``client_id`` is None), or None."""
        for past in self.history(annotator):
            if client_id is None or past.client_id == client_id:
                return past
        return None

    # ----------------------------------------------------------------- progress

    def quality(self) -> dict[str, Quality]:
        """Per annotator: agreement with the gold answers and with the other annotators' majority."""
        return annotator_quality(self.store, self.refresher.snapshot.gold, self.dimensions)

    def progress(self, annotator: str | None = None) -> dict[str, Any]:
        """Counts for one annotator (their own page) or, for the admin (None), the whole panel."""
        per, team = count_by_annotator(self.store)
        snap = self.refresher.snapshot
        out: dict[str, Any] = {
            "team": team.to_json(),
            "remaining": self.remaining(),  # verdicts still open over the stored responses (not the decision's need)
            "responses": len(self.catalogue),
            "labels_needed": total_needed(snap.labels_needed) if snap.decision is not None else None,
        }
        if annotator is not None:
            out["you"] = per.get(annotator, Counts()).to_json()
            return out
        with_others = annotator_agreement(self.store, self.dimensions)
        checked = self.quality()
        noise = annotator_noise(snap.decision, self.dimensions)
        out["annotators"] = {
            a: {
                **c.to_json(),
                "agreement": agreement_json(with_others[a]) if a in with_others else None,
                "quality": checked.get(a, Quality()).to_json(),
                "noise": noise.get(a, []),
            }
            for a, c in per.items()
        }
        out["gold"] = {"responses": len(snap.gold), "share": self.cfg.gold.share if self.cfg.gold else 0.0}
        kappas = agreement_by_dimension(self.store, self.dimensions)
        out["agreement"] = {d: agreement_json(a) for d, a in kappas.items()}
        summary = (
            decision_summary(snap.decision, snap.labels_needed, self.dimensions)
            if snap.decision is not None
            else {"verdict": None, "candidates": [], "lines": [], "labels_needed": None}
        )
        out["decision"] = {
            **summary,
            "updated_at": snap.at.isoformat(),
            "error": snap.error,
            "ranked": len(snap.rank),
        }
        return out
