"""Sticky routing: a user's bucket is murmur3 of ``flag:key`` mod 100, as Unleash and flagd do.

A user is on the candidate when their bucket is below the stage's weight, so
raising the weight keeps everyone already on the candidate there, and one
conversation (one sticky key) always lands on one model.
"""

from __future__ import annotations

import mmh3


def bucket(flag: str, key: str) -> int:
    """The user's bucket in 0..99, stable across processes and releases."""
    return mmh3.hash(f"{flag}:{key}", 0, signed=False) % 100


def serves_candidate(flag: str, key: str | None, weight: int) -> bool:
    """Whether the holder of ``key`` is served by the candidate at ``weight`` percent.

    A request without a sticky key is never sent to a partially rolled-out
    candidate (it could not stay there); at 100 % everyone is.
    """
    if weight >= 100:
        return True
    if weight <= 0 or key is None:
        return False
    return bucket(flag, key) < weight
