"""Which index serves: one flag in the store (the rollout's flag machinery), switched
instantly either way; an index no longer serving is deleted only by an explicit
cleanup once the serving one has been stable for the spec's period.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select

from changeover.embeddings.adapter import SUBJECT as ADAPTER_SUBJECT
from changeover.embeddings.errors import CleanupRefusedError, IndexIncompleteError
from changeover.embeddings.index import VectorIndex
from changeover.embeddings.schema import adapters, failures, jobs
from changeover.store import Store
from changeover.store.events import append_event, now
from changeover.store.flags import Flag, get_flag, set_flag

FLAG = "embeddings.serving"
SWITCH = "embeddings.switch"


def human(td: timedelta) -> str:
    """'6d 23h 59m' style, to the minute (seconds only under a minute)."""
    total = int(td.total_seconds())
    if total < 60:
        return f"{total}s"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{rest // 60}m" if rest // 60 else ""]
    return " ".join(p for p in parts if p)


def serving_flag(store: Store) -> Flag | None:
    return get_flag(store, FLAG)


def serving_index(store: Store) -> str | None:
    flag = get_flag(store, FLAG)
    return None if flag is None else flag.value.get("index")


def check_complete(index: VectorIndex, version: str) -> None:
    """Refuse a version whose job is not done or that has failed documents."""
    from changeover.embeddings.reembed import job_state

    job = job_state(index, version)
    have = index.count(version)
    if job is None and have == 0:
        raise IndexIncompleteError(
            f"index {version} has no vectors; run `changeover embeddings reembed --to {version.split('@')[0]}` first"
        )
    if job is not None and (job["state"] != "done" or job["failed"] or have < job["total"]):
        raise IndexIncompleteError(
            f"index {version} is incomplete ({have} of {job['total']} documents, {len(job['failed'])} failed); "
            "finish `changeover embeddings reembed` (it resumes) or pass --force"
        )


def init_serving(store: Store, version: str, actor: str) -> Flag | None:
    """Make ``version`` serve if nothing serves yet (the first complete index); else no-op."""
    if serving_flag(store) is not None:
        return None
    return set_flag(
        store, FLAG, {"index": version}, actor, "first complete index serves", expect_version=0, event_kind=SWITCH
    )


def switch(index: VectorIndex, version: str, actor: str, reason: str | None = None, force: bool = False) -> Flag:
    """Point the serving flag at ``version`` (compare-and-set, one event)."""
    if not force:
        check_complete(index, version)
    current = serving_flag(index.store)
    previous = None if current is None else current.value.get("index")
    return set_flag(
        index.store,
        FLAG,
        {"index": version},
        actor,
        reason,
        expect_version=0 if current is None else current.version,
        event_kind=SWITCH,
        payload={"from_index": previous, "to_index": version, "forced": force},
    )


def stable_since(store: Store) -> datetime | None:
    flag = serving_flag(store)
    return None if flag is None else flag.updated_at


def cleanup(
    index: VectorIndex,
    version: str,
    stability: timedelta,
    actor: str,
    reason: str | None = None,
    at: datetime | None = None,
    override: timedelta | None = None,
) -> int:
    """Delete a non-serving version's vectors, job and adapters; returns how many vectors went.

    ``override`` replaces the spec's ``stability`` period for this cleanup (e.g.
    ``--stability 0s``); the cleanup event records both, and each adapter it
    deletes is an event of its own.
    """
    store = index.store
    at = at or now()
    spec_stability, stability = stability, (override if override is not None else stability)
    flag = serving_flag(store)
    if flag is not None and flag.value.get("index") == version:
        raise CleanupRefusedError(f"index {version} is serving; switch to another index before cleaning it up")
    if flag is not None and at - flag.updated_at < stability:
        left = stability - (at - flag.updated_at)
        raise CleanupRefusedError(
            f"the serving index {flag.value.get('index')} has served since {flag.updated_at:%Y-%m-%d %H:%M} UTC; "
            f"the spec's stability period (embeddings.stability_period = {human(stability)}) ends in "
            f"{human(left)}. "
            "Until then the old index stays, so switching back remains instant"
        )
    touching = (adapters.c.index_version == version) | (adapters.c.query_version == version)
    with store.engine.begin() as conn:
        n = index.drop(conn, version)
        conn.execute(delete(jobs).where(jobs.c.model_version == version))
        conn.execute(delete(failures).where(failures.c.model_version == version))
        doomed = conn.execute(select(adapters).where(touching).order_by(adapters.c.id)).all()
        conn.execute(delete(adapters).where(touching))
        for a in doomed:
            append_event(
                conn,
                "embeddings.adapter.deleted",
                ADAPTER_SUBJECT,
                actor,
                reason,
                {
                    "id": a.id,
                    "query_version": a.query_version,
                    "index_version": a.index_version,
                    "was_active": bool(a.active),
                    "by": "cleanup",
                    "cleaned_up": version,
                },
            )
        append_event(
            conn,
            "embeddings.cleanup",
            f"embeddings:{version}",
            actor,
            reason,
            {
                "vectors_deleted": n,
                "adapters_deleted": [a.id for a in doomed],
                "serving": None if flag is None else flag.value.get("index"),
                "stability_period": human(stability),
                "spec_stability_period": human(spec_stability),
                "stability_overridden": override is not None and override != spec_stability,
                "served_for": None if flag is None else human(at - flag.updated_at),
            },
        )
    return n
