"""The re-embedding job: embed every document with a model into that model's own index rows.

Resumable by construction: a batch's vectors and the job's progress commit in
one transaction, and a run embeds exactly the documents that have no vector
for the target version yet, so a run killed at any point (even SIGKILL) and
started again neither redoes nor skips a document. One run at a time per
version: a run holds the version's lease (``lease.py``) and checks it in every
batch's transaction; vector inserts are idempotent besides. Batches go through
a token bucket; a batch failing with a transient error (503, timeout) is
retried with backoff; one failing with a permanent error is split at once so
the bad document fails fast and its neighbours go in; documents that still
fail are recorded and listed, never silently skipped.

The job is a list of batches of ``batch`` documents, each run by ``_run_batch``:
skip what is already stored, take the rate limit's tokens, encode, and commit
vectors, failures and progress (increments of the job row) in one transaction
under the lease. The local engine runs them in order in this process; the Ray
engine (``engine=Engine("ray")``) runs each as a task (``reembed_batch``) that
rebuilds the index, the model and the lease check from names (``BatchJob``),
while this process holds the lease and the rate limit lives in the session's
pacer actor, one bucket for every worker. A batch whose worker died is run
again by Ray and finds its committed documents stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
from sqlalchemy import Connection, delete, insert, select, update

from changeover.embeddings.config import HnswConfig
from changeover.embeddings.corpus import Document
from changeover.embeddings.index import VectorIndex, open_index
from changeover.embeddings.lease import DEFAULT_TTL, Holder, Lease
from changeover.embeddings.progress import embedding_progress
from changeover.embeddings.ratelimit import TokenBucket
from changeover.embeddings.schema import failures, jobs, leases
from changeover.engines import Engine
from changeover.providers.embedders import Encoder, PermanentEncoderError, get_encoder, is_transient
from changeover.store import open_store
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
    found_stored: int = 0  # documents of a batch run again (its worker died) that it had already stored

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
            "found_stored": self.found_stored,
        }


@dataclass
class Failure:
    error: str
    attempts: int


def _encode_with_retry(
    encode: Callable[[list[str]], np.ndarray], texts: list[str], retries: int, backoff: float
) -> tuple[np.ndarray | None, BaseException | None, int]:
    """(vectors, None, attempts) or (None, the last error, attempts); only transient errors are retried."""
    for attempt in range(retries + 1):
        try:
            out = np.asarray(encode(texts), dtype=np.float32)
            if out.ndim != 2 or out.shape[0] != len(texts) or not np.all(np.isfinite(out)):
                raise PermanentEncoderError(f"encoder returned shape {out.shape} or non-finite values")
            return out, None, attempt + 1
        except Exception as exc:  # noqa: BLE001 - classified, then recorded or retried
            if attempt == retries or not is_transient(exc):
                return None, exc, attempt + 1
            time.sleep(backoff * (2**attempt))
    raise AssertionError("unreachable")


def _describe(exc: BaseException) -> str:
    kind = "transient" if is_transient(exc) else "permanent"
    return f"{kind}: {type(exc).__name__}: {exc}"[:500]


def _embed_batch(
    encoder: Encoder, docs: Sequence[Document], retries: int, backoff: float
) -> tuple[list[str], np.ndarray | None, dict[str, Failure]]:
    """(ids embedded, their vectors, {id: failure} for documents that could not be embedded).

    A permanent error splits the batch at once to find the bad documents (each
    tried once more, alone); a transient error that outlasts the retries fails
    the whole batch (the upstream is down, not one document bad) for the next run.
    """
    vecs, exc, attempts = _encode_with_retry(encoder.encode_documents, [d.text for d in docs], retries, backoff)
    if exc is None:
        return [d.id for d in docs], vecs, {}
    if len(docs) == 1 or is_transient(exc):
        return [], None, {d.id: Failure(_describe(exc), attempts) for d in docs}
    ok_ids: list[str] = []
    ok_vecs: list[np.ndarray] = []
    bad: dict[str, Failure] = {}
    for d in docs:  # split: find the bad documents, keep the good ones
        ids, one, errs = _embed_batch(encoder, [d], retries, backoff)
        bad.update({i: Failure(f.error, f.attempts + attempts) for i, f in errs.items()})
        if one is not None:
            ok_ids += ids
            ok_vecs.append(one)
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
                failed=0,  # the failures table was cleared: they are tried again
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


def _record_failures(conn: Connection, version: str, bad: dict[str, Failure]) -> None:
    for doc_id, f in bad.items():
        conn.execute(delete(failures).where(failures.c.model_version == version, failures.c.doc_id == doc_id))
        conn.execute(
            insert(failures).values(model_version=version, doc_id=doc_id, attempts=f.attempts, error=f.error, at=now())
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
    lease_ttl: float = DEFAULT_TTL,
    wait: float = 0.0,
    engine: Engine | None = None,
) -> ReembedResult:
    """Embed the documents of ``documents`` that have no ``encoder.key`` vector yet.

    ``rate``: documents per second (None: unlimited). ``limit``: embed at most
    this many in this run (the job stays resumable). Another run of the same
    version holding the lease: wait up to ``wait`` seconds for it, then raise
    ``JobRunningError``. ``engine``: ``Engine("ray", address)`` runs the batches on Ray (the encoder
    must be a named model: each worker loads it by its key). Returns what this run did.
    """
    with index.store.reachable(
        f"re-embedding {encoder.key}",
        then="every batch committed before is kept - run the same command again once the store "
        "is back, it resumes where the job stopped",
    ):
        return _leased_run(
            index,
            encoder,
            documents,
            actor,
            reason,
            batch,
            rate,
            retries,
            backoff,
            limit,
            source,
            progress,
            lease_ttl,
            wait,
            engine,
        )


def _leased_run(
    index: VectorIndex,
    encoder: Encoder,
    documents: Sequence[Document],
    actor: str,
    reason: str | None,
    batch: int,
    rate: float | None,
    retries: int,
    backoff: float,
    limit: int | None,
    source: str | None,
    progress: bool,
    lease_ttl: float,
    wait: float,
    engine: Engine | None,
) -> ReembedResult:
    store, version = index.store, encoder.key
    started = time.perf_counter()
    with Lease(store, version, ttl=lease_ttl).acquire(wait) as lease:
        have = index.ids(version)
        corpus_ids = {d.id for d in documents}
        already = len(have & corpus_ids)
        todo = [d for d in documents if d.id not in have]
        if limit is not None:
            todo = todo[:limit]
        with store.engine.begin() as conn:
            lease.check(conn)
            conn.execute(delete(failures).where(failures.c.model_version == version))  # retried below
            _start_job(conn, version, len(documents), already, source, actor, reason)
        result = ReembedResult(version, len(documents), already, 0)
        chunks = [todo[start : start + batch] for start in range(0, len(todo), batch)]
        with embedding_progress(progress) as bar:
            task = bar.add_task(f"re-embedding with {encoder.name}", total=len(documents), completed=already)

            def account(_i: int, part: BatchDone) -> None:
                result.embedded += len(part.ids) + part.found_stored
                result.found_stored += part.found_stored
                result.failed.update(part.failed)
                result.rate_waited += part.waited
                bar.update(task, advance=len(part.ids) + part.found_stored + len(part.failed))

            capacity = max(batch, rate) if rate else 0.0
            if engine is not None and engine.is_ray and chunks:
                job = BatchJob(
                    store.url,
                    index.backend,
                    getattr(index, "hnsw", None),
                    version,
                    lease.owner,
                    lease_ttl,
                    retries,
                    backoff,
                )
                _on_ray(job, chunks, engine, rate, capacity, account)
            else:
                bucket = TokenBucket(rate, capacity=capacity) if rate else None
                for i, chunk in enumerate(chunks):
                    account(i, _run_batch(index, encoder, lease, chunk, bucket, retries, backoff))
        done = already + result.embedded
        state = "done" if done >= len(documents) and not result.failed else "incomplete"
        with store.engine.begin() as conn:
            lease.check(conn)
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
                {
                    "embedded": result.embedded,
                    "done": done,
                    "total": len(documents),
                    "failed": sorted(result.failed)[:100],
                },
            )
        if state == "done":
            index.finish(version)
        result.seconds = time.perf_counter() - started
        return result


class Bucket(Protocol):
    """A rate limit a batch takes its tokens from: ``ratelimit.TokenBucket`` or ``engines.ray.SharedBucket``."""

    waited: float

    def acquire(self, n: float = 1.0) -> None: ...


@dataclass
class BatchDone:
    """What one batch did: documents it stored, those that failed, those it found stored, seconds paced."""

    ids: list[str]
    failed: dict[str, str]
    found_stored: int = 0
    waited: float = 0.0


def _run_batch(
    index: VectorIndex,
    encoder: Encoder,
    lease: Lease,
    chunk: Sequence[Document],
    bucket: Bucket | None,
    retries: int,
    backoff: float,
) -> BatchDone:
    """Embed the batch's documents not stored yet and commit them with the job's progress, under the lease."""
    version = encoder.key
    stored = set(index.load(version, [d.id for d in chunk])[0])  # a batch run again after its worker died
    todo = [d for d in chunk if d.id not in stored]
    waited = 0.0
    if bucket is not None and todo:
        before = bucket.waited
        bucket.acquire(len(todo))
        waited = bucket.waited - before
    ids, vecs, bad = _embed_batch(encoder, todo, retries, backoff) if todo else ([], None, {})
    with index.store.engine.begin() as conn:
        lease.check(conn)  # a run that lost its lease writes nothing
        if ids and vecs is not None:
            index.add(conn, version, ids, vecs)
        _record_failures(conn, version, bad)
        conn.execute(
            update(jobs)
            .where(jobs.c.model_version == version)
            .values(done=jobs.c.done + len(ids), failed=jobs.c.failed + len(bad), updated_at=now())
        )
    return BatchDone(ids, {i: f.error for i, f in bad.items()}, len(stored), waited)


@dataclass(frozen=True)
class BatchJob:
    """A run's batches as a Ray worker rebuilds them: the store, the index, the model and the lease, by name."""

    store_url: str
    backend: str
    hnsw: HnswConfig | None
    version: str  # the model's key: the worker loads the same model and version (or refuses)
    owner: str  # the lease holder (the driver); every batch checks and renews it
    lease_ttl: float
    retries: int
    backoff: float


