"""Count tables given directly (``assess --tables FILE``): the GROUP BY run in a warehouse, handed to changeover.

One row per cell of one (candidate, dimension) comparison, in a CSV, JSONL or Parquet file:

=========================  ===========================================================================
column                     meaning
=========================  ===========================================================================
``candidate``              the candidate's name (one of the spec's ``candidates``)
``dimension``              the spec's dimension
``segment``                the segment key: the ``segment_by`` values joined with '/' (``all`` without)
``incumbent.<signal>``     the level 0..L-1 of each of the dimension's signals on the incumbent's answer;
``candidate.<signal>``     empty when the judge gave none or the call failed
``incumbent_failed``       1 when that answer is a failed call (known unacceptable), else 0 or empty
``candidate_failed``
``incumbent_pos``          human verdicts on that answer: how many said acceptable (pos) out of how many
``incumbent_tot``          judged (tot); 0 or empty when unlabelled
``candidate_pos``
``candidate_tot``
``n``                      how many paired items fall in the cell
``levels.<signal>``        optional: the signal's number of levels L (default: the spec's ``levels``,
                           else the highest level in the file + 1)
=========================  ===========================================================================

The SQL that computes these columns is what ``assess --show-sql`` prints (``assessment.pushdown``);
``table_rows`` writes the same format from tables built here. Traffic shares are the spec's
``traffic.shares``, else each segment's ``n`` in the first comparison. The rows name no item, so the
decision ranks no responses to label next. A bad value is a ``RecordsError`` naming file, line and column.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from changeover.assessment.pushdown import cells_table, comparison_of, shares_of
from changeover.assessment.result import ErrorRate
from changeover.assessment.service import Prepared
from changeover.assessment.tables import Comparison, DimensionScales
from changeover.config import MigrationSpec
from changeover.errors import RecordsError, where
from changeover.records import iter_rows
from changeover.signals import SignalScale
from changeover.textfiles import write_atomic

SIDES = ("incumbent", "candidate")


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    """A JSONL row may nest ``{"incumbent": {"correct": 1}, "levels": {"correct": 2}}``: flattened to
    ``incumbent.correct`` (the candidate's levels stay flat, ``candidate`` being its name)."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            out[k] = v
    return out


def _whole(row: dict[str, Any], name: str, loc: str, default: int | None = 0) -> int | None:
    value = row.get(name)
    if value is None or value == "":
        if default is None:
            return None
        return default
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0 or not number.is_integer():
        raise RecordsError(f"{where(loc, None, name)}: expected a whole number >= 0, got {value!r}")
    return int(number)


def read_tables(spec: MigrationSpec, path: str | Path) -> Prepared:
    """The ``Prepared`` count tables of a tables file (see the module for its columns)."""
    path = Path(path)
    cells: dict[tuple[str, str], list[tuple[dict[str, Any], str]]] = defaultdict(list)
    for lineno, raw in iter_rows(path, required=("candidate", "dimension", "segment", "n")):
        row, loc = _flat(raw), where(path, lineno)
        for name in ("candidate", "dimension", "segment", "n"):
            if row.get(name) in (None, ""):
                raise RecordsError(
                    f"{where(path, lineno, name)}: missing; every row needs candidate, dimension, segment, n"
                )
        cand, dim = str(row["candidate"]), str(row["dimension"])
        if cand not in spec.candidates:
            raise RecordsError(
                f"{where(path, lineno, 'candidate')}: '{cand}' is not a candidate of the spec {spec.candidates}"
            )
        if dim not in spec.dimensions:
            raise RecordsError(
                f"{where(path, lineno, 'dimension')}: '{dim}' is not a dimension of the spec {list(spec.dimensions)}"
            )
        cells[(cand, dim)].append((row, loc))
    missing = [k for k in ((c, d) for c in spec.candidates for d in spec.dimensions) if k not in cells]
    if missing:
        raise RecordsError(f"{path}: no rows for candidate '{missing[0][0]}' on dimension '{missing[0][1]}'")
    segments = sorted({str(row["segment"]) for rows in cells.values() for row, _ in rows})
    comparisons: dict[tuple[str, str], Comparison] = {}
    for (cand, dim), rows in sorted(
        cells.items(), key=lambda kv: (spec.candidates.index(kv[0][0]), list(spec.dimensions).index(kv[0][1]))
    ):
        comparisons[(cand, dim)] = _comparison(spec, cand, dim, rows, segments)
    keys = [(c, d) for c in spec.candidates for d in spec.dimensions]
    comparisons = {k: comparisons[k] for k in keys}
    first = comparisons[keys[0]].table
    weight: dict[str, float] = defaultdict(float)
    for seg, n in zip(first.seg, first.n, strict=True):
        weight[segments[int(seg)]] += float(n)
    for s in segments:
        weight.setdefault(s, 0.0)
    rates = {spec.incumbent: ErrorRate(spec.incumbent, first.known(0), first.items)}
    verdicts = int(sum(first.tot0 * first.n))
    for c in spec.candidates:
        t = comparisons[(c, next(iter(spec.dimensions)))].table
        rates[c] = ErrorRate(c, t.known(1), t.items)
        verdicts += sum(
            int((comparisons[(c, d)].table.tot1 * comparisons[(c, d)].table.n).sum()) for d in spec.dimensions
        )
    return Prepared(segments, shares_of(spec, dict(weight)), comparisons, rates, verdicts)


def _comparison(
    spec: MigrationSpec, cand: str, dim: str, rows: list[tuple[dict[str, Any], str]], segments: list[str]
) -> Comparison:
    names = spec.dimensions[dim].signal_names
    levels: list[int] = []
    for signal in names:
        given = {_whole(r, f"levels.{signal}", loc, None) for r, loc in rows} - {None}
        seen = [_whole(r, f"{side}.{signal}", loc, None) for r, loc in rows for side in SIDES]
        top = max([v for v in seen if v is not None], default=0)
        if len(given) > 1:
            raise RecordsError(f"{rows[0][1]}: column 'levels.{signal}' differs between rows ({sorted(given)})")  # type: ignore[type-var]
        L = next(iter(given)) if given else (spec.dimensions[dim].levels or max(2, top + 1))
        assert L is not None
        if top >= L:
            loc, column = next(
                (loc, f"{side}.{signal}")
                for r, loc in rows
                for side in SIDES
                if (_whole(r, f"{side}.{signal}", loc, None) or 0) >= L
            )
            raise RecordsError(
                f"{where(loc, None, column)}: a level of signal '{signal}' is >= its {L} levels (0..{L - 1})"
            )
        levels.append(L)
    scales = DimensionScales(
        list(names),
        [SignalScale("binary" if L == 2 and not spec.dimensions[dim].levels else "ordinal", L) for L in levels],
    )
    seg_pos = {s: i for i, s in enumerate(segments)}
    keys: list[list[int]] = []
    counts: list[int] = []
    for r, loc in rows:
        key = [seg_pos[str(r["segment"])]]
        known = []
        for side in SIDES:
            failed = _whole(r, f"{side}_failed", loc)
            if failed not in (0, 1):
                raise RecordsError(f"{where(loc, None, side + '_failed')}: expected 0 or 1, got {failed}")
            known.append(0 if failed else -1)
        for side, k in zip(SIDES, known, strict=True):
            for signal, L in zip(names, levels, strict=True):
                v = _whole(r, f"{side}.{signal}", loc, None)
                key.append(L if v is None or k == 0 else v)
        key += known
        for side, k in zip(SIDES, known, strict=True):
            pos, tot = _whole(r, f"{side}_pos", loc) or 0, _whole(r, f"{side}_tot", loc) or 0
            if pos > tot:
                raise RecordsError(f"{where(loc, None, side + '_pos')}: {pos} said acceptable out of {tot} judged")
            key += [0, 0] if k == 0 else [pos, tot]
        keys.append(key)
        counts.append(_whole(r, "n", loc) or 0)
    table, items = cells_table(segments, scales, (), (), keys, counts, [])
    return comparison_of(cand, dim, scales, table, items, (0, 0), int(sum(counts)))


def write_tables_csv(comparisons: Mapping[tuple[str, str], Comparison], path: str | Path) -> int:
    """Write the count tables in the ``--tables`` format as CSV, atomically; returns the number of rows."""
    rows = table_rows(comparisons)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(Path(path), buf.getvalue(), "the count tables")
    return len(rows)


def table_rows(comparisons: Mapping[tuple[str, str], Comparison]) -> list[dict[str, Any]]:
    """The count tables in the ``--tables`` format (who labelled is not kept: the verdicts' sums)."""
    out = []
    for (cand, dim), comp in comparisons.items():
        t, names = comp.table, comp.scales.names
        for j in range(t.cells):
            row: dict[str, Any] = {"candidate": cand, "dimension": dim, "segment": t.segments[int(t.seg[j])]}
            for side, a, k in (("incumbent", t.a0, t.known0), ("candidate", t.a1, t.known1)):
                for g, signal in enumerate(names):
                    level = int(a[j, g])
                    row[f"{side}.{signal}"] = None if level >= t.levels[g] else level
                row[f"{side}_failed"] = int(k[j] == 0)
            row.update(
                incumbent_pos=int(t.pos0[j]),
                incumbent_tot=int(t.tot0[j]),
                candidate_pos=int(t.pos1[j]),
                candidate_tot=int(t.tot1[j]),
                n=int(t.n[j]),
            )
            row.update({f"levels.{signal}": t.levels[g] for g, signal in enumerate(names)})
            out.append(row)
    return out
