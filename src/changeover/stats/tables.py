"""Count tables: paired responses reduced to counts over (segment, signals, labels).

One table per (candidate, dimension) comparison. Every item answered by both
the incumbent (model 0) and the candidate (model 1) falls in one cell keyed by
its segment, the two signal levels (``levels`` = missing/unscorable) and the
two label states (how many annotators said 1, out of how many). Items in the
same cell are exchangeable under the model, so the fit costs the same for a
thousand items or a million.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairTable:
    """The count table of one incumbent-vs-candidate comparison on one dimension.

    Arrays have one entry per cell (J cells). ``a0``/``a1`` are signal levels
    0..levels-1, or ``levels`` when the signal is missing. ``pos``/``tot`` are
    the number of annotators who said "acceptable" and the number who judged
    (0/0 = unlabelled). ``cell_of_item`` maps every input item to its cell.
    """

    segments: tuple[str, ...]
    levels: int
    seg: np.ndarray
    a0: np.ndarray
    a1: np.ndarray
    pos0: np.ndarray
    tot0: np.ndarray
    pos1: np.ndarray
    tot1: np.ndarray
    n: np.ndarray
    cell_of_item: np.ndarray

    @property
    def cells(self) -> int:
        return int(self.n.shape[0])

    @property
    def items(self) -> int:
        return int(self.n.sum())

    @property
    def n_segments(self) -> int:
        return len(self.segments)

    @property
    def multi_annotator(self) -> bool:
        """True when some response was judged by several annotators (noise is then estimable)."""
        return bool((self.tot0 > 1).any() or (self.tot1 > 1).any())

    def labelled(self, model: int) -> int:
        tot = self.tot0 if model == 0 else self.tot1
        return int(self.n[tot > 0].sum())


def build_table(
    segments: list[str] | tuple[str, ...],
    seg: np.ndarray,
    levels: int,
    a0: np.ndarray,
    a1: np.ndarray,
    pos0: np.ndarray,
    tot0: np.ndarray,
    pos1: np.ndarray,
    tot1: np.ndarray,
) -> PairTable:
    """Aggregate per-item arrays (one entry per paired item) into a count table.

    ``a0``/``a1`` use -1 (or ``levels``) for a missing signal.
    """
    seg = np.asarray(seg, dtype=np.int64)
    cols = []
    for arr in (a0, a1):
        arr = np.asarray(arr, dtype=np.int64).copy()
        arr[(arr < 0) | (arr >= levels)] = levels
        cols.append(arr)
    a0, a1 = cols
    pos0, tot0, pos1, tot1 = (np.asarray(x, dtype=np.int64) for x in (pos0, tot0, pos1, tot1))
    if seg.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return PairTable(tuple(segments), levels, empty, empty, empty, empty, empty, empty, empty, empty, empty)
    stacked = np.stack([seg, a0, a1, pos0, tot0, pos1, tot1], axis=1)
    keys, inverse, counts = np.unique(stacked, axis=0, return_inverse=True, return_counts=True)
    return PairTable(
        tuple(segments),
        levels,
        keys[:, 0],
        keys[:, 1],
        keys[:, 2],
        keys[:, 3],
        keys[:, 4],
        keys[:, 5],
        keys[:, 6],
        counts.astype(np.int64),
        inverse.reshape(-1),
    )
