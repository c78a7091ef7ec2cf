"""Export the labels table as CSV or JSONL: every row, corrections and skips included
(and, with ``--quality``, one row per annotator: agreement with gold and with the consensus).

``in_force`` says whether a row still counts (not superseded, a verdict, the
annotator's latest for that response and dimension) so a spreadsheet user can
filter on it; ``changeover label import`` reads both formats back. In CSV a
note (free text an annotator typed) that a spreadsheet would run as a formula
(it starts with = + - @, a tab or a carriage return) is written with a leading
apostrophe, the usual guard against CSV injection; import removes it again.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import IO, Any

from changeover.errors import ChangeoverError
from changeover.labeling.gold import Quality
from changeover.labeling.label_files import spreadsheet_safe
from changeover.store import Store
from changeover.store.events import aware
from changeover.store.responses import all_labels, in_force

COLUMNS = (
    "id",
    "item",
    "model",
    "dimension",
    "value",
    "status",
    "annotator",
    "created_at",
    "client_id",
    "supersedes",
    "response_hash",
    "source",
    "note",
    "in_force",
)
FORMATS = ("csv", "jsonl")
QUALITY_COLUMNS = ("annotator", "gold", "gold_checks", "consensus", "consensus_checks", "low")


def label_rows(store: Store) -> Iterator[dict[str, Any]]:
    """All label rows, oldest first, as plain dicts with ``in_force``."""
    rows = all_labels(store)
    counting = {r.id for r in in_force(rows).values()}
    for r in rows:
        yield {
            "id": r.id,
            "item": r.item,
            "model": r.model,
            "dimension": r.dimension,
            "value": r.value,
            "status": r.status,
            "annotator": r.annotator,
            "created_at": aware(r.created_at).isoformat(),
            "client_id": r.client_id,
            "supersedes": r.supersedes,
            "response_hash": r.response_hash,
            "source": r.source,
            "note": r.note,
            "in_force": r.id in counting,
        }


def write_labels(store: Store, fmt: str, out: IO[str]) -> int:
    """Write every label row to ``out`` in ``fmt`` (csv or jsonl); returns the number of rows."""
    if fmt not in FORMATS:
        raise ChangeoverError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    n = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in label_rows(store):
            if row["note"]:
                row["note"] = spreadsheet_safe(row["note"])
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
            n += 1
    else:
        for row in label_rows(store):
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def write_quality(per: dict[str, Quality], fmt: str, out: IO[str]) -> int:
    """One row per annotator: agreement with gold and with the others' majority (``labeling.gold``)."""
    if fmt not in FORMATS:
        raise ChangeoverError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    rows = [{"annotator": name, **q.to_json()} for name, q in per.items()]
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=QUALITY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    else:
        out.writelines(json.dumps(row) + "\n" for row in rows)
    return len(rows)
