"""What the embedding migration looks like now: indexes, jobs, failures, serving, adapters."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from changeover.embeddings.adapter import list_adapters
from changeover.embeddings.index import VectorIndex
from changeover.embeddings.reembed import job_state
from changeover.embeddings.schema import jobs
from changeover.embeddings.serving import human, serving_flag
from changeover.store.events import now


def status(index: VectorIndex, stability: timedelta | None = None) -> dict:
    store = index.store
    flag = serving_flag(store)
    serving = None if flag is None else flag.value.get("index")
    counts = index.counts()
    with store.engine.connect() as conn:
        started = set(conn.execute(select(jobs.c.model_version)).scalars())
    versions = sorted(set(counts) | started)
    out_versions = []
    for v in versions:
        job = job_state(index, v) or {}
        out_versions.append(
            {
                "version": v,
                "vectors": counts.get(v, 0),
                "total": job.get("total"),
                "state": job.get("state", "unknown"),  # running | interrupted | done | incomplete
                "holder": job.get("holder"),  # the run holding the lease while running
                "failed": sorted(job.get("failed", {})),
                "runs": job.get("runs", 0),
                "serving": v == serving,
            }
        )
    debts = []
    for a in list_adapters(store, active_only=True):
        debts.append(
            {
                "id": a.id,
                "query_version": a.query_version,
                "index_version": a.index_version,
                "form": a.map.label,
                "kept_share": a.metrics.get("kept_share"),
                "note": "technical debt: queries of the new model reach the old index through a linear "
                "map; re-embed with the new model, switch, then retire it",
            }
        )
    cleanup = None
    if flag is not None and stability is not None:
        ready_at = flag.updated_at + stability
        cleanup = {
            "stability_period": human(stability),
            "serving_since": flag.updated_at.isoformat(),
            "cleanup_allowed_from": ready_at.isoformat(),
            "allowed_now": now() >= ready_at,
            "removable": [v for v in counts if v != serving],
        }
    return {
        "backend": index.backend,
        "store": store.display_url,
        "serving": serving,
        "serving_flag_version": None if flag is None else flag.version,
        "indexes": out_versions,
        "adapters": debts,
        "cleanup": cleanup,
    }
