"""Imported responses: add a records file atomically and idempotently, read records back.

A file is validated completely before anything is written, and written in one
transaction, so a bad row leaves the store as it was. A record already stored
(same content fingerprint) is not added again. Labels made in the labelling
app (the ``labels`` table) are merged into the records read back, each with
its annotator (``Record.label_by``): an admin's resolution as a settled answer
(``settled:<admin>``), a gold file's answers (when the caller passes them) as
``settled:gold``, and an annotator's verdict on a gold response as their
verdict beside its settled answer -- the measurement model reads those as
checks of the annotator (stats.model: one noise rate per annotator). A gold
verdict with no settled answer beside it is left out, never a label.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from changeover.errors import StoreError
from changeover.records import OPTIONAL_FIELDS, Record, is_settled, settled_by
from changeover.store.bulk import WRITERS_LOCK, write_rows
from changeover.store.engine import Store, cause
from changeover.store.events import now
from changeover.store.ingest import rows_in, stored_batches
from changeover.store.schema import imports, labels, responses

_BATCH = 2000
LABEL = "label"  # labels.status of a verdict of the decision
GOLD = "gold"  # labels.status of a verdict on a gold response (labeling.gold): a check of the annotator
REVIEW = "review"  # labels.source of an admin's resolution (labeling.resolve)
GOLD_BY = "gold"  # a gold file's answer is the settled answer ``settled:gold``
Answers = Mapping[tuple[str, str], Mapping[str, int]]  # (item, model) -> dimension -> a settled answer


@dataclass(frozen=True, slots=True)
class ImportResult:
    path: str
    rows: int
    added: int

    @property
    def duplicates(self) -> int:
        return self.rows - self.added


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _row(rec: Record, fingerprint: str, source: str | None, at) -> dict:
    payload = {name: getattr(rec, name) for name in OPTIONAL_FIELDS if getattr(rec, name) is not None}
    if rec.extra:
        payload["extra"] = rec.extra
    if rec.label_by:
        payload["label_by"] = rec.label_by
    return {
        "item": rec.item,
        "model": rec.model,
        "segment": rec.segment,
        "signals": rec.signals,
        "labels": rec.labels,
        "payload": payload,
        "fingerprint": fingerprint,
        "source": source,
        "imported_at": at,
    }


def add_records(store: Store, records: Iterable[Record], source: str | None = None) -> tuple[int, int]:
    """Insert records not already stored, in one transaction. Returns (rows, added)."""
    records = list(records)
    with store.engine.begin() as conn:
        added = _insert_new(conn, records, source)
    return len(records), added


def _insert_new(conn: Any, records: list[Record], source: str | None) -> int:
    """Insert, inside ``conn``'s transaction, the records whose fingerprint is not stored yet; returns how many."""
    fingerprints = [r.fingerprint() for r in records]
    at = now()
    existing: set[str] = set()
    for start in range(0, len(fingerprints), _BATCH):
        chunk = fingerprints[start : start + _BATCH]
        existing.update(
            conn.execute(select(responses.c.fingerprint).where(responses.c.fingerprint.in_(chunk))).scalars()
        )
    seen: set[str] = set()
    rows = []
    for rec, fp in zip(records, fingerprints, strict=True):
        if fp in existing or fp in seen:
            continue
        seen.add(fp)
        rows.append(_row(rec, fp, source, at))
    # a record another process stored since the read above is skipped, not an error losing the batch
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    if dialect is postgresql and rows:
        # writers of overlapping rows take turns (until commit): two transactions inserting the same
        # fingerprints in different orders would otherwise deadlock on the unique index, losing one batch
        conn.execute(text(WRITERS_LOCK))
    fresh = dialect.insert(responses).on_conflict_do_nothing(index_elements=[responses.c.fingerprint])
    stored = 0
    for start in range(0, len(rows), _BATCH):
        got = conn.execute(fresh, rows[start : start + _BATCH]).rowcount
        stored += got if got >= 0 else len(rows[start : start + _BATCH])
    return stored


