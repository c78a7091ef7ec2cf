"""Adapters in the store: fit one on paired embeddings, keep it with its version pair,
activate it so new-model queries can search the old index without re-indexing.

An active adapter is technical debt: retrieval through it keeps only part of
what the re-indexed retrieval would give, and ``status`` says so until the
new index is built, switched to and the adapter is retired.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import insert, select, update

from changeover.embeddings.errors import IndexIncompleteError
from changeover.embeddings.index import VectorIndex, from_blob, to_blob
from changeover.embeddings.linear_maps import FORMS, LinearMap, Selection
from changeover.embeddings.linear_maps import select as select_map
from changeover.embeddings.schema import adapters
from changeover.errors import StoreError
from changeover.store import Store
from changeover.store.events import append_event, now

SUBJECT = "embeddings:adapter"


@dataclass
class StoredAdapter:
    id: int
    query_version: str
    index_version: str
    map: LinearMap
    metrics: dict
    active: bool
    created_at: object
    created_by: str


def _row_to_adapter(r) -> StoredAdapter:
    w = from_blob(r.weights).reshape(r.dim_in, r.dim_out)
    m = LinearMap(r.form, w, from_blob(r.bias), rank=r.rank, ridge=(r.metrics or {}).get("ridge"))
    return StoredAdapter(
        r.id, r.query_version, r.index_version, m, r.metrics or {}, bool(r.active), r.created_at, r.created_by
    )


def sample_pairs(
    index: VectorIndex, new_version: str, old_version: str, pairs: int
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Up to ``pairs`` documents embedded by both versions (a fixed pseudo-random sample):
    (ids, new-model vectors, old-model vectors), rows aligned."""
    both = sorted(
        index.ids(new_version) & index.ids(old_version), key=lambda d: hashlib.sha256(d.encode()).hexdigest()
    )[:pairs]
    if len(both) < 20:
        raise IndexIncompleteError(
            f"only {len(both)} documents are embedded by both {new_version} and {old_version}; an adapter "
            f"needs at least 20 (ideally ~2000): run `changeover embeddings reembed --to <new> --limit N` first"
        )
    ids_new, x = index.load(new_version, both)
    ids_old, y = index.load(old_version, both)
    assert ids_new == ids_old
    return ids_new, x, y


def fit_adapter(
    index: VectorIndex,
    new_version: str,
    old_version: str,
    queries_new: np.ndarray,
    *,
    pairs: int = 2000,
    k: int = 10,
    forms: Sequence[str] = FORMS,
    seed: int = 0,
) -> tuple[Selection, list[str]]:
    """Choose and fit the map new -> old on paired documents; returns the selection and pair ids."""
    ids, x, y = sample_pairs(index, new_version, old_version, pairs)
    return select_map(x, y, queries_new, k=k, seed=seed, forms=forms), ids


def save_adapter(
    store: Store,
    query_version: str,
    index_version: str,
    m: LinearMap,
    metrics: dict,
    actor: str,
    reason: str | None = None,
    activate: bool = True,
) -> int:
    """Store an adapter (and make it the active one for its version pair); every step is an event."""
    with store.engine.begin() as conn:
        new_id = int(
            conn.execute(
                insert(adapters).values(
                    query_version=query_version,
                    index_version=index_version,
                    form=m.form,
                    rank=m.rank,
                    dim_in=m.weights.shape[0],
                    dim_out=m.weights.shape[1],
                    weights=to_blob(m.weights),
                    bias=to_blob(m.bias),
                    metrics={**metrics, "ridge": m.ridge},
                    active=False,
                    created_at=now(),
                    created_by=actor,
                )
            ).inserted_primary_key[0]
        )
        append_event(
            conn,
            "embeddings.adapter.fitted",
            SUBJECT,
            actor,
            reason,
            {"id": new_id, "query_version": query_version, "index_version": index_version, "form": m.label, **metrics},
        )
    if activate:
        set_active(store, new_id, True, actor, reason)
    return new_id


def set_active(store: Store, adapter_id: int, active: bool, actor: str, reason: str | None = None) -> None:
    with store.engine.begin() as conn:
        row = conn.execute(select(adapters).where(adapters.c.id == adapter_id)).first()
        if row is None:
            raise StoreError(f"no adapter with id {adapter_id}; see `changeover embeddings status`")
        if active:  # one active adapter per version pair
            conn.execute(
                update(adapters)
                .where(
                    adapters.c.query_version == row.query_version,
                    adapters.c.index_version == row.index_version,
                    adapters.c.id != adapter_id,
                )
                .values(active=False)
            )
        conn.execute(update(adapters).where(adapters.c.id == adapter_id).values(active=active))
        append_event(
            conn,
            "embeddings.adapter.activated" if active else "embeddings.adapter.retired",
            SUBJECT,
            actor,
            reason,
            {"id": adapter_id, "query_version": row.query_version, "index_version": row.index_version},
        )


def active_adapter(store: Store, query_version: str, index_version: str) -> StoredAdapter | None:
    q = select(adapters).where(
        adapters.c.query_version == query_version,
        adapters.c.index_version == index_version,
        adapters.c.active.is_(True),
    )
    with store.engine.connect() as conn:
        row = conn.execute(q.order_by(adapters.c.id.desc())).first()
    return None if row is None else _row_to_adapter(row)


def list_adapters(store: Store, active_only: bool = False) -> list[StoredAdapter]:
    q = select(adapters).order_by(adapters.c.id)
    if active_only:
        q = q.where(adapters.c.active.is_(True))
    with store.engine.connect() as conn:
        return [_row_to_adapter(r) for r in conn.execute(q).all()]


def retire_adapter(store: Store, adapter_id: int, actor: str, reason: str | None = None) -> StoredAdapter:
    """Deactivate an active adapter (an event); queries of its model then need their own index."""
    found = [a for a in list_adapters(store) if a.id == adapter_id]
    if not found:
        known = ", ".join(f"#{a.id}" for a in list_adapters(store)) or "none"
        raise StoreError(f"no adapter #{adapter_id} (adapters: {known}); see `changeover embeddings status`")
    if not found[0].active:
        raise StoreError(f"adapter #{adapter_id} is already retired; nothing to do")
    set_active(store, adapter_id, False, actor, reason)
    found[0].active = False
    return found[0]
