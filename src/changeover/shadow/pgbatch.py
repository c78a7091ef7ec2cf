"""PostgreSQL: a whole batch of log rows in one INSERT, the rows passed as one JSON document.

SQLAlchemy's executemany sends one INSERT per row (a psycopg pipeline) and adapts every
value in Python: measured ~22 us per row in the gateway's writer thread plus ~16 us in the
server, against ~19 us for the same batch into SQLite (its storage work included) - CPU taken
from the event loop on the same cores. Here the batch is encoded once by ``json.dumps`` (C) and
the server unpacks it with ``json_to_recordset`` in a single ``INSERT ... SELECT ... ON CONFLICT
DO NOTHING``: ~6.5 us per row in the writer, ~12.5 us in the server (benchmarks/bench_log_writer.py).

The rows stored are the same: text columns are declared ``text`` in the record set, so a value
too long for its column is refused by the column as before; a JSON column's ``None`` is stored
as JSON ``null``, as SQLAlchemy's ``JSON`` type stores it. A batch JSON cannot carry as it is
(a NaN or infinite float, a value of another type) is left to the generic path (``encode``
returns None).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import JSON, Integer, String, Table
from sqlalchemy.dialects import postgresql

_DIALECT = postgresql.dialect()


def _record_type(column: Any) -> str:
    """The column's type in the record set: strings as ``text`` (the table's column checks the length),
    integers as ``double precision`` (an upstream may report ``12.0`` tokens, which json_to_recordset
    refuses for an ``integer``; the SELECT casts it as the generic insert would)."""
    if isinstance(column.type, String):  # Text is a String
        return "text"
    if isinstance(column.type, Integer):
        return "double precision"
    return column.type.compile(dialect=_DIALECT)


def _picked(column: Any, quote: Any) -> str:
    """The record set's value as the table's column takes it."""
    name = f"r.{quote(column.name)}"
    if isinstance(column.type, JSON):
        return f"COALESCE({name}, 'null'::json)"
    if isinstance(column.type, Integer):
        return f"CAST(round({name}) AS {column.type.compile(dialect=_DIALECT)})"
    return name


def recordset_insert(table: Table) -> str:
    """``INSERT INTO table (...) SELECT ... FROM json_to_recordset(%s::json) ... ON CONFLICT DO NOTHING``:
    every column but the generated primary key, one ``%s`` parameter (the rows as a JSON array)."""
    quote = _DIALECT.identifier_preparer.quote
    columns = [c for c in table.columns if not c.primary_key]
    names = ", ".join(quote(c.name) for c in columns)
    picked = ", ".join(_picked(c, quote) for c in columns)
    record = ", ".join(f"{quote(c.name)} {_record_type(c)}" for c in columns)
    return (
        f"INSERT INTO {quote(table.name)} ({names}) SELECT {picked} "
        f"FROM json_to_recordset(%s::json) AS r({record}) ON CONFLICT DO NOTHING"
    )


def _iso(value: object) -> str:
    if isinstance(value, date):  # datetime too: ISO 8601 with its offset, read back exactly by timestamptz
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a log value")


def encode(rows: Sequence[dict[str, Any]]) -> str | None:
    """The rows as one JSON array, or None when a value has no exact JSON form (NaN, infinity, another type)."""
    try:
        return json.dumps(rows, default=_iso, allow_nan=False)
    except (TypeError, ValueError):
        return None
