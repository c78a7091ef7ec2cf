"""``label import``: labels made elsewhere into the ``labels`` table, all or nothing.

The whole file is read and checked first (every row names a stored response;
with a spec, a known dimension); then the new rows are written in one
transaction. Rows already imported (same client id) are not added twice.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert, select

from changeover.errors import RecordsError
from changeover.labeling.label_files import IncomingLabel, read_csv, read_jsonl
from changeover.labeling.labelstudio import read_labelstudio
from changeover.labeling.tasks import response_hash
from changeover.store import Store
from changeover.store.events import now
from changeover.store.schema import labels, responses

FORMATS = ("auto", "csv", "jsonl", "labelstudio")
_BATCH = 1000


@dataclass(frozen=True, slots=True)
class LabelImport:
    path: str
    format: str
    rows: int
    added: int


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json":
        return "labelstudio"
    raise RecordsError(
        f"{path}: cannot tell the format from '{suffix}'; use .csv, .jsonl or a Label Studio "
        ".json export, or give --format"
    )


def read_labels(path: Path, fmt: str, annotator: str, dimensions: list[str] | None) -> list[IncomingLabel]:
    if not path.exists():
        raise RecordsError(f"{path}: no such file")
    fmt = detect_format(path) if fmt == "auto" else fmt
    readers = {
        "csv": lambda: read_csv(path, annotator, dimensions),
        "jsonl": lambda: read_jsonl(path, annotator, dimensions),
        "labelstudio": lambda: read_labelstudio(path, dimensions),
    }
    if fmt not in readers:
        raise RecordsError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    try:
        return readers[fmt]()
    except UnicodeDecodeError as exc:  # e.g. a CSV saved by a spreadsheet in a legacy encoding
        raise RecordsError(
            f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8 (in Excel: 'CSV UTF-8')"
        ) from None
    except csv.Error as exc:
        raise RecordsError(f"{path}: not a readable CSV ({exc})") from None


def _stored_responses(store: Store) -> dict[tuple[str, str], str]:
    """(item, model) -> hash of the latest stored response text."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(responses.c.item, responses.c.model, responses.c.payload).order_by(responses.c.id)
        ).all()
    return {(r.item, r.model): response_hash((r.payload or {}).get("response")) for r in rows}


def check(incoming: list[IncomingLabel], known: dict[tuple[str, str], str], dimensions: list[str] | None) -> None:
    for label in incoming:
        if (label.item, label.model) not in known:
            raise RecordsError(
                f"{label.loc}: no stored response for item {label.item!r}, model "
                f"{label.model!r}; import the records first (`changeover import`)"
            )
        if dimensions and label.dimension not in dimensions:
            raise RecordsError(
                f"{label.loc}: field 'dimension': {label.dimension!r} is not a dimension of "
                f"the spec ({', '.join(dimensions)})"
            )


def import_labels(
    store: Store, path: str | Path, fmt: str = "auto", annotator: str = "imported", dimensions: list[str] | None = None
) -> LabelImport:
    """Read, check, then store a label file in one transaction."""
    path = Path(path)
    resolved = detect_format(path) if fmt == "auto" else fmt
    incoming = read_labels(path, resolved, annotator, dimensions)
    known = _stored_responses(store)
    check(incoming, known, dimensions)
    at = now()
    rows: dict[str, dict] = {}
    for label in incoming:
        cid = label.client_id or label.content_id(resolved)
        rows.setdefault(
            cid,
            {
                "item": label.item,
                "model": label.model,
                "dimension": label.dimension,
                "value": label.value,
                "annotator": label.annotator,
                "created_at": label.created_at or at,
                "client_id": cid,
                "supersedes": None,
                "response_hash": known[(label.item, label.model)],
                "status": label.status,
                "source": resolved,
                "note": label.note,
            },
        )
    with store.engine.begin() as conn:
        existing: set[str] = set()
        ids = list(rows)
        for start in range(0, len(ids), _BATCH):
            existing.update(
                conn.execute(
                    select(labels.c.client_id).where(labels.c.client_id.in_(ids[start : start + _BATCH]))
                ).scalars()
            )
        new = [row for cid, row in rows.items() if cid not in existing]
        for start in range(0, len(new), _BATCH):
            conn.execute(insert(labels), new[start : start + _BATCH])
    return LabelImport(str(path), resolved, len(incoming), len(new))
