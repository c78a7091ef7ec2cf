"""The re-embedding job: embed every document with a model into that model's own index rows.

Resumable by construction: a batch's vectors and the job's progress commit in
one transaction, and a run embeds exactly the documents that have no vector
for the target version yet, so a run killed at any point (even SIGKILL) and
started again neither redoes nor skips a document. Batches go through a token
bucket; a failing batch is retried with backoff, then split so one bad
document cannot sink its neighbours; documents that still fail are recorded
and listed, never silently skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Connection, delete, insert, select, update

from changeover.embeddings.corpus import Document
from changeover.embeddings.index import VectorIndex
from changeover.embeddings.progress import embedding_progress
from changeover.embeddings.ratelimit import TokenBucket
from changeover.embeddings.schema import failures, jobs
from changeover.providers.embedders import Encoder
from changeover.store.events import append_event, now

SUBJECT = "embeddings:{version}"


@dataclass
class ReembedResult:
    version: str
    total: int
    already: int  # documents embedded by earlier runs
    embedded: int  # documents embedded by this run
    failed: dict[str, str] = field(default_factory=dict)  # doc id -> last error
    seconds: float = 0.0
    rate_waited: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.failed and self.already + self.embedded >= self.total

    @property
    def docs_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict:
        return {
            "version": self.version,
            "total": self.total,
            "already": self.already,
            "embedded": self.embedded,
            "failed": self.failed,
            "complete": self.complete,
            "seconds": round(self.seconds, 3),
            "docs_per_second": round(self.docs_per_second, 2),
            "rate_waited_seconds": round(self.rate_waited, 3),
        }


def _encode_with_retry(
    encode: Callable[[list[str]], np.ndarray], texts: list[str], retries: int, backoff: float
) -> np.ndarray:
    for attempt in range(retries + 1):
        try:
            out = np.asarray(encode(texts), dtype=np.float32)
            if out.shape[0] != len(texts) or not np.all(np.isfinite(out)):
                raise ValueError("encoder returned a wrong shape or non-finite values")
            return out
        except Exception:
            if attempt == retries:
                raise
            time.sleep(backoff * (2**attempt))
    raise AssertionError("unreachable")


def _embed_batch(
    encoder: Encoder, docs: Sequence[Document], retries: int, backoff: float
) -> tuple[list[str], np.ndarray | None, dict[str, str]]:
    """(ids embedded, their vectors, {id: error} for documents that failed every retry)."""
    texts = [d.text for d in docs]
    try:
        return [d.id for d in docs], _encode_with_retry(encoder.encode_documents, texts, retries, backoff), {}
    except Exception as exc:  # noqa: BLE001 - any encoder failure is recorded, not raised
        if len(docs) == 1:
            return [], None, {docs[0].id: f"{type(exc).__name__}: {exc}"[:500]}
    ok_ids: list[str] = []
    ok_vecs: list[np.ndarray] = []
    bad: dict[str, str] = {}
    for d in docs:  # split: find the bad documents, keep the good ones
        ids, vecs, errs = _embed_batch(encoder, [d], retries, backoff)
        bad.update(errs)
        if vecs is not None:
            ok_ids += ids
            ok_vecs.append(vecs)
    return ok_ids, (np.concatenate(ok_vecs) if ok_vecs else None), bad


def _start_job(
    conn: Connection, version: str, total: int, done: int, source: str | None, actor: str, reason: str | None
) -> bool:
    """Create or resume the job row; returns True when resuming."""
    at = now()
    row = conn.execute(select(jobs).where(jobs.c.model_version == version)).first()
    if row is None:
        conn.execute(
            insert(jobs).values(
                model_version=version,
                state="running",
                total=total,
                done=done,
                failed=0,
                runs=1,
                source=source,
                started_at=at,
                updated_at=at,
            )
        )
    else:
        conn.execute(
            update(jobs)
            .where(jobs.c.model_version == version)
            .values(
                state="running",
                total=total,
                done=done,
                runs=row.runs + 1,
                source=source,
                updated_at=at,
                finished_at=None,
            )
        )
    kind = "embeddings.reembed.started" if row is None else "embeddings.reembed.resumed"
    append_event(
        conn, kind, SUBJECT.format(version=version), actor, reason, {"total": total, "already": done, "source": source}
    )
    return row is not None


def _record_failures(conn: Connection, version: str, bad: dict[str, str], retries: int) -> None:
    for doc_id, error in bad.items():
        conn.execute(delete(failures).where(failures.c.model_version == version, failures.c.doc_id == doc_id))
        conn.execute(
            insert(failures).values(model_version=version, doc_id=doc_id, attempts=retries + 1, error=error, at=now())
        )


def reembed(
    index: VectorIndex,
    encoder: Encoder,
    documents: Sequence[Document],
    *,
    actor: str,
    reason: str | None = None,
    batch: int = 64,
    rate: float | None = None,
    retries: int = 3,
    backoff: float = 0.2,
    limit: int | None = None,
    source: str | None = None,
    progress: bool = False,
) -> ReembedResult:
    """Embed the documents of ``documents`` that have no ``encoder.key`` vector yet.

    ``rate``: documents per second (None: unlimited). ``limit``: embed at most
    this many in this run (the job stays resumable). Returns what this run did.
    """
    store, version = index.store, encoder.key
    started = time.perf_counter()
    have = index.ids(version)
    corpus_ids = {d.id for d in documents}
    already = len(have & corpus_ids)
    todo = [d for d in documents if d.id not in have]
    if limit is not None:
        todo = todo[:limit]
    with store.engine.begin() as conn:
        conn.execute(delete(failures).where(failures.c.model_version == version))  # retried below
        _start_job(conn, version, len(documents), already, source, actor, reason)
    bucket = TokenBucket(rate, capacity=max(batch, rate)) if rate else None
    result = ReembedResult(version, len(documents), already, 0)
    done = already
    with embedding_progress(progress) as bar:
        task = bar.add_task(f"re-embedding with {encoder.name}", total=len(documents), completed=already)
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            if bucket is not None:
                bucket.acquire(len(chunk))
            ids, vecs, bad = _embed_batch(encoder, chunk, retries, backoff)
            done += len(ids)
            result.embedded += len(ids)
            result.failed.update(bad)
            with store.engine.begin() as conn:
                if ids:
                    index.add(conn, version, ids, vecs)
                _record_failures(conn, version, bad, retries)
                conn.execute(
                    update(jobs)
                    .where(jobs.c.model_version == version)
                    .values(done=done, failed=len(result.failed), updated_at=now())
                )
            bar.update(task, advance=len(chunk))
    state = "done" if done >= len(documents) and not result.failed else "incomplete"
    with store.engine.begin() as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.model_version == version)
            .values(state=state, updated_at=now(), finished_at=now() if state == "done" else None)
        )
        append_event(
            conn,
            "embeddings.reembed.finished" if state == "done" else "embeddings.reembed.stopped",
            SUBJECT.format(version=version),
            actor,
            reason,
            {"embedded": result.embedded, "done": done, "total": len(documents), "failed": sorted(result.failed)[:100]},
        )
    if state == "done":
        index.finish(version)
    result.seconds = time.perf_counter() - started
    result.rate_waited = bucket.waited if bucket else 0.0
    return result


def job_state(index: VectorIndex, version: str) -> dict | None:
    """The job row of a version plus its failed documents, or None if never started."""
    with index.store.engine.connect() as conn:
        row = conn.execute(select(jobs).where(jobs.c.model_version == version)).first()
        bad = conn.execute(
            select(failures.c.doc_id, failures.c.error)
            .where(failures.c.model_version == version)
            .order_by(failures.c.doc_id)
        ).all()
    if row is None:
        return None
    return {
        "state": row.state,
        "total": row.total,
        "done": row.done,
        "failed": {r.doc_id: r.error for r in bad},
        "runs": row.runs,
        "source": row.source,
        "started_at": row.started_at,
        "updated_at": row.updated_at,
        "finished_at": row.finished_at,
    }
