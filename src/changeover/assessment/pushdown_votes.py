"""The labelled items' human verdicts counted in SQL (the pushdown's ``co_votes`` table): a store's, or DuckDB's.

Without it the pushdown read every labelled response back as a ``Record`` (one row each: ~0.8% of the
records, so the memory grew with N). Here every verdict is one row of ``co_votes`` -- (item, model,
dimension, annotator, verdict), from the records' ``labels`` / ``label_by`` (a store's columns, or a file's
labelled rows streamed as records: ``build_from_records``) and from the store's labels
in force (``store.responses.current_verdicts``: settled answers and gold verdicts as the Python engine
merges them) -- and each comparison's labelled cells are one GROUP BY over the labelled items joined
with their verdicts summed per answer (and per annotator, when any verdict names one). Python receives
count rows and the first items of each cell, never a response.

The Python engine's rules, as ``tables.comparison`` and ``annotators.annotator_votes`` apply them: the
annotators of a comparison are every name on a verdict on either answer of its paired items (a failed
answer's too: its votes count for nothing, its annotator is named); nobody named -> only the totals; a
failed answer's verdicts are dropped (its truth is known); two settled answers that disagree on one
response are the Python engine's error to report (``Unsupported``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from changeover.records import SETTLED, Record

if TYPE_CHECKING:
    from changeover.assessment.pushdown import Part, Pushdown
    from changeover.assessment.tables import DimensionScales


def build(p: Pushdown, verdicts: Mapping[tuple[str, str, str], Sequence[tuple[str, int]]], rows: str) -> None:
    """``co_votes``: every verdict on the spec's models and dimensions (``d`` its index; ``src`` 0 from the
    records' labels in ``rows`` -- the responses table, or a subquery over it --, 1 from the store's labels
    table, which also keeps its verdicts on other dimensions as ``d`` = -1, to count what was merged); the
    items with a store verdict are marked labelled."""
    from changeover.assessment.pushdown import _quote

    pg = p.runner.dialect == "postgresql"
    dims = list(p.spec.dimensions)
    which = "CASE d.key " + " ".join(f"WHEN '{_quote(n)}' THEN {i}" for i, n in enumerate(dims)) + " END"
    model = "CASE r.model " + " ".join(f"WHEN '{_quote(m)}' THEN {i}" for i, m in enumerate(p.models)) + " END"
    listed = ", ".join(f"'{_quote(n)}'" for n in dims)
    models = ", ".join(f"'{_quote(m)}'" for m in p.models)
    if pg:  # a CREATE TABLE AS: its scan of the responses may run in parallel (an INSERT's may not)
        who = "coalesce(r.payload -> 'label_by' -> d.key ->> CAST(e.n - 1 AS INTEGER), '')"
        p.run(
            f"CREATE TEMP TABLE co_votes AS\nSELECT CAST(r.item AS TEXT) AS item, {model} AS m, {which} AS d, "
            f"CAST({who} AS TEXT) AS who, CAST(e.v AS INTEGER) AS v, 0 AS src\n"
            f"FROM {rows} AS r CROSS JOIN LATERAL jsonb_each(r.labels) AS d\n"
            "CROSS JOIN LATERAL jsonb_array_elements_text(CASE WHEN jsonb_typeof(d.value) = 'array' THEN d.value END)"
            " WITH ORDINALITY AS e(v, n)\n"
            f"WHERE r.model IN ({models}) AND r.labels <> '{{}}'::jsonb AND d.key IN ({listed})"
        )
    else:
        p.run("CREATE TEMP TABLE co_votes (item TEXT, m INTEGER, d INTEGER, who TEXT, v INTEGER, src INTEGER)")
        who = "coalesce(json_extract(r.payload, '$.label_by.\"' || d.key || '\"[' || e.key || ']'), '')"
        p.run(
            f"INSERT INTO co_votes (item, m, d, who, v, src)\nSELECT r.item, {model}, {which}, {who}, e.value, 0\n"
            f"FROM {rows} AS r, json_each(r.labels) AS d, json_each(d.value) AS e\n"
            f"WHERE r.model IN ({models}) AND r.labels <> '{{}}' AND d.type = 'array' AND d.key IN ({listed})"
        )
    if pg:  # its size for the planner: joined by item with co_lab (a hash join, not a loop over it)
        p.run("ANALYZE co_votes")
    _store_verdicts(p, verdicts)


def build_from_records(
    p: Pushdown, verdicts: Mapping[tuple[str, str, str], Sequence[tuple[str, int]]], records: Iterable[Record]
) -> None:
    """``co_votes`` in DuckDB from a file's labelled rows, read back as records (validated as the Python engine
    validates them) and streamed: each record becomes its verdicts' rows (item, m, d, who, v), a few small
    tuples, and is let go -- the memory holds verdicts, not responses. Then the store's verdicts, as ``build``."""
    dims = {n: i for i, n in enumerate(p.spec.dimensions)}
    index = {m: i for i, m in enumerate(p.models)}
    rows = [
        (r.item, index[r.model], dims[d], who, int(v), 0)
        for r in records
        if r.model in index
        for d, given in r.labels.items()
        if d in dims
        for who, v in zip(r.annotators(d), given, strict=True)
    ]
    p.run("CREATE TEMP TABLE co_votes (item VARCHAR, m INTEGER, d INTEGER, who VARCHAR, v INTEGER, src INTEGER)")
    insert = "INSERT INTO co_votes (item, m, d, who, v, src) VALUES (?, ?, ?, ?, ?, ?)"
    p.statements.append(f"{insert};  -- {len(rows):,} verdicts of the file's labelled rows")
    if rows:
        p.runner.con.executemany(insert, rows)  # type: ignore[attr-defined]
    _store_verdicts(p, verdicts)


