"""The count tables as a GROUP BY in the engine where the records live (DuckDB for files, the store's SQL).

``assess`` on a million records spends its time building Python ``Record`` objects only to count
them into a few hundred cells. Here the counting runs where the records are: in DuckDB over a
JSONL or Parquet file (``read_ndjson_objects`` / ``read_parquet``), or in the store's own SQL
(SQLite, PostgreSQL; the ``responses`` table's JSON columns). The result is a ``service.Prepared``
holding the same ``Comparison`` tables the Python engine (``service.prepare``) builds, cell for cell.

The steps, each one SQL statement (``Pushdown.statements`` keeps them, ``assess --show-sql`` prints them):

1. ``co_items``: one row per item, both answers side by side -- one GROUP BY item straight over the
   records, each response projected once to what the tables read (item, model, segment key, failed call
   as ``pairing.failed`` says, every signal as a number, whether it carries a human label on a spec
   dimension, weight, sample); in PostgreSQL the projection and a partial aggregate run in parallel
   workers. No table of responses is written.
2. One pass over ``co_items``: per segment its weight, duplicates, odd values, every model's answers and
   failed calls, every signal's count and fractional values; then per signal its distinct values or its
   quantile cut points (``signals.infer_scale`` reads them: the scale is decided by the same code).
3. Per (candidate, dimension): one GROUP BY over the unlabelled paired items -- (segment, each
   signal's level on both answers, known failure of both) -> n, and the first items of each cell.

Items with a human label (in the records, or in the store's labels table) are few (under 1% at
scale). From a store their verdicts are counted in SQL (``pushdown_votes``: one row per verdict in
``co_votes``, the labelled items in ``co_lab``, one more GROUP BY per comparison with each answer's
verdicts, per annotator when any is named), so Python receives count rows only and its memory does not
grow with the records. From a file the labelled rows are read back in batches and validated as records
(``records.record_from_dict``), and only their verdicts are kept, as rows of the same ``co_votes``
(``pushdown_votes.build_from_records``), counted by the same SQL. Either way their cells are merged with
the GROUP BY's. A ``Comparison``
then carries only the first ``2 * next_count + 2`` items of each cell in item order: the labelling
queue (``ranking.next_labels``) takes at most ``next_count`` labels and skips at most as many taken
ones, so the ranked labels are the Python engine's exactly; ``paired_items`` counts all of them.

Not pushed down (``Unsupported``; the CLI says so in one line and runs the Python engine):
repeated samples (``sample`` > 0), signals given as text, values outside a signal's range, and any
condition the Python engine reports as an error (duplicate records, a missing segment field, no
paired item), so that every error message is the Python engine's own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from changeover.assessment.objectstore import ObjectPath, records_path
from changeover.assessment.pairing import Index, traffic_shares
from changeover.assessment.result import ErrorRate
from changeover.assessment.service import Prepared
from changeover.assessment.tables import Comparison, DimensionScales
from changeover.config import MigrationSpec
from changeover.errors import RecordsError
from changeover.records import Record, record_from_dict, unflatten
from changeover.signals import SignalScale, infer_scale
from changeover.stats.tables import PairTable, table_from_keys

_DISTINCT_LIMIT = 64  # more distinct whole numbers than this in a signal: not an ordinal scale, let Python say so


_TEMP_TABLES = ("co_items", "co_head", "co_votes", "co_lab", "co_store_labelled", "co_wanted")
_PREFIX = 50_000  # paired items read in item order for the first items of each cell (the store's SQL)


def _sql_value(value: Any) -> str:
    """A cell key's value as an SQL literal (segment keys are text, levels whole numbers)."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(int(value))


class Unsupported(Exception):
    """The pushdown cannot build these tables exactly; ``reason`` says why (the Python engine can)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class CellQuery:
    """One comparison's cells as SQL: the key expressions (``k0``, ``k1``, ...), FROM, WHERE, bound values."""

    keys: list[str]
    source: str
    where: str
    params: dict[str, Any]
    item: str = "item"

    def _keys(self) -> str:
        return ",\n  ".join(f"{k} AS k{i}" for i, k in enumerate(self.keys))

    def group_sql(self, extra: str = "") -> str:
        """The GROUP BY: one row per cell, its keys and ``n``."""
        group = ", ".join(str(i + 1) for i in range(len(self.keys)))
        rest = f"FROM {self.source}\nWHERE {self.where}\nGROUP BY {group}"
        return f"SELECT {self._keys()},\n  count(*) AS n{extra}\n{rest}"

    def items_sql(self) -> str:
        """One row per item: its cell's keys and the item."""
        return f"SELECT {self._keys()},\n  {self.item} AS item\nFROM {self.source}\nWHERE {self.where}"


class _Runner(Protocol):
    dialect: str

    def run(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]: ...


@dataclass(frozen=True, slots=True)
class PushedComparison(Comparison):
    """A ``Comparison`` whose ``items`` hold only the first items of each cell (what the labelling queue
    can take); ``paired`` counts every paired item."""

    paired: int = 0

    @property
    def paired_items(self) -> int:
        return self.paired


@dataclass
class Pushed:
    """What the pushdown gives ``assess``: the tables, the SQL it ran (and ``records``, for ``assess``'s
    records argument: none, every labelled item's verdicts are counted in SQL)."""

    prepared: Prepared
    records: list[Record]  # always empty: no response is read back as a Record
    merged: int | None  # store verdicts merged into them (None: the store was not consulted)
    rows: int  # responses of the spec's models counted
    statements: list[str] = field(default_factory=list)


def _quote(name: str) -> str:
    if '"' in name or "'" in name:
        raise Unsupported(f"a field name with quotes ({name!r}) is not pushed down")
    return name