def reembed_batch(job: BatchJob, chunk: list[Document], bucket: Bucket | None) -> BatchDone:
    """One batch in this process (a Ray task)."""
    store = open_store(job.store_url)
    try:
        index = open_index(store, job.backend, job.hnsw)
        lease = Lease(store, job.version, ttl=job.lease_ttl, owner=job.owner)
        return _run_batch(index, get_encoder(job.version), lease, chunk, bucket, job.retries, job.backoff)
    finally:
        store.engine.dispose()


def _on_ray(
    job: BatchJob,
    chunks: list[list[Document]],
    engine: Engine,
    rate: float | None,
    capacity: float,
    account: Callable[[int, BatchDone], None],
) -> None:
    from changeover.engines.ray import SharedBucket, ray_session, worker_url

    job = replace(job, store_url=worker_url(job.store_url))
    get_encoder(job.version)  # the model must load here as in the workers (a named, installed model)
    with ray_session(engine) as session:
        bucket = SharedBucket(session.pacer, f"reembed:{job.version}", rate, capacity) if rate else None
        session.map(reembed_batch, [(job, chunk, bucket) for chunk in chunks], account, what="re-embedding batch")


def job_state(index: VectorIndex, version: str) -> dict | None:
    """The job row of a version plus its failed documents, or None if never started.

    ``state`` is ``running`` only while a run holds a live lease; a job left
    ``running`` by a run that died (its lease expired or is gone) is ``interrupted``.
    """
    with index.store.engine.connect() as conn:
        row = conn.execute(select(jobs).where(jobs.c.model_version == version)).first()
        held = conn.execute(select(leases).where(leases.c.model_version == version)).first()
        bad = conn.execute(
            select(failures.c.doc_id, failures.c.error)
            .where(failures.c.model_version == version)
            .order_by(failures.c.doc_id)
        ).all()
    if row is None:
        return None
    lease = None if held is None else Holder(held.owner, held.acquired_at, held.expires_at)
    state = row.state
    if state == "running" and (lease is None or not lease.alive):
        state = "interrupted"
    return {
        "state": state,
        "holder": lease.owner if lease is not None and lease.alive else None,
        "total": row.total,
        "done": row.done,
        "failed": {r.doc_id: r.error for r in bad},
        "runs": row.runs,
        "source": row.source,
        "started_at": row.started_at,
        "updated_at": row.updated_at,
        "finished_at": row.finished_at,
    }