def _store_verdicts(p: Pushdown, verdicts: Mapping[tuple[str, str, str], Sequence[tuple[str, int]]]) -> None:
    """The store's verdicts into ``co_votes`` (``src`` 1; ``d`` -1 on a dimension the spec does not read), their
    items marked labelled, and ``co_lab``: the labelled items, read by each comparison."""
    from changeover.assessment.pushdown import SqlRunner

    pg = p.runner.dialect == "postgresql"
    dims = list(p.spec.dimensions)
    index = {m: i for i, m in enumerate(p.models)}
    store_votes = [
        (item, index[m], dims.index(d) if d in p.spec.dimensions else -1, who, int(v))
        for (item, m, d), given in verdicts.items()
        if m in index
        for who, v in (g if isinstance(g, tuple) else ("", g) for g in given)  # a bare verdict: unnamed
    ]
    if store_votes:
        if isinstance(p.runner, SqlRunner):  # the store's connection
            insert = "INSERT INTO co_votes (item, m, d, who, v, src) VALUES (:item, :m, :d, :who, :v, 1)"
            p.runner.many(insert, [dict(zip(("item", "m", "d", "who", "v"), r, strict=True)) for r in store_votes])
        else:  # DuckDB, reading a file
            insert = "INSERT INTO co_votes (item, m, d, who, v, src) VALUES (?, ?, ?, ?, ?, 1)"
            p.runner.con.executemany(insert, store_votes)  # type: ignore[attr-defined]
        p.statements.append(f"{insert};  -- {len(store_votes):,} verdicts of the labels table")
        # every item with a store verdict (on another dimension too: ``counts`` reads co_lab) is a labelled one
        p.run("UPDATE co_items SET lab = 1 WHERE item IN (SELECT item FROM co_votes WHERE src = 1)")
        if pg:
            p.run("ANALYZE co_votes")
    p.run("CREATE TEMP TABLE co_lab AS SELECT * FROM co_items WHERE lab = 1")  # few: read by each comparison
    if pg:
        p.run("ANALYZE co_lab")


_MOST_ANNOTATORS = 300  # 4 columns each in one SELECT: PostgreSQL allows 1,664