def import_file(store: Store, path: str | Path) -> ImportResult:
    """Store a records file's new rows and the import's log line in one transaction (``store.bulk``:
    COPY on PostgreSQL), validating every row on the way (``store.ingest``); a bad row stores nothing.

    A store that cannot take the write (disk full, read-only, a refused statement, the server gone)
    is a ``StoreError`` naming the file and the database's own reason, never a traceback that
    prints the records; the transaction is rolled back, so nothing of the file is stored.
    """
    path = Path(path)
    doing = f"importing {path}"
    try:
        with store.reachable(doing), store.engine.begin() as conn:
            # a bad line raises RecordsError naming file:line while the rows stream in: the transaction
            # is rolled back, nothing of the file is stored
            rows, added = write_rows(conn, stored_batches(path), str(path), now(), expected=lambda: rows_in(path))
            conn.execute(
                insert(imports).values(
                    path=str(path), file_sha256=file_sha256(path), rows=rows, added=added, imported_at=now()
                )
            )
    except DBAPIError as exc:
        raise StoreError(
            f"{doing}: the store at {store.display_url} refused the write ({cause(exc)}); nothing of the file "
            "was stored - fix the database (space, permissions, triggers) and import again"
        ) from None
    return ImportResult(str(path), rows, added)


def count_responses(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(responses)).scalar_one())


def all_labels(store: Store) -> list[Any]:
    """Every row of the labels table, oldest first (corrections, skips and flags included)."""
    with store.engine.connect() as conn:
        return conn.execute(select(labels).order_by(labels.c.id)).all()


def labels_in_force(store: Store) -> dict[tuple[str, str, str, str], Any]:
    """The label rows that still count, by (item, model, dimension, annotator) (see ``in_force``)."""
    return in_force(all_labels(store))


def in_force(rows: Iterable[Any], status: str = LABEL) -> dict[tuple[str, str, str, str], Any]:
    """Of label rows in id order, those that still count, by (item, model, dimension, annotator).

    A label superseded by a later one (a correction) is dropped; per annotator
    only the latest verdict counts; skips and flags carry no verdict. ``status``
    'gold': the same for the verdicts on gold responses instead.
    """
    rows = list(rows)
    superseded = {r.supersedes for r in rows if r.supersedes is not None}
    return {
        (r.item, r.model, r.dimension, r.annotator): r
        for r in rows
        if r.id not in superseded and r.value is not None and r.status == status
    }


def current_labels(store: Store) -> dict[tuple[str, str, str], list[int]]:
    """App/imported labels still in force: (item, model, dimension) -> verdicts, one per annotator."""
    out: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for (item, model, dim, _annotator), row in labels_in_force(store).items():
        out[(item, model, dim)].append(int(row.value))
    return dict(out)


Verdicts = dict[tuple[str, str, str], list[tuple[str, int]]]


def current_verdicts(store: Store, gold: Answers | None = None) -> Verdicts:
    """What the assessment reads from the labels table: (item, model, dimension) -> (annotator, verdict).

    The labels in force (``in_force``), an admin's resolution named as a settled
    answer (``settled:<admin>``), the answers of a gold file (``gold``, e.g.
    ``labeling.gold.spec_answers``) as ``settled:gold``, and each annotator's
    latest verdict on a gold response (``status`` 'gold'; not in force -- the
    queue, kappa and ``current_labels`` leave them out) -- only beside a settled
    answer on the same response and dimension, where it checks that annotator.
    A gold verdict without its answer (a gold file the caller did not pass) is
    left out: it never becomes a label of the decision.
    """
    rows = all_labels(store)
    out: Verdicts = defaultdict(list)
    for (item, model, dim, who), row in in_force(rows).items():
        out[(item, model, dim)].append((settled_by(who) if row.source == REVIEW else who, int(row.value)))
    for (item, model), answers in (gold or {}).items():
        for dim, value in answers.items():
            out[(item, model, dim)].append((settled_by(GOLD_BY), int(value)))
    for (item, model, dim, who), row in in_force(rows, status=GOLD).items():
        beside = out.get((item, model, dim), [])
        if any(is_settled(by) for by, _ in beside):
            beside.append((who, int(row.value)))
    return dict(out)


