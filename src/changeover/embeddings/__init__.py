"""Embedding migration: versioned vectors in a dual index, a resumable rate-limited
re-embedding job, old-vs-new overlap validation, linear adapters, and the switch.

The pieces, one job each: ``encoders`` (the models), ``corpus`` (documents,
queries, judgments), ``index`` / ``pgvector`` (where vectors live),
``reembed`` (the job), ``overlap`` / ``metrics`` / ``compare`` (validation),
``linear_maps`` / ``adapter`` (new-query -> old-space maps), ``search``
(version-checked retrieval), ``serving`` (switch and cleanup), ``status``.
"""

from changeover.embeddings.config import EmbeddingsConfig, Thresholds
from changeover.embeddings.errors import VersionMismatchError
from changeover.embeddings.index import NumpyIndex, VectorIndex, open_index
from changeover.embeddings.search import QueryVectors, Retriever

__all__ = [
    "EmbeddingsConfig",
    "NumpyIndex",
    "QueryVectors",
    "Retriever",
    "Thresholds",
    "VectorIndex",
    "VersionMismatchError",
    "open_index",
]