def counts(p: Pushdown) -> tuple[int, int]:
    """(store verdicts merged into the records, human verdicts on the spec's models and dimensions), as
    ``load_records_counted`` and ``service.prepare`` count them: only on responses the store holds."""
    held = "CASE v.m " + " ".join(f"WHEN {m} THEN co_lab.n_{m}" for m in range(len(p.models))) + " END > 0"
    merged, labels_in = p.run(
        "SELECT sum(CASE WHEN v.src = 1 THEN 1 ELSE 0 END), sum(CASE WHEN v.d >= 0 THEN 1 ELSE 0 END)\n"
        f"FROM co_votes AS v JOIN co_lab ON co_lab.item = v.item WHERE {held}"
    )[0]
    return int(merged or 0), int(labels_in or 0)


def labelled_part(p: Pushdown, candidate: str, dimension: str, scales: DimensionScales, segments: list[str]) -> Part:
    """The labelled items' cells of one comparison (keys with each answer's verdicts, per annotator when
    named), their counts and the first items of each cell."""
    from changeover.assessment.pushdown import Part, Unsupported

    query = p.cell_query(candidate, dimension, scales, lab=1)
    c, d = p.models.index(candidate), list(p.spec.dimensions).index(dimension)
    ours = f"v.d = {d} AND v.m IN (0, {c}) AND {query.where}"
    joined = "co_votes AS v JOIN co_lab ON co_lab.item = v.item"
    clash = p.run(
        f"SELECT v.item, v.m FROM {joined}\nWHERE {ours} AND v.who LIKE '{SETTLED}%'\n"
        "GROUP BY v.item, v.m HAVING min(v.v) <> max(v.v)"
    )
    if clash:
        item, m = clash[0]
        raise Unsupported(
            f"two settled answers disagree on item '{item}', model '{p.models[int(m)]}', dimension '{dimension}'; "
            "the Python engine reports it"
        )
    names = tuple(sorted(str(w) for (w,) in p.run(f"SELECT DISTINCT v.who FROM {joined}\nWHERE {ours}")))
    if not any(names):
        names = ()
    if len(names) > _MOST_ANNOTATORS:
        raise Unsupported(
            f"{len(names)} annotators name verdicts on '{dimension}' (a GROUP BY of 4 columns each); "
            "the Python engine counts them"
        )
    sums, keys = [], []
    for side, m in ((0, 0), (1, c)):
        sums += [
            f"sum(CASE WHEN m = {m} THEN v ELSE 0 END) AS lp{side}",
            f"sum(CASE WHEN m = {m} THEN 1 ELSE 0 END) AS lt{side}",
        ]
        keys += [f"CASE WHEN f_{m} = 1 THEN 0 ELSE coalesce({x}{side}, 0) END" for x in ("lp", "lt")]
    for side, m in ((0, 0), (1, c)):
        for a, name in enumerate(names):
            query.params[f"who_{a}"] = name
            who = p.param(f"who_{a}")
            sums += [
                f"sum(CASE WHEN m = {m} AND who = {who} THEN v ELSE 0 END) AS lp{side}_{a}",
                f"sum(CASE WHEN m = {m} AND who = {who} THEN 1 ELSE 0 END) AS lt{side}_{a}",
            ]
            keys += [f"CASE WHEN f_{m} = 1 THEN 0 ELSE coalesce({x}{side}_{a}, 0) END" for x in ("lp", "lt")]
    query.keys += keys
    per_item = ",\n  ".join(sums)
    query.source = (
        f"co_lab LEFT JOIN (SELECT item AS vitem,\n  {per_item}\n"
        f"FROM co_votes WHERE d = {d} AND m IN (0, {c}) GROUP BY item) AS lv ON lv.vitem = co_lab.item"
    )
    query.item = "co_lab.item"
    cells = p.cells(query)
    n = len(query.keys)
    seg_pos = {s: i for i, s in enumerate(segments)}
    rows = [[seg_pos[str(r[0])], *(int(x) for x in r[1:n])] for r in cells]
    index = {tuple(r[:n]): i for i, r in enumerate(cells)}
    carried = [(str(r[n]), (index[tuple(r[:n])],)) for r in p.first_items(query, cells, prefix=False)]
    exact = tuple(name.startswith(SETTLED) for name in names)
    return Part(rows, [int(r[n]) for r in cells], carried, names, exact)
