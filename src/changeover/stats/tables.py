"""Count tables: paired responses reduced to counts over (segment, signals, known truth, labels).

One table per (candidate, dimension) comparison. Every item answered by both
the incumbent (model 0) and the candidate (model 1) falls in one cell keyed by
its segment, the levels of every signal on both answers (``levels[g]`` =
missing/unscorable), whether either answer's truth is known without a label
(an error response is known unacceptable), and the two label states (how many
annotators said 1, out of how many). Items in the same cell are exchangeable
under the model, so the fit costs the same for a thousand items or a million.

The *signal cell* of a table cell is everything but its segment and labels:
(signal levels of both answers, known truth of both). The measurement model
(``stats.model``) is written around it.

Who labelled: a label state is kept per annotator (``votes0``/``votes1``:
[J, A, 2] = (said 1, judged) by each of the table's ``annotators``), so that
the model can give every annotator a noise rate of their own. Verdicts
without a name belong to one unnamed annotator ('') and share one rate (what
every verdict did before annotators were told apart); a *settled* answer (an
admin's resolution, a gold answer) is a verdict of an annotator marked
``exact`` (no noise), so the annotators' verdicts on the same response
measure them. Cells differ by who said what, so labelled cells multiply with
the annotators, unlabelled ones do not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairTable:
    """The count table of one incumbent-vs-candidate comparison on one dimension.

    Arrays have one entry (row) per cell (J cells). ``a0``/``a1`` are [J, G]:
    column g is signal g's level 0..levels[g]-1, or ``levels[g]`` when missing.
    ``known0``/``known1`` are -1 (truth unknown), 0 (known unacceptable, e.g.
    the response is an error) or 1 (known acceptable); a known response carries
    no signal and no label in the table. ``pos``/``tot`` are the number of
    annotators who said "acceptable" and the number who judged (0/0 =
    unlabelled). ``cell_of_item`` maps every input item to its cell.

    ``weight`` is each cell's total item weight: ``n`` when every entry is an
    item of its own; with repeated samples (``evaluate --samples k``) each of an
    item's k paired samples weighs 1/k, so that P(signal cell | segment) is
    learned from items, not from draws, while each labelled sample still counts
    as one observation of its truth (``n``).

    ``annotators`` / ``votes0`` / ``votes1`` / ``exact``: see the module; when
    absent, every verdict is the unnamed annotator's (``pos``/``tot``).
    """

    segments: tuple[str, ...]
    levels: tuple[int, ...]
    seg: np.ndarray
    a0: np.ndarray
    a1: np.ndarray
    known0: np.ndarray
    known1: np.ndarray
    pos0: np.ndarray
    tot0: np.ndarray
    pos1: np.ndarray
    tot1: np.ndarray
    n: np.ndarray
    cell_of_item: np.ndarray
    weight: np.ndarray | None = None
    annotators: tuple[str, ...] = ()
    votes0: np.ndarray | None = None
    votes1: np.ndarray | None = None
    exact: tuple[bool, ...] = ()
    shown: np.ndarray | None = None  # [2, J]: per model, the cell's answers a labeller can be shown (None: all)

    def labellable(self, model: int) -> np.ndarray:
        """Per cell, how many of ``model``'s answers can be offered for a label: ``shown`` (with repeated
        samples only each item's first answer is shown, once), else ``n``."""
        return self.n if self.shown is None else self.shown[model]

    @property
    def item_weight(self) -> np.ndarray:
        """Each cell's item weight (``weight``, or ``n`` when every entry is an item)."""
        return self.n.astype(float) if self.weight is None else self.weight

    @property
    def annotator_names(self) -> tuple[str, ...]:
        """The annotators of ``votes``: the named ones, or the one unnamed annotator ('')."""
        return self.annotators or ("",)

    @property
    def exact_mask(self) -> np.ndarray:
        """[A] bool: which annotators give settled answers (no noise)."""
        return np.asarray(self.exact or (False,) * len(self.annotator_names), bool)

    def votes(self, model: int) -> np.ndarray:
        """[J, A, 2] (said 1, judged) per annotator on ``model``'s answer."""
        v = self.votes0 if model == 0 else self.votes1
        if v is not None:
            return v
        pos, tot = (self.pos0, self.tot0) if model == 0 else (self.pos1, self.tot1)
        return np.stack([pos, tot], axis=1)[:, None, :]

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
    def signals(self) -> int:
        return len(self.levels)

    @property
    def multi_annotator(self) -> bool:
        """True when some response was judged by several annotators or checked against a settled answer
        (annotator noise is then estimable)."""
        return bool((self.tot0 > 1).any() or (self.tot1 > 1).any())

    def labelled(self, model: int) -> int:
        tot = self.tot0 if model == 0 else self.tot1
        return int(self.n[tot > 0].sum())

    def known(self, model: int) -> int:
        """Items whose truth for ``model`` is known without a label (e.g. its response is an error)."""
        k = self.known0 if model == 0 else self.known1
        return int(self.n[k >= 0].sum())


