"""Embedding migration: versioned vectors in a dual index, a resumable rate-limited
re-embedding job, old-vs-new overlap validation, linear adapters, and the switch.

The pieces, one job each: ``corpus`` (documents, queries, judgments),
``index`` / ``pgvector`` (where vectors live), ``reembed`` (the job) with
``lease`` (one run per version), ``overlap`` / ``metrics`` / ``compare``
(validation), ``linear_maps`` / ``adapter`` (new-query -> old-space maps),
``search`` (version-checked retrieval), ``serving`` (switch and cleanup),
``status``, and ``service`` (the operations the CLI calls). The models
themselves are ``changeover.providers.embedders``.

The public names below load on first use, so ``import changeover.embeddings``
(and the CLI) stays cheap until a command needs vectors.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from changeover.embeddings.config import EmbeddingsConfig, Thresholds
    from changeover.embeddings.errors import VersionMismatchError
    from changeover.embeddings.index import NumpyIndex, VectorIndex, open_index
    from changeover.embeddings.search import Hits, QueryVectors, Retriever

_EXPORTS = {
    "EmbeddingsConfig": "config",
    "Thresholds": "config",
    "VersionMismatchError": "errors",
    "NumpyIndex": "index",
    "VectorIndex": "index",
    "open_index": "index",
    "Hits": "search",
    "QueryVectors": "search",
    "Retriever": "search",
}

__all__ = [
    "EmbeddingsConfig",
    "Hits",
    "NumpyIndex",
    "QueryVectors",
    "Retriever",
    "Thresholds",
    "VectorIndex",
    "VersionMismatchError",
    "open_index",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'changeover.embeddings' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"changeover.embeddings.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