def _numpy_quantiles(n: int, bins: int) -> list[tuple[int, int, float]]:
    """For ``np.quantile(values, linspace(0, 1, bins + 1)[1:-1])`` (method 'linear') on ``n`` sorted values:
    each quantile's (lower index, upper index, weight), computed exactly as numpy does."""
    out = []
    for q in np.linspace(0, 1, bins + 1)[1:-1]:
        virtual = n * q + (1 + q * (1 - 1 - 1)) - 1
        lo = int(np.floor(virtual))
        gamma = float(virtual - lo)
        out.append((min(max(lo, 0), n - 1), min(max(lo + 1, 0), n - 1), gamma))
    return out


def _lerp(a: float, b: float, t: float) -> float:
    """numpy's ``_lerp``: a + (b - a) t, from the upper end when t >= 0.5."""
    diff = b - a
    return float(b - diff * (1 - t)) if t >= 0.5 else float(a + diff * t)


class Pushdown:
    """Builds the count tables of one spec with SQL statements run by ``runner`` (DuckDB or the store)."""

    def __init__(self, spec: MigrationSpec, runner: _Runner, next_count: int) -> None:
        self.spec, self.runner, self.next_count = spec, runner, next_count
        self.models = list(spec.models)
        self.signals = sorted({s for d in spec.dimensions.values() for s in d.signal_names})
        self.statements: list[str] = []
        self.duck = runner.dialect == "duckdb"

    # ------------------------------------------------------------------ running and showing SQL

    def param(self, name: str) -> str:
        return f"${name}" if self.duck else f":{name}"

    def run(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        shown = sql
        for k, v in (params or {}).items():
            value = repr(v) if not isinstance(v, str) else _literal(v)
            shown = re.sub(rf"[$:]{k}\b", value.replace("\\", "\\\\"), shown)  # backslashes kept as they are
        self.statements.append(shown.strip() + ";")
        return self.runner.run(sql, params)

    # ------------------------------------------------------------------ step 2: items side by side

    def build_items(self, projection: tuple[str, str], source: str) -> None:
        """``co_items`` straight from the records (``projection``: the SELECT list of one response and the
        WHERE of the spec's models, over ``source``): one GROUP BY item, no table of responses in between."""
        cols = ["item", "max(lab) AS lab", "max(smp) AS smp", "min(smp) AS smp_min", "sum(bad) AS bad"]
        for m in range(len(self.models)):
            cols += [  # FILTER, not max(CASE ...): measured cheaper per row in PostgreSQL
                f"count(*) FILTER (WHERE m = {m}) AS n_{m}",
                f"max(f) FILTER (WHERE m = {m}) AS f_{m}",
                f"max(seg) FILTER (WHERE m = {m}) AS seg_{m}",
                f"max(w) FILTER (WHERE m = {m}) AS w_{m}",
            ]
            cols += [f"max(s_{g}) FILTER (WHERE m = {m}) AS s_{m}_{g}" for g in range(len(self.signals))]
        select, models = projection
        rec = f"SELECT\n  {select}\nFROM {source}\nWHERE {models}"
        self.run(
            "CREATE TEMP TABLE co_items AS SELECT " + ",\n  ".join(cols) + f"\nFROM ({rec}) AS co_rec GROUP BY item"
        )

    def _values(self, g: int) -> str:
        """Signal ``g`` of every answer that did not fail (one column ``x``), from ``co_items``."""
        parts = [
            f"SELECT s_{m}_{g} AS x FROM co_items WHERE f_{m} = 0 AND s_{m}_{g} IS NOT NULL"
            for m in range(len(self.models))
        ]
        return "(" + "\nUNION ALL ".join(parts) + ") AS answers"

    def check(self) -> tuple[int, dict[str, ErrorRate]]:
        """Everything the Python engine would report as an error, or cannot be pushed down -> Unsupported."""
        M, G = len(self.models), len(self.signals)
        dup = " OR ".join(f"n_{m} > 1" for m in range(M))
        odd = [f"CASE WHEN w_{m} < 0 THEN 1 ELSE 0 END" for m in range(M)] + ["CASE WHEN smp_min < 0 THEN 1 ELSE 0 END"]
        odd += [  # a signal below 0, or above 1 and not a whole number (a level)
            f"CASE WHEN s_{m}_{g} < 0 OR (s_{m}_{g} > 1 AND s_{m}_{g} <> round(s_{m}_{g})) THEN 1 ELSE 0 END"
            for m in range(M)
            for g in range(G)
        ]
        cols = [
            f"{self._lead('seg')} AS seg",
            f"sum(coalesce({self._lead('w')}, 1.0)) AS weight",
            f"sum(CASE WHEN {dup} THEN 1 ELSE 0 END) AS twice",
            "max(smp)",
            f"sum(bad + {' + '.join(odd)})",
        ]
        cols += [f"sum(n_{m}), sum(f_{m})" for m in range(M)]
        for g in range(G):
            cols += [
                " + ".join(f"sum(CASE WHEN f_{m} = 0 AND s_{m}_{g} IS NOT NULL THEN 1 ELSE 0 END)" for m in range(M)),
                " + ".join(
                    f"sum(CASE WHEN f_{m} = 0 AND s_{m}_{g} <> round(s_{m}_{g}) THEN 1 ELSE 0 END)" for m in range(M)
                ),
            ]
        # one pass: each segment's weight, items a model answers twice, samples, odd values, every model's
        # answers and failed calls, every signal's values and fractional values
        got = self.run("SELECT " + ",\n  ".join(cols) + ",\n  count(*)\nFROM co_items GROUP BY 1 ORDER BY 1")
        self.segment_rows = [(r[0], r[1]) for r in got]
        self.items_total = sum(int(r[-1]) for r in got)

        def total(col: int) -> int:
            return sum(int(r[col] or 0) for r in got)

        smp = max((r[3] for r in got if r[3] is not None), default=None)
        bad = total(4)
        col = 5 + 2 * M
        self.signal_counts = [(total(col + 2 * g), total(col + 2 * g + 1)) for g in range(G)]
        if smp is not None and smp > 0:
            raise Unsupported("repeated samples ('sample' > 0) are paired by the Python engine")
        if bad:
            raise Unsupported(
                f"{bad} value(s) are text, out of range or invalid (signals, sample, weight); the Python engine reads "
                "and reports them"
            )
        per_model = {m: (total(5 + 2 * m), total(6 + 2 * m)) for m in range(M)}
        if any(n == 0 for n, _ in per_model.values()):
            raise Unsupported("a model of the spec has no records")
        if total(2):
            raise Unsupported("a model answers an item twice")
        rates = {name: ErrorRate(name, per_model[m][1], per_model[m][0]) for m, name in enumerate(self.models)}
        return sum(n for n, _ in per_model.values()), rates

    # ------------------------------------------------------------------ segments and shares

    def _lead(self, what: str, default: str = "NULL") -> str:
        whens = " ".join(f"WHEN n_{m} > 0 THEN {what}_{m}" for m in range(len(self.models)))
        return f"CASE {whens} ELSE {default} END"

    def segments(self) -> tuple[list[str], np.ndarray]:
        rows = self.segment_rows  # read by ``check``
        if any(seg is None for seg, _ in rows):
            raise Unsupported("an item's lead record lacks a segment_by field")
        segments = sorted(str(s) for s, _ in rows)
        return segments, shares_of(self.spec, {str(s): float(w) for s, w in rows})

    # ------------------------------------------------------------------ step 3: scales

    def scale(self, g: int, label: str, levels: int | None, bins: int) -> SignalScale:
        n, frac = self.signal_counts[g]  # counted by ``check``
        if not n:
            raise Unsupported(f"no record has the signal '{self.signals[g]}'")
        if frac:
            if levels is not None:
                raise Unsupported(f"dimension '{label}' has fractional scores but the spec gives levels")
            cuts = set()
            picks = _numpy_quantiles(int(n), bins)
            if self.runner.dialect == "postgresql":  # every order statistic needed from one sort
                at = self.order_statistics(g, int(n), sorted({i for lo, hi, _ in picks for i in (lo, hi)}))
                cuts = {_lerp(at[lo], at[hi], t) for lo, hi, t in picks}
            for lo, hi, t in picks if not cuts else ():
                got = self.run(f"SELECT x FROM {self._values(g)} ORDER BY x LIMIT 2 OFFSET {lo}")
                values = [float(v) for (v,) in got]
                b = values[1] if hi > lo and len(values) > 1 else values[0]
                cuts.add(_lerp(values[0], b, t))
            ordered = tuple(sorted(cuts))
            return SignalScale("continuous", len(ordered) + 1, ordered)
        distinct = self.run(f"SELECT DISTINCT x FROM {self._values(g)} ORDER BY 1 LIMIT {_DISTINCT_LIMIT + 1}")
        if len(distinct) > _DISTINCT_LIMIT:
            raise Unsupported(f"the signal '{self.signals[g]}' has more than {_DISTINCT_LIMIT} levels")
        try:
            return infer_scale([int(v) for (v,) in distinct], label, levels, bins)
        except Exception as exc:  # the Python engine reports it with its own words
            raise Unsupported(str(exc)) from None

    def order_statistics(self, g: int, n: int, indices: list[int]) -> dict[int, float]:
        """The values at these 0-based positions of the sorted signal ``g`` of answers (PostgreSQL):
        ``percentile_disc`` at (i + 1/2) / n is the value at position i, all of them from one sort."""
        fractions = ", ".join(repr((i + 0.5) / n) for i in indices)
        (values,) = self.run(
            f"SELECT percentile_disc(ARRAY[{fractions}]::float8[]) WITHIN GROUP (ORDER BY x) FROM {self._values(g)}"
        )[0]
        return {i: float(v) for i, v in zip(indices, values, strict=True)}

    def head_items(self) -> None:
        """``co_head``: the first ``_PREFIX`` items in item order (the store's SQL), one top-N pass over
        ``co_items``; ``first_items`` takes the first items of each cell from it, no index, no full sort."""
        collate = ' COLLATE "C"' if self.runner.dialect == "postgresql" else ""
        self.run(f"CREATE TEMP TABLE co_head AS SELECT * FROM co_items ORDER BY item{collate} LIMIT {_PREFIX}")
        if self.runner.dialect == "postgresql":  # the planner's statistics: the cells' GROUP BYs hash, not sort
            self.run("ANALYZE co_items")

    def scales(self) -> dict[str, DimensionScales]:
        out = {}
        for name, dim in self.spec.dimensions.items():
            scales = []
            for signal in dim.signal_names:
                label = name if len(dim.signal_names) == 1 else f"{name}' signal '{signal}"
                scales.append(self.scale(self.signals.index(signal), label, dim.levels, dim.bins))
            out[name] = DimensionScales(list(dim.signal_names), scales)
        return out

    # ------------------------------------------------------------------ step 4: the GROUP BY

    def _level(self, m: int, g: int, scale: SignalScale, key: str, params: dict[str, float]) -> str:
        s = f"s_{m}_{g}"
        if scale.kind == "binary":
            level = f"CAST({s} AS INTEGER)"
        elif scale.kind == "ordinal":
            level = f"CAST({s} AS INTEGER) - 1"
        else:
            parts = []
            for i, cut in enumerate(scale.cuts):
                params[f"{key}_{i}"] = cut
                parts.append(f"CASE WHEN {s} >= {self.param(f'{key}_{i}')} THEN 1 ELSE 0 END")
            level = "(" + " + ".join(parts) + ")"
        return f"CASE WHEN f_{m} = 1 OR {s} IS NULL THEN {scale.levels} ELSE {level} END"

    def cell_query(self, candidate: str, dimension: str, scales: DimensionScales, lab: int = 0) -> CellQuery:
        """The comparison's cells over the items with ``lab`` = 0 (no human label) or 1 (labelled): the keys
        up to both known truths (the labelled items' verdicts are added by ``pushdown_votes``)."""
        c = self.models.index(candidate)
        params: dict[str, Any] = {}
        keys = ["seg_0"]
        for m, tag in ((0, "inc"), (c, "cand")):
            for name, scale in zip(scales.names, scales.scales, strict=True):
                g = self.signals.index(name)
                keys.append(self._level(m, g, scale, f"cut_{tag}_{g}", params))
        keys += ["CASE WHEN f_0 = 1 THEN 0 ELSE -1 END", f"CASE WHEN f_{c} = 1 THEN 0 ELSE -1 END"]
        where = f"n_0 > 0 AND n_{c} > 0 AND lab = {lab}"
        if self.spec.dimensions[dimension].errors == "exclude":
            where += f" AND f_0 = 0 AND f_{c} = 0"
        return CellQuery(keys, "co_items", where, params)

    @property
    def _take(self) -> int:
        return 2 * self.next_count + 2 if self.next_count > 0 else 0

    def cells(self, query: CellQuery) -> list[tuple[Any, ...]]:
        """The cells' keys and counts (DuckDB: and the first items of each cell)."""
        first = f",\n  min(item, {self._take}) AS first_items" if self.duck and self._take else ""
        return self.run(query.group_sql(first), query.params)

    def first_items(
        self, query: CellQuery, cells: Sequence[tuple[Any, ...]], prefix: bool = True
    ) -> list[tuple[Any, ...]]:
        """The first ``_take`` items of every cell, in item order (SQLite, PostgreSQL).

        No sort of every item: the first ``_PREFIX`` paired items in item order (``co_items``' index on
        item) fill the cells that are common; only the cells still short of their first items (few
        items, spread out) are ranked by a window query, over their own items. ``prefix`` False: every
        item ranked at once (the labelled ones: few)."""
        if not self._take:
            return []
        nkeys, params = len(query.keys), query.params
        keys = ", ".join(f"k{i}" for i in range(nkeys))
        collate = ' COLLATE "C"' if self.runner.dialect == "postgresql" else ""  # Python's order of text
        inner = query.items_sql()

        def ranked(source: str, where: str = "") -> list[tuple[Any, ...]]:
            return self.run(
                f"SELECT {keys}, item FROM (SELECT {keys}, item, "
                f"ROW_NUMBER() OVER (PARTITION BY {keys} ORDER BY item{collate}) AS rn "
                f"FROM ({source}) AS cells{where}) AS ranked WHERE rn <= {self._take}",
                params,
            )

        if not prefix:
            return ranked(inner)
        # co_head's items that are the comparison's are a prefix, in item order, of the comparison's items: a
        # cell with its first items (or all of them) there is complete
        out = ranked(replace(query, source="co_head").items_sql())
        if self.items_total <= _PREFIX:  # the head holds every item
            return out
        want = {tuple(c[:nkeys]): min(int(c[nkeys]), self._take) for c in cells}
        got: dict[tuple[Any, ...], int] = {}
        for row in out:
            got[tuple(row[:nkeys])] = got.get(tuple(row[:nkeys]), 0) + 1
        short = [k for k, n in want.items() if got.get(k, 0) < n]
        if not short:
            return out
        values = ", ".join("(" + ", ".join(_sql_value(v) for v in k) + ")" for k in short)
        missing = set(short)
        return [r for r in out if tuple(r[:nkeys]) not in missing] + ranked(
            inner, f" WHERE ({keys}) IN (VALUES {values})"
        )

    def excluded(self, candidate: str) -> tuple[int, int]:
        c = self.models.index(candidate)
        f0, f1 = self.run(f"SELECT sum(f_0), sum(f_{c}) FROM co_items WHERE n_0 > 0 AND n_{c} > 0")[0]
        return int(f0 or 0), int(f1 or 0)

    def prepare(self) -> tuple[Prepared, int, int]:
        """The ``Prepared`` tables; the labelled items' verdicts are counted in SQL from ``co_votes``
        (``pushdown_votes``: built from the store's columns, or from a file's labelled rows)."""
        from changeover.assessment import pushdown_votes

        rows, rates = self.check()
        segments, shares = self.segments()
        scales = self.scales()
        merged, labels_in = pushdown_votes.counts(self)
        comparisons: dict[tuple[str, str], Comparison] = {}
        for candidate in self.spec.candidates:
            excludes = any(d.errors == "exclude" for d in self.spec.dimensions.values())
            excluded = self.excluded(candidate) if excludes else (0, 0)
            for dimension, dim in self.spec.dimensions.items():
                query = self.cell_query(candidate, dimension, scales[dimension])
                cells = self.cells(query)
                part = Part([], [], [], (), ())
                if not self.duck:
                    n = len(query.keys)
                    part.carried += [(str(r[n]), tuple(r[:n])) for r in self.first_items(query, cells)]
                part = part.plus(pushdown_votes.labelled_part(self, candidate, dimension, scales[dimension], segments))
                paired = sum(int(r[len(query.keys)]) for r in cells) + sum(part.counts)
                if not paired:
                    raise Unsupported(f"no item pairs '{candidate}' with the incumbent on '{dimension}'")
                comparisons[(candidate, dimension)] = _merge(
                    candidate,
                    dimension,
                    scales[dimension],
                    segments,
                    cells,
                    part,
                    excluded if dim.errors == "exclude" else (0, 0),
                    paired,
                )
        return Prepared(segments, shares, comparisons, rates, labels_in), merged, rows


def shares_of(spec: MigrationSpec, weight: Mapping[str, float]) -> np.ndarray:
    """Each segment's traffic share from its total item weight, by the Python engine's own ``traffic_shares``
    (the spec's ``traffic.shares`` when given): every segment is one pseudo-item of that weight."""
    segments = sorted(weight)
    lead = {s: Record(item=s, model="", weight=weight[s]) for s in segments}
    return traffic_shares(spec, Index({}, {s: s for s in segments}, lead, {}), segments)


@dataclass
class Part:
    """Cells given with their whole keys (``key_rows``' layout: votes included), their counts, the items
    carried as (item, cell key) and who labelled (``annotators``, ``exact``): the labelled items' share of
    a comparison, and the first items of the unlabelled cells (``carried`` only)."""

    rows: list[list[int]]
    counts: list[int]
    carried: list[tuple[str, tuple[Any, ...]]]  # (item, (its row in `rows`,)) or (item, its unlabelled cell's key)
    names: tuple[str, ...]
    exact: tuple[bool, ...]

    def plus(self, other: Part) -> Part:
        """The first items of the unlabelled cells (self) beside the labelled part (other)."""
        return Part(other.rows, other.counts, [*self.carried, *other.carried], other.names, other.exact)


def _merge(
    candidate: str,
    dimension: str,
    scales: DimensionScales,
    segments: list[str],
    cells: Sequence[tuple[Any, ...]],
    part: Part,
    excluded: tuple[int, int],
    paired: int,
) -> PushedComparison:
    """The GROUP BY's cells (of unlabelled items) and the labelled part -> one table, cells in ``build_table``'s
    order. A carried item names its cell by its unlabelled key (``seg, levels.., known0, known1``: an item
    of ``cells``), by its whole key (the labelled cells in SQL) or by its row in ``part.rows`` (one value)."""
    G = len(scales.names)
    nkeys = 3 + 2 * G
    seg_pos = {s: i for i, s in enumerate(segments)}
    names = part.names
    A = max(1, len(names))
    width = 2 * G + 7 + (4 * A if names else 0)

    def key(row: Sequence[Any]) -> list[int]:
        rest = [int(x) for x in row[1:nkeys]] + [0] * (width - nkeys)
        return [seg_pos[str(row[0])], *rest]

    rows = [key(r) for r in cells]
    counts = [int(r[nkeys]) for r in cells]
    carried: list[tuple[str, int]] = []  # (item, row in `rows`)
    if len(cells) and len(cells[0]) > nkeys + 1:  # DuckDB: each cell's first items beside it
        for i, r in enumerate(cells):
            carried += [(str(item), i) for item in (r[nkeys + 1] or [])]
    offset = len(rows)
    rows += part.rows
    counts += part.counts
    row_of: dict[tuple[int, ...], int] = {}
    for i, k in enumerate(rows):  # the unlabelled cells first: a short key names the cell of unlabelled items
        row_of.setdefault(tuple(k), i)
    for item, cell in part.carried:
        if len(cell) == 1:
            carried.append((item, offset + int(cell[0])))
        else:
            carried.append((item, row_of[tuple(key(cell))]))
    table, items = cells_table(segments, scales, names, part.exact, rows, counts, carried)
    return comparison_of(candidate, dimension, scales, table, items, excluded, paired)


def cells_table(
    segments: list[str],
    scales: DimensionScales,
    names: tuple[str, ...],
    exact: tuple[bool, ...],
    rows: list[list[int]],
    counts: list[int],
    carried: list[tuple[str, int]],
) -> tuple[PairTable, list[str]]:
    """Cells as key rows (segment, signal levels of both answers, known truths, pos/tot of both, then
    each annotator's votes) with their counts -> the ``PairTable`` ``build_table`` would give for their
    items (rows with equal keys merged, cells in its order), and the carried (item, row) as its items."""
    G = len(scales.names)
    A = max(1, len(names))
    width = 2 * G + 7 + (4 * A if names else 0)
    keys_in = np.asarray(rows, np.int64).reshape(len(rows), width)
    keys, inverse = np.unique(keys_in, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    n = np.bincount(inverse, weights=np.asarray(counts, float), minlength=keys.shape[0]).astype(np.int64)
    carried = sorted(carried, key=lambda x: x[0])
    cell_of_item = np.asarray([inverse[r] for _, r in carried], np.int64)
    levels = tuple(s.levels for s in scales.scales)
    table = table_from_keys(segments, levels, keys, n, cell_of_item, names, exact)
    return table, [item for item, _ in carried]


def comparison_of(
    candidate: str,
    dimension: str,
    scales: DimensionScales,
    table: PairTable,
    items: list[str],
    excluded: tuple[int, int],
    paired: int,
) -> PushedComparison:
    """The ``Comparison`` of a table built from cells: its counts read off the table."""
    lv = np.asarray(table.levels)[None, :]
    scored = tuple(
        tuple(int(x) for x in (table.n[:, None] * ((a < lv) & (k[:, None] < 0))).sum(0))
        for a, k in ((table.a0, table.known0), (table.a1, table.known1))
    )
    return PushedComparison(
        candidate,
        dimension,
        table,
        items,
        scales,
        (table.labelled(0), table.labelled(1)),
        (table.known(0), table.known(1)),
        excluded,
        (scored[0], scored[1]),
        np.ones((2, len(items)), bool),  # [2, entries]: every carried entry holds both first samples
        paired=paired,
    )


# --------------------------------------------------------------------------- engines


class DuckRunner:
    """Runs the pushdown's SQL in an in-process DuckDB (memory-capped; it spills to disk beyond)."""

    dialect = "duckdb"

    def __init__(self, memory_limit: str = "512MB") -> None:
        try:
            import duckdb
        except ImportError:
            raise Unsupported("DuckDB is not installed (pip install 'changeover[scale]')") from None
        self.con = duckdb.connect()
        self.con.execute(f"SET memory_limit = '{memory_limit}'")
        self.con.execute("SET preserve_insertion_order = false")

    def run(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        cur = self.con.execute(sql, dict(params) if params else None)
        try:
            return list(cur.fetchall())
        except Exception:  # a statement without a result
            return []


class SqlRunner:
    """Runs the pushdown's SQL on one connection of the store (SQLite or PostgreSQL)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.dialect = str(conn.dialect.name)

    def run(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        from sqlalchemy import text

        res = self.conn.execute(text(sql), dict(params or {}))
        return [tuple(r) for r in res.fetchall()] if res.returns_rows else []

    def many(self, sql: str, rows: list[dict[str, Any]]) -> None:
        """One statement for many rows of values (an executemany)."""
        from sqlalchemy import text

        self.conn.execute(text(sql), rows)


def available() -> bool:
    """True when DuckDB is installed (``pip install 'changeover[scale]'``)."""
    import importlib.util

    return importlib.util.find_spec("duckdb") is not None


# the characters Python's str.strip() removes (str.isspace): an answer of only these is empty, a failed call
WHITESPACE = (*range(0x09, 0x0E), *range(0x1C, 0x21), 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029,
              0x202F, 0x205F, 0x3000)  # fmt: skip


def blank_sql(expr: str, dialect: str) -> str:
    """SQL true when ``expr`` is empty or whitespace only, as ``pairing.failed`` reads an answer (NULL: not)."""
    if dialect == "sqlite":
        return f"trim({expr}, char({', '.join(map(str, WHITESPACE))})) = ''"
    chars = " || ".join(f"chr({c})" for c in WHITESPACE)
    return f"{'btrim' if dialect == 'postgresql' else 'trim'}({expr}, {chars}) = ''"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _file_projection(p: Pushdown, path: Path | ObjectPath) -> tuple[tuple[str, str], str]:
    """The SELECT list and FROM of ``co_rec`` over a JSONL or Parquet file, in DuckDB."""
    suffix = "".join(path.suffixes[-2:]).lower()
    lit = _literal(str(path))
    if suffix.endswith(".parquet"):
        cols = {str(r[0]): str(r[1]) for r in p.run(f"DESCRIBE SELECT * FROM read_parquet({lit})")}

        def col(head: str, tail: str | None = None) -> tuple[str | None, str]:
            """The column (or struct field) ``head.tail`` and its DuckDB type; (None, '') when absent."""
            if tail is None:
                return (f'"{head}"', cols[head]) if head in cols else (None, "")
            if f"{head}.{tail}" in cols:
                return f'"{head}.{tail}"', cols[f"{head}.{tail}"]
            if not cols.get(head, "").startswith("STRUCT"):
                return None, ""
            expr = f'"{head}"."{_quote(tail)}"'
            try:
                got = p.runner.run(f"SELECT typeof({expr}) FROM read_parquet({lit}) LIMIT 1")
            except Exception as exc:  # no such field in the struct (a Binder error); anything else is an error
                if type(exc).__name__ != "BinderException":
                    raise
                return None, ""
            return expr, str(got[0][0]) if got else ""

        def text(head: str, tail: str | None = None) -> str:
            c, _ = col(head, tail)
            return f"CAST({c} AS VARCHAR)" if c else "NULL"

        def number(head: str, tail: str | None = None) -> tuple[str, str]:
            c, kind = col(head, tail)
            if c is None:
                return "NULL", "0"
            if kind.startswith("VARCHAR") or kind.endswith("[]") or kind.startswith("STRUCT"):
                return "NULL", f"CASE WHEN {c} IS NOT NULL THEN 1 ELSE 0 END"
            return f"CAST({c} AS DOUBLE)", "0"

        def labelled(dim: str) -> str:
            c, kind = col("labels", dim)
            if c is None:
                return "0"
            if kind.endswith("[]"):
                return f"CASE WHEN len({c}) > 0 THEN 1 ELSE 0 END"
            if kind.startswith("VARCHAR"):
                return f"CASE WHEN trim({c}) NOT IN ('', '[]') THEN 1 ELSE 0 END"
            return f"CASE WHEN {c} IS NOT NULL THEN 1 ELSE 0 END"

        source = f"read_parquet({lit})"
        odd_values = [
            f'CASE WHEN "{_quote(c)}" IS NOT NULL THEN 1 ELSE 0 END'
            for c, kind in cols.items()
            if c.startswith("segment.") and (kind.startswith(("STRUCT", "MAP", "BOOLEAN")) or kind.endswith("[]"))
        ]
        odd_segment = " + ".join(odd_values) or "0"
    else:

        def jp(head: str, tail: str | None = None) -> str:
            return f"'$.{head}'" if tail is None else f"'$.{head}.\"{_quote(tail)}\"'"

        def text(head: str, tail: str | None = None) -> str:
            return f"json_extract_string(json, {jp(head, tail)})"

        def number(head: str, tail: str | None = None) -> tuple[str, str]:
            t, v = f"json_type(json, {jp(head, tail)})", text(head, tail)
            value = f"CASE WHEN {t} = 'BOOLEAN' THEN CAST({v} = 'true' AS DOUBLE) ELSE TRY_CAST({v} AS DOUBLE) END"
            bad = (
                f"CASE WHEN {t} IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'BOOLEAN', 'NULL') OR {t} IS NULL THEN 0 ELSE 1 END"
            )
            return value, bad

        def labelled(dim: str) -> str:
            t, v = f"json_type(json, {jp('labels', dim)})", text("labels", dim)
            return (
                f"CASE WHEN {t} IS NULL OR {t} = 'NULL' THEN 0 WHEN {t} = 'ARRAY' THEN "
                f"CASE WHEN json_array_length(json, {jp('labels', dim)}) > 0 THEN 1 ELSE 0 END "
                f"WHEN {t} = 'VARCHAR' THEN CASE WHEN trim({v}) NOT IN ('', '[]') THEN 1 ELSE 0 END ELSE 1 END"
            )

        source = f"read_ndjson_objects({lit})"
        kinds = "list_transform(json_keys(json, '$.segment'), k -> json_type(json, '$.segment.\"' || k || '\"'))"
        odd_segment = (
            f"CASE WHEN json_type(json, '$.segment') = 'OBJECT' AND list_has_any({kinds}, "
            "['OBJECT', 'ARRAY', 'BOOLEAN', 'NULL']) THEN 1 ELSE 0 END"
        )
    error, response = text("error"), text("response")
    fail = f"CASE WHEN ({error} IS NOT NULL AND {error} <> '') OR {blank_sql(response, 'duckdb')} THEN 1 ELSE 0 END"
    sample, sample_bad = number("sample")
    weight, weight_bad = number("weight")
    odd = [
        f"({sample_bad}) + ({weight_bad})",
        f"CASE WHEN {sample} IS NOT NULL AND ({sample} < 0 OR {sample} <> round({sample})) THEN 1 ELSE 0 END",
    ]
    # what records.record_from_dict refuses in any row (the labelled ones are validated as records): an
    # optional number that is no finite number >= 0, a segment value that is no text or number
    for name in ("latency_ms", "tokens_in", "tokens_out", "cost_usd"):
        value, bad = number(name)
        if value != "NULL" or bad != "0":
            odd.append(f"({bad}) + CASE WHEN {value} < 0 OR NOT isfinite({value}) THEN 1 ELSE 0 END")
    odd.append(odd_segment)
    return _select_list(p, text, number, labelled, fail, weight, f"CAST({sample} AS BIGINT)", " + ".join(odd)), source


def _select_list(
    p: Pushdown, text: Any, number: Any, labelled: Any, fail: str, weight: str, sample: str, odd: str = "0"
) -> tuple[str, str]:
    spec = p.spec
    model = text("model")
    whens = " ".join(f"WHEN '{_quote(m)}' THEN {i}" for i, m in enumerate(p.models))
    parts = [text("segment", _quote(f)) for f in spec.segment_by]
    seg = " || '/' || ".join(parts) if parts else "'all'"
    item = text("item")
    cols = [f"{item} AS item", f"CASE {model} {whens} END AS m", f"{seg} AS seg", f"{fail} AS f"]
    bads = [f"({odd})"]  # a row the Python engine would reject: it reads and reports it
    # a missing or blank item or segment value: the Python engine names the row (records, pairing)
    bads += [f"CASE WHEN {x} IS NULL OR trim({x}) = '' THEN 1 ELSE 0 END" for x in (item, *parts)]
    for g, name in enumerate(p.signals):
        value, bad = number("signals", _quote(name))
        cols.append(f"{value} AS s_{g}")
        bads.append(bad)  # a value out of range is counted on ``co_items`` (``Pushdown.check``)
    labs = [labelled(_quote(d)) for d in spec.dimensions]
    greatest = "max" if p.runner.dialect == "sqlite" else "greatest"  # SQLite's max(a, b, ...) is scalar
    cols.append((labs[0] if len(labs) == 1 else f"{greatest}({', '.join(labs)})") + " AS lab")
    bad = " + ".join(b for b in bads if b not in ("0", "(0)")) or "0"
    cols += [f"{weight} AS w", f"{sample} AS smp", f"{bad} AS bad"]
    models = ", ".join(f"'{_quote(m)}'" for m in p.models)
    return ",\n  ".join(cols), f"{model} IN ({models})"


def from_file(
    spec: MigrationSpec,
    path: str | Path | ObjectPath,
    next_count: int = 50,
    verdicts: Mapping[tuple[str, str, str], Sequence[Any]] | None = None,
) -> Pushed:
    """The count tables of a JSONL (.jsonl, .jsonl.gz) or Parquet records file, computed in DuckDB; the file
    may be in an object store (``s3://...``: ``objectstore``, read through pyarrow.fs).

    ``verdicts``: the store's labels in force (``store.responses.current_verdicts``), merged as
    ``assess --records`` merges them."""
    path = records_path(path)  # a URI stays whole (an objectstore.ObjectPath)
    name = path.name.lower()
    if not (name.endswith((".jsonl", ".ndjson", ".jsonl.gz", ".parquet"))):
        raise Unsupported(f"{path.suffix} files are read by the Python engine (DuckDB reads .jsonl and .parquet)")
    if not path.exists():
        raise Unsupported(f"{path}: no such file")
    runner = DuckRunner()
    try:
        return _from_file(spec, path, Pushdown(spec, runner, next_count), verdicts)
    finally:
        runner.con.close()  # with it the registered filesystem of a URI (its client, its credentials)


def _from_file(
    spec: MigrationSpec,
    path: Path | ObjectPath,
    p: Pushdown,
    verdicts: Mapping[tuple[str, str, str], Sequence[Any]] | None,
) -> Pushed:
    from changeover.assessment import pushdown_votes

    if isinstance(path, ObjectPath):  # DuckDB reads the URI through pyarrow.fs (its httpfs needs the internet)
        path.register(p.runner.con)  # type: ignore[attr-defined]
    (cols, models), source = _file_projection(p, path)
    p.build_items((cols, models), source)
    pushdown_votes.build_from_records(p, verdicts or {}, _labelled_records(p, path))
    prepared, _, rows = p.prepare()
    merged = _merged_count(p, path, verdicts) if verdicts else 0
    return Pushed(prepared, [], merged if verdicts is not None else None, rows, p.statements)


def _labelled_records(p: Pushdown, path: Path | ObjectPath, batch: int = 10_000) -> Iterator[Record]:
    """The file's labelled rows as records (``records.record_from_dict``: the Python engine's validation), in
    batches: a few thousand rows in memory at a time, whatever the share of labelled items."""
    lit = _literal(str(path))
    p.run("CREATE TEMP TABLE co_wanted AS SELECT item FROM co_items WHERE lab = 1")
    if path.name.lower().endswith(".parquet"):
        sql = f"SELECT * FROM read_parquet({lit}) WHERE CAST(item AS VARCHAR) IN (SELECT item FROM co_wanted)"
    else:
        sql = (
            f"SELECT json FROM read_ndjson_objects({lit}) "
            "WHERE json_extract_string(json, '$.item') IN (SELECT item FROM co_wanted)"
        )
    p.statements.append(sql + ";")
    cur = p.runner.con.execute(sql)  # type: ignore[attr-defined]
    names = [d[0] for d in cur.description]
    while chunk := cur.fetchmany(batch):
        for values in chunk:
            if names == ["json"]:
                row = json.loads(values[0])
            else:
                raw = dict(zip(names, values, strict=True))
                flat = unflatten(raw, False) if any("." in k for k in raw) else raw
                row = {k: v for k, v in flat.items() if v is not None}
            try:
                yield record_from_dict(row, f"{path}: item {row.get('item')!r}")
            except RecordsError as exc:  # the Python engine reads the file and names the row's line
                raise Unsupported(f"a labelled row is not valid ({exc})") from None


def _merged_count(p: Pushdown, path: Path | ObjectPath, verdicts: Mapping[tuple[str, str, str], Sequence[Any]]) -> int:
    """How many store verdicts ``merge_labels`` would merge into the file: those on an (item, model) the file
    holds, any model or dimension (the Python engine's count for ``assess --records``)."""
    per: dict[tuple[str, str], int] = {}
    for (item, model, _), got in verdicts.items():
        per[(item, model)] = per.get((item, model), 0) + len(got)
    con = p.runner.con  # type: ignore[attr-defined]
    con.execute("CREATE TEMP TABLE co_verdict_keys (item VARCHAR, model VARCHAR, n BIGINT)")
    con.executemany("INSERT INTO co_verdict_keys VALUES (?, ?, ?)", [(i, m, n) for (i, m), n in per.items()])
    lit = _literal(str(path))
    if path.name.lower().endswith(".parquet"):
        held = f"SELECT CAST(item AS VARCHAR) AS item, CAST(model AS VARCHAR) AS model FROM read_parquet({lit})"
    else:
        held = (
            "SELECT json_extract_string(json, '$.item') AS item, json_extract_string(json, '$.model') AS model "
            f"FROM read_ndjson_objects({lit})"
        )
    got = p.run(
        f"SELECT coalesce(sum(n), 0) FROM co_verdict_keys WHERE (item, model) IN (SELECT item, model FROM ({held}))"
    )
    return int(got[0][0])


def from_store(spec: MigrationSpec, store: Any, next_count: int = 50) -> Pushed:
    """The count tables of the store's records (SQLite or PostgreSQL), computed in its own SQL."""
    from changeover.assessment import pushdown_votes
    from changeover.labeling.gold import spec_answers
    from changeover.store.responses import current_verdicts

    gold = spec_answers(spec)  # the gold file's answers beside the gold verdicts, as the Python engine reads them
    verdicts = current_verdicts(store, gold)  # the labels table, read once
    with store.engine.connect() as conn:
        runner = SqlRunner(conn)
        if runner.dialect not in ("sqlite", "postgresql"):
            raise Unsupported(f"the {runner.dialect} store is read by the Python engine")
        p = Pushdown(spec, runner, next_count)
        cols, models = _store_projection(p)
        if runner.dialect == "postgresql":
            for setting in _PG_SETTINGS:
                runner.run(setting)
        _drop_temp(runner)  # a pooled connection may hold them from an earlier run (SQLite keeps temp DDL)
        table = "responses"
        if runner.dialect == "postgresql":  # a store made with json columns: parsed once per row, not per ->>
            table = (
                "(SELECT item, model, segment::jsonb AS segment, signals::jsonb AS signals, labels::jsonb AS labels, "
                "payload::jsonb AS payload FROM responses)"
            )
        p.build_items((cols, models), f"{table} AS responses")
        pushdown_votes.build(p, verdicts, table)
        p.head_items()
        try:
            prepared, merged, rows = p.prepare()
        finally:
            conn.rollback()
            _drop_temp(runner)
            conn.commit()
    return Pushed(prepared, [], merged, rows, p.statements)


# PostgreSQL, for the pushdown's transaction: the GROUP BY by item hashes in memory (at 3x10^6 records
# 1.5x10^6 items took ~640 MB; beyond work_mem x hash_mem_multiplier it spills to disk in batches), the
# temporary tables stay in memory (only before the session's first temporary table: a pooled connection
# keeps its first value), no JIT compilation of each statement
_PG_SETTINGS = ("SET LOCAL work_mem = '512MB'", "SET temp_buffers = '256MB'", "SET LOCAL jit = off")


def _drop_temp(runner: SqlRunner) -> None:
    for table in _TEMP_TABLES:
        runner.run(f"DROP TABLE IF EXISTS {table}")


def _store_projection(p: Pushdown) -> tuple[str, str]:
    """The SELECT list of ``co_rec`` over the store's ``responses`` table (JSON columns)."""
    pg = p.runner.dialect == "postgresql"

    def text(head: str, tail: str | None = None) -> str:
        if head in ("item", "model"):
            return head
        column, key = (head, tail) if head in ("segment", "signals", "labels") else ("payload", head)
        return f"({column}->>'{key}')" if pg else f"json_extract({column}, '$.\"{key}\"')"

    def number(head: str, tail: str | None = None) -> tuple[str, str]:
        cast = "DOUBLE PRECISION" if pg else "REAL"
        return f"CAST({text(head, tail)} AS {cast})", "0"

    def labelled(dim: str) -> str:
        arr = f"jsonb_array_length(labels->'{dim}')" if pg else f"json_array_length(labels, '$.\"{dim}\"')"
        return f"CASE WHEN {arr} > 0 THEN 1 ELSE 0 END"

    # each field is extracted once per row (the engine does not share repeated expressions): a NULL
    # response matches no pattern, so it is no failure, as in ``pairing.failed``
    error, response = text("error"), text("response")
    fail = f"CASE WHEN coalesce({error}, '') <> '' OR {blank_sql(response, p.runner.dialect)} THEN 1 ELSE 0 END"
    # the store's rows were validated at import (``records.record_from_dict``: a whole sample >= 0, a
    # weight >= 0); the cast is guarded all the same: an odd sample is -1, and falls back to the Python engine
    if pg:
        raw = "(payload->'extra'->>'sample')"
        sample = f"CASE WHEN {raw} IS NULL THEN NULL WHEN {raw} ~ '^[0-9]+$' THEN CAST({raw} AS BIGINT) ELSE -1 END"
    else:
        raw = "json_extract(payload, '$.extra.sample')"
        sample = f"CASE WHEN {raw} IS NULL THEN NULL WHEN typeof({raw}) = 'integer' THEN {raw} ELSE -1 END"
    weight, _ = number("weight")
    return _select_list(p, text, number, labelled, fail, weight, sample)