def _levels_2d(a: np.ndarray, levels: tuple[int, ...], n: int) -> np.ndarray:
    arr = np.asarray(a, dtype=np.int64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.shape != (n, len(levels)):
        raise ValueError(f"signal levels have shape {arr.shape}; expected ({n}, {len(levels)}) for levels {levels}")
    arr = arr.copy()
    for g, k in enumerate(levels):
        col = arr[:, g]
        col[(col < 0) | (col >= k)] = k
    return arr


def build_table(
    segments: list[str] | tuple[str, ...],
    seg: np.ndarray,
    levels: int | Sequence[int],
    a0: np.ndarray,
    a1: np.ndarray,
    pos0: np.ndarray,
    tot0: np.ndarray,
    pos1: np.ndarray,
    tot1: np.ndarray,
    known0: np.ndarray | None = None,
    known1: np.ndarray | None = None,
    weight: np.ndarray | None = None,
    annotators: Sequence[str] | None = None,
    votes0: np.ndarray | None = None,
    votes1: np.ndarray | None = None,
    exact: Sequence[bool] | None = None,
) -> PairTable:
    """Aggregate per-item arrays (one entry per paired item) into a count table.

    ``levels``: the number of levels of the signal, or one number per signal.
    ``a0``/``a1``: [items] or [items, G] levels, -1 (or >= levels) for missing.
    ``known0``/``known1``: optional per-item -1 / 0 / 1 (see ``PairTable``);
    a response with known truth has its signals and labels dropped.
    ``weight``: optional per-entry item weight (1/k for each of an item's k
    paired samples); the table's ``weight`` sums it per cell.
    ``annotators`` with ``votes0``/``votes1`` ([items, A, 2]: said 1, judged,
    per annotator) keep who said what (``pos``/``tot`` are then their sums);
    ``exact`` marks the annotators whose verdicts are settled answers.
    """
    lv = (int(levels),) if isinstance(levels, int | np.integer) else tuple(int(k) for k in levels)
    seg = np.asarray(seg, dtype=np.int64)
    n_items = seg.shape[0]
    a0, a1 = (_levels_2d(a, lv, n_items) for a in (a0, a1))
    pos0, tot0, pos1, tot1 = (np.asarray(x, dtype=np.int64).copy() for x in (pos0, tot0, pos1, tot1))
    names = tuple(annotators or ())
    A = max(1, len(names))
    votes = []
    for v, pos, tot in ((votes0, pos0, tot0), (votes1, pos1, tot1)):
        vv = np.stack([pos, tot], axis=1)[:, None, :] if v is None else np.asarray(v, dtype=np.int64).copy()
        if vv.shape != (n_items, A, 2):
            raise ValueError(f"annotator votes have shape {vv.shape}; expected ({n_items}, {A}, 2)")
        pos[:], tot[:] = vv[..., 0].sum(1), vv[..., 1].sum(1)
        votes.append(vv)
    kn = []
    for k in (known0, known1):
        kk = np.full(n_items, -1, np.int64) if k is None else np.asarray(k, dtype=np.int64).copy()
        kk[(kk != 0) & (kk != 1)] = -1
        kn.append(kk)
    known0, known1 = kn
    for a, pos, tot, k, vv in ((a0, pos0, tot0, known0, votes[0]), (a1, pos1, tot1, known1, votes[1])):
        hit = k >= 0
        a[hit] = np.asarray(lv)[None, :]
        pos[hit] = 0
        tot[hit] = 0
        vv[hit] = 0
    exact_t = tuple(bool(x) for x in (exact or (False,) * A)) if names else ()
    G = len(lv)
    if n_items == 0:
        e1 = np.zeros(0, dtype=np.int64)
        e2 = np.zeros((0, G), dtype=np.int64)
        e3 = np.zeros((0, A, 2), dtype=np.int64) if names else None
        return PairTable(tuple(segments), lv, e1, e2, e2, e1, e1, e1, e1, e1, e1, e1, e1, None, names, e3, e3, exact_t)
    parts = [seg[:, None], a0, a1, known0[:, None], known1[:, None], np.stack([pos0, tot0, pos1, tot1], axis=1)]
    if names:
        parts += [votes[0].reshape(n_items, -1), votes[1].reshape(n_items, -1)]
    stacked = np.concatenate(parts, axis=1)
    keys, inverse, counts = np.unique(stacked, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    cell_weight = (
        None if weight is None else np.bincount(inverse, weights=np.asarray(weight, float), minlength=keys.shape[0])
    )
    return table_from_keys(segments, lv, keys, counts.astype(np.int64), inverse, names, exact_t, cell_weight)


def key_rows(t: PairTable) -> np.ndarray:
    """A table's cells as key rows [J, width], the layout ``table_from_keys`` reads: segment, the signal
    levels of both answers, both known truths, pos/tot of both, then (with annotators) each one's votes."""
    block = [t.seg[:, None], t.a0, t.a1, t.known0[:, None], t.known1[:, None]]
    block += [np.stack([t.pos0, t.tot0, t.pos1, t.tot1], axis=1)]
    if t.annotators:
        assert t.votes0 is not None and t.votes1 is not None
        block += [t.votes0.reshape(t.cells, -1), t.votes1.reshape(t.cells, -1)]
    return np.concatenate(block, axis=1).astype(np.int64)


def table_from_keys(
    segments: Sequence[str],
    levels: tuple[int, ...],
    keys: np.ndarray,
    n: np.ndarray,
    cell_of_item: np.ndarray,
    annotators: tuple[str, ...] = (),
    exact: tuple[bool, ...] = (),
    weight: np.ndarray | None = None,
) -> PairTable:
    """The ``PairTable`` of unique key rows (``key_rows``' layout) with their counts ``n``."""
    G, A = len(levels), max(1, len(annotators))
    col = 1 + 2 * G
    return PairTable(
        segments=tuple(segments),
        levels=levels,
        seg=keys[:, 0],
        a0=keys[:, 1 : 1 + G],
        a1=keys[:, 1 + G : col],
        known0=keys[:, col],
        known1=keys[:, col + 1],
        pos0=keys[:, col + 2],
        tot0=keys[:, col + 3],
        pos1=keys[:, col + 4],
        tot1=keys[:, col + 5],
        n=n,
        cell_of_item=cell_of_item,
        weight=weight,
        votes0=keys[:, col + 6 : col + 6 + 2 * A].reshape(-1, A, 2) if annotators else None,
        votes1=keys[:, col + 6 + 2 * A : col + 6 + 4 * A].reshape(-1, A, 2) if annotators else None,
        annotators=annotators,
        exact=exact,
    )
