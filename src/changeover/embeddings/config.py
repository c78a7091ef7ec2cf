"""The ``embeddings:`` section of the migration spec, typed and validated.

Read with ``spec.section("embeddings", EmbeddingsConfig)``; the CLI also
builds one from flags (``--old``/``--new``/``--corpus``) when there is no spec.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from changeover.errors import SpecError

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_PER = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_rate(text: str | None, where: str = "--rate") -> float | None:
    """'600/min' -> 10.0 documents per second; None, '' or 'off' -> no limit."""
    if text is None or str(text).strip().lower() in ("", "off", "none", "0"):
        return None
    m = _RATE.match(str(text))
    if not m or float(m.group(1)) <= 0:
        raise SpecError(f"{where}: rate {text!r} is not like '600/min', '10/s' or 'off'")
    return float(m.group(1)) / _PER[m.group(2)]


def parse_duration(text: str | int | float, where: str = "stability_period") -> timedelta:
    """'7d', '12h', '30m', '90s', '2w' (or a number of seconds) -> timedelta."""
    if isinstance(text, int | float):
        return timedelta(seconds=float(text))
    m = _DURATION.match(str(text))
    if not m:
        raise SpecError(f"{where}: duration {text!r} is not like '7d', '12h', '30m' or '90s'")
    return timedelta(seconds=float(m.group(1)) * _SECONDS[m.group(2)])


class Thresholds(BaseModel):
    """Mean top-k overlap old vs new: at or above ``preserves`` the new model preserves
    retrieval; below ``investigate`` someone must look; in between, review the worst queries."""

    model_config = ConfigDict(extra="forbid")

    preserves: float = Field(0.8, ge=0.0, le=1.0)
    investigate: float = Field(0.7, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.investigate > self.preserves:
            raise ValueError("'investigate' must not be above 'preserves'")
        return self


class HnswConfig(BaseModel):
    """pgvector HNSW parameters: ``m`` and ``ef_construction`` shape the index when it is built
    (with ``build_memory`` as ``maintenance_work_mem`` and ``build_workers`` parallel workers);
    ``ef_search`` (the candidate list per query) is set for each search's transaction.

    The defaults are pgvector's build defaults and an ``ef_search`` of 100: on 1M synthetic
    384-d vectors (``benchmarks/bench_vector_index.py``) recall@10 against exact search was
    0.963 at p50 20 ms (exact scan 1,037 ms); pgvector's own 40 kept 0.83, 200 kept 0.993
    at 28 ms. ``build_memory`` 512MB holds the graph of ~230k 384-d vectors (2.3 kB each
    at ``m`` 16); past it the build goes on disk, several times slower.
    ``changeover embeddings compare`` reports the index's recall against exact search on
    your own queries, so a corpus where the index misses is seen.
    """

    model_config = ConfigDict(extra="forbid")

    m: int = Field(16, ge=2, le=100, description="graph degree (pgvector default 16)")
    ef_construction: int = Field(64, ge=4, le=1000, description="build-time candidate list (pgvector default 64)")
    ef_search: int = Field(100, ge=1, le=1000, description="query-time candidate list, at least k")
    build_memory: str = Field(
        "512MB",
        pattern=r"^[1-9][0-9]*(kB|MB|GB)$",
        description="maintenance_work_mem for the build: a graph that does not fit is built far slower",
    )
    build_workers: int = Field(
        2,
        ge=0,
        le=64,
        description="max_parallel_maintenance_workers for the build (pgvector >= 0.6 builds HNSW in parallel); "
        "0 = the building backend alone",
    )

    @model_validator(mode="after")
    def _ordered(self) -> HnswConfig:
        if self.ef_construction < 2 * self.m:
            raise ValueError("'ef_construction' must be at least 2 * 'm' (pgvector refuses less)")
        return self


class EmbeddingsConfig(BaseModel):
    """Everything the embedding migration needs: which models, which documents, which limits."""

    model_config = ConfigDict(extra="forbid")

    incumbent: str | None = Field(None, description="embedding model the stored index was built with")
    candidate: str | None = Field(None, description="embedding model to migrate to")
    corpus: Path | None = Field(None, description="JSONL documents: _id, text (and optional title)")
    queries: Path | None = Field(None, description="JSONL queries (_id, text): the common ones from logs")
    qrels: Path | None = Field(None, description="TSV relevance judgments: query-id, corpus-id, grade")
    backend: Literal["numpy", "pgvector"] = "numpy"
    k: int = Field(10, ge=1, le=1000)
    batch: int = Field(64, ge=1, le=10000)
    rate: str | None = Field("off", description="re-embedding rate limit, e.g. '600/min'; 'off' for none")
    retries: int = Field(3, ge=0, le=20)
    pairs: int = Field(2000, ge=20)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    stability_period: str = Field("7d", description="how long the new index must serve before cleanup")
    hnsw: HnswConfig = Field(default_factory=HnswConfig)
    lease: str = Field(
        "30s", description="how long a re-embed run's lease lives without renewal; past it a dead run is 'interrupted'"
    )

    @field_validator("rate")
    @classmethod
    def _rate_ok(cls, v: str | None) -> str | None:
        try:
            parse_rate(v)
        except SpecError as exc:
            raise ValueError(str(exc).split(": ", 1)[1]) from None
        return v

    @field_validator("stability_period", "lease")
    @classmethod
    def _period_ok(cls, v: str) -> str:
        try:
            parse_duration(v)
        except SpecError as exc:
            raise ValueError(str(exc).split(": ", 1)[1]) from None
        return v

    @property
    def rate_per_second(self) -> float | None:
        return parse_rate(self.rate)

    @property
    def stability(self) -> timedelta:
        return parse_duration(self.stability_period)

    @property
    def lease_seconds(self) -> float:
        return max(1.0, parse_duration(self.lease, "--lease / embeddings.lease").total_seconds())

    def resolved(self, base: Path | None) -> EmbeddingsConfig:
        """A copy with corpus/queries/qrels made absolute relative to ``base`` (the spec's folder)."""
        if base is None:
            return self
        updates = {}
        for name in ("corpus", "queries", "qrels"):
            p = getattr(self, name)
            if p is not None and not p.is_absolute():
                updates[name] = (base / p).resolve()
        return self.model_copy(update=updates)
