"""Turn one dimension's raw signal values into levels 0..K-1 (or missing).

Binary signals (0/1) give two levels; ordinal integers 1..K give K levels;
continuous scores in [0, 1] are cut into quantile bins computed on all models'
scores together, so that a level means the same thing for every model (the
judge's confusion is compared across models on one scale).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from changeover.errors import DataError

MISSING = -1


@dataclass(frozen=True)
class SignalScale:
    """How a dimension's signal maps to levels: kind, number of levels, cut points."""

    kind: str  # "binary" | "ordinal" | "continuous"
    levels: int
    cuts: tuple[float, ...] = ()

    def level(self, value: float | int | None) -> int:
        if value is None:
            return MISSING
        if self.kind == "binary":
            return int(value)
        if self.kind == "ordinal":
            return int(value) - 1
        return int(np.searchsorted(self.cuts, float(value), side="right"))

    def describe(self) -> str:
        if self.kind == "continuous":
            return f"continuous score in {self.levels} quantile bins (cuts {', '.join(f'{c:.3g}' for c in self.cuts)})"
        return f"{self.kind} signal with {self.levels} levels"


def infer_scale(
    values: list[float | int | None], dimension: str, levels: int | None = None, bins: int = 4
) -> SignalScale:
    """Decide the scale of a dimension's signal from its values (and the spec's ``levels``)."""
    present = [v for v in values if v is not None]
    if not present:
        raise DataError(
            f"dimension '{dimension}': no record has a signal for it; check the spec's "
            f"'dimensions.{dimension}.signal' names a key of 'signals' in the records"
        )
    is_float = any(isinstance(v, float) and not float(v).is_integer() for v in present)
    if levels is not None:
        if is_float:
            example = next(v for v in present if isinstance(v, float) and not float(v).is_integer())
            raise DataError(
                f"dimension '{dimension}': the spec says levels: {levels} (ordinal 1..{levels}) "
                f"but the records hold fractional scores such as {example}"
            )
        bad = [v for v in present if not 1 <= int(v) <= levels]
        if bad:
            raise DataError(
                f"dimension '{dimension}': the spec says levels: {levels}, so signals must be "
                f"integers 1..{levels}; found {bad[0]}"
            )
        return SignalScale("ordinal", levels)
    if is_float:
        arr = np.asarray(present, float)
        qs = np.quantile(arr, np.linspace(0, 1, bins + 1)[1:-1])
        cuts = tuple(sorted(set(float(q) for q in qs)))
        if not cuts:
            raise DataError(
                f"dimension '{dimension}': every score is {arr[0]}; a constant signal carries "
                "no information - drop the dimension or fix the judge"
            )
        return SignalScale("continuous", len(cuts) + 1, cuts)
    ints = {int(v) for v in present}
    if ints <= {0, 1}:
        return SignalScale("binary", 2)
    if min(ints) < 1:
        raise DataError(
            f"dimension '{dimension}': signals mix 0 with levels above 1 ({sorted(ints)[:6]}); "
            "use 0/1 for a binary signal or 1..K for an ordinal one"
        )
    return SignalScale("ordinal", max(ints))