def load_records(store: Store, models: Iterable[str] | None = None, gold: Answers | None = None) -> list[Record]:
    """All stored responses as records, app labels (and ``gold`` answers) merged into ``labels``."""
    return load_records_counted(store, models, gold=gold)[0]


def load_records_counted(
    store: Store,
    models: Iterable[str] | None = None,
    source: str | None = None,
    since: Any = None,
    items: Iterable[str] | None = None,
    gold: Answers | None = None,
    verdicts: Verdicts | None = None,
) -> tuple[list[Record], int]:
    """``load_records`` and how many verdicts of the labels table (and ``gold`` answers) it merged in;
    ``source`` / ``since`` keep only records stored from that source / at or after that time (the
    gateway's judged pairs), ``items`` only those of these items (``assessment.pushdown``: the labelled
    ones); ``gold``: the gold file's answers (``current_verdicts``); ``verdicts``: ``current_verdicts``' result,
    read once by a caller that loads records in parts (the labels table is then not read again)."""
    q = select(responses).order_by(responses.c.id)
    if models is not None:
        q = q.where(responses.c.model.in_(list(models)))
    if items is not None:
        q = q.where(responses.c.item.in_(list(items)))
    if source is not None:
        q = q.where(responses.c.source == source)
    if since is not None:
        q = q.where(responses.c.imported_at >= since)
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
    out = []
    for r in rows:
        payload = dict(r.payload or {})
        extra = payload.pop("extra", {})
        out.append(
            Record(
                item=r.item,
                model=r.model,
                segment=dict(r.segment),
                signals=dict(r.signals),
                labels={k: list(v) for k, v in (r.labels or {}).items()},
                extra=extra,
                **payload,
            )
        )
    return out, merge_labels(out, current_verdicts(store, gold) if verdicts is None else verdicts)


def merge_labels(
    records: list[Record], in_force: Mapping[tuple[str, str, str], Sequence[int | tuple[str, int]]]
) -> int:
    """Add the labels in force (``current_labels``) to the records with the same (item, model), in place.

    The one way store labels (made in the labelling app or by ``label import``)
    join records, whether the records come from the store or from a file: each
    verdict in force on (item, model, dimension) is added to the record's
    ``labels[dimension]`` (with its annotator in ``label_by`` when the entry is
    ``(annotator, verdict)``, as ``current_verdicts`` gives; a bare verdict is
    the unnamed annotator's); with repeated samples (``extra.sample``) only to the
    first sample, the response the labelling app shows. Returns how many verdicts were merged (labels on
    responses the records do not hold are not counted).
    """
    by_response: dict[tuple[str, str], dict[str, list[tuple[str, int]]]] = defaultdict(dict)
    for (item, model, dim), verdicts in in_force.items():
        by_response[(item, model)][dim] = [v if isinstance(v, tuple) else ("", int(v)) for v in verdicts]
    merged = 0
    for rec in records:
        if rec.sample != 0:  # an item's repeated samples: the app shows, and labels, its first
            continue
        for dim, verdicts in by_response.get((rec.item, rec.model), {}).items():
            rec.add_labels(dim, [v for _, v in verdicts], [who for who, _ in verdicts])
            merged += len(verdicts)
    return merged


def merge_store_labels(store: Store, records: list[Record], gold: Answers | None = None) -> int:
    """Merge the store's labels in force (and ``gold`` answers) into records read from a file
    (``assess/report --records``)."""
    return merge_labels(records, current_verdicts(store, gold))
