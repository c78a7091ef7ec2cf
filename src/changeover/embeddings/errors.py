"""Errors a user can cause in the embedding migration, each saying what to do next."""

from __future__ import annotations

from changeover.errors import ChangeoverError, DataError, StoreError


class VersionMismatchError(ChangeoverError):
    """A query vector's model version differs from the index's, and no adapter bridges them."""


class IndexIncompleteError(StoreError):
    """An index is asked to serve (or be compared) before every document is embedded."""


class CleanupRefusedError(StoreError):
    """An index cannot be deleted yet: it serves, or the stability period has not passed."""


class CorpusError(DataError):
    """A corpus, queries or relevance-judgment file has a bad row."""


class BackendError(StoreError):
    """The chosen vector backend cannot run on this store (e.g. pgvector on SQLite)."""


class JobRunningError(StoreError):
    """Another run holds the re-embedding lease of this version."""


class LeaseLostError(StoreError):
    """This run's lease expired and another run took the job over; it stops without writing."""
