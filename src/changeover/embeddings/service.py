"""The embedding migration's operations, one call each, as the CLI (or a team's own script)
runs them from the ``embeddings:`` settings: re-embed a corpus, compare the two models,
fit and store an adapter, clean up an index. Each records its own events and returns a
typed result; nothing here parses arguments or prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np

from changeover.embeddings.adapter import fit_adapter, save_adapter
from changeover.embeddings.compare import Comparison, compare
from changeover.embeddings.config import EmbeddingsConfig
from changeover.embeddings.corpus import Query, read_corpus_report, read_qrels, read_queries
from changeover.embeddings.index import VectorIndex
from changeover.embeddings.linear_maps import FORMS, Selection
from changeover.embeddings.metrics import judged, quality
from changeover.embeddings.reembed import ReembedResult, reembed
from changeover.embeddings.serving import cleanup, init_serving
from changeover.engines import Engine
from changeover.providers.embedders import Encoder, canonical_name, get_encoder
from changeover.store.events import record_event


@dataclass
class CorpusRun:
    """One ``reembed`` run over a corpus file: what the job did, the documents it could not
    take (no text, no title), and whether this run made its index the serving one."""

    result: ReembedResult
    encoder: Encoder
    empty: list[str] = field(default_factory=list)
    now_serving: bool = False


def reembed_corpus(
    index: VectorIndex,
    config: EmbeddingsConfig,
    model: str,
    corpus: Path,
    *,
    actor: str,
    reason: str | None = None,
    limit: int | None = None,
    progress: bool = False,
    wait: float = 0.0,
    engine: Engine | None = None,
) -> CorpusRun:
    """Embed ``corpus`` with ``model`` (on ``engine``: local or Ray); the first complete index of the
    incumbent starts serving."""
    encoder = get_encoder(model)
    docs, empty = read_corpus_report(corpus)
    result = reembed(
        index,
        encoder,
        docs,
        actor=actor,
        reason=reason,
        batch=config.batch,
        rate=config.rate_per_second,
        retries=config.retries,
        limit=limit,
        source=str(corpus),
        progress=progress,
        lease_ttl=config.lease_seconds,
        wait=wait,
        engine=engine,
    )
    run = CorpusRun(result, encoder, empty)
    incumbent = config.incumbent
    if result.complete and (incumbent is None or canonical_name(incumbent) == encoder.name):
        run.now_serving = init_serving(index.store, encoder.key, actor) is not None
    return run


@dataclass
class QuerySet:
    """The same queries embedded by the incumbent's and the candidate's model."""

    queries: list[Query]
    old: Encoder
    new: Encoder
    old_vectors: np.ndarray
    new_vectors: np.ndarray


def embed_queries(path: Path, incumbent: str, candidate: str) -> QuerySet:
    queries = read_queries(path)
    old, new = get_encoder(incumbent), get_encoder(candidate)
    texts = [q.text for q in queries]
    return QuerySet(queries, old, new, old.encode_queries(texts), new.encode_queries(texts))


def compare_models(
    index: VectorIndex, config: EmbeddingsConfig, qs: QuerySet, *, actor: str, reason: str | None = None
) -> Comparison:
    """Old vs new on the queries; the measurement is an event (the report's embedding section reads it)."""
    judgments = read_qrels(config.qrels) if config.qrels else None
    result = compare(
        index,
        qs.old.key,
        qs.new.key,
        qs.queries,
        qs.old_vectors,
        qs.new_vectors,
        k=config.k,
        thresholds=config.thresholds,
        qrels=judgments,
    )
    record_event(index.store, "embeddings.compare", f"embeddings:{qs.new.key}", actor, reason, result.to_json())
    return result


@dataclass
class AdapterFit:
    """A fitted and stored adapter: the selection over forms, its metrics, its id."""

    id: int
    active: bool
    selection: Selection
    metrics: dict


def fit_and_store_adapter(
    index: VectorIndex,
    config: EmbeddingsConfig,
    qs: QuerySet,
    *,
    forms: Sequence[str] = FORMS,
    activate: bool = True,
    actor: str,
    reason: str | None = None,
) -> AdapterFit:
    """Choose and fit the map new -> old, score it on the judgments if any, store (and activate) it."""
    sel, pair_ids = fit_adapter(
        index, qs.new.key, qs.old.key, qs.new_vectors, pairs=config.pairs, k=config.k, forms=forms
    )
    metrics: dict = {
        "pairs": len(pair_ids),
        "train": sel.train,
        "heldout": sel.heldout,
        "pool": sel.pool,
        "heldout_overlap": sel.scores,
        "chosen": sel.chosen.label,
        "kept_share": max(sel.scores.values()),
    }
    if config.qrels:
        qids = [q.id for q in qs.queries]
        relevant = judged(qids, read_qrels(config.qrels), sorted(index.ids(qs.old.key)))
        hits, _ = index.search(qs.old.key, sel.chosen.apply(qs.new_vectors), config.k)
        metrics["quality_adapted"] = quality(qids, hits, relevant, config.k)
    adapter_id = save_adapter(
        index.store, qs.new.key, qs.old.key, sel.chosen, metrics, actor, reason, activate=activate
    )
    return AdapterFit(adapter_id, activate, sel, metrics)


def cleanup_index(
    index: VectorIndex,
    config: EmbeddingsConfig,
    version: str,
    *,
    actor: str,
    reason: str | None = None,
    stability: timedelta | None = None,
) -> int:
    """Delete a non-serving index; ``stability`` overrides the spec's period (recorded in the event)."""
    return cleanup(index, version, config.stability, actor, reason, override=stability)
