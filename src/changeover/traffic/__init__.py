"""Traffic from where it lives: provider logs, traces and eval files into the traffic format evaluate reads.

``import_traffic(source, out, fmt="auto", segments={...}, redactor=...)`` reads one
source file with the importer of its format (one module each), maps segments,
redacts PII, and writes ``out`` atomically. Formats: see ``FORMATS``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from changeover.redaction import Redactor
from changeover.traffic import (
    anthropic,
    langfuse,
    langsmith,
    openai_batch,
    openai_chat,
    openai_evals,
    otel,
    promptfoo,
)
from changeover.traffic.common import (
    Loc,
    TrafficError,
    TrafficRow,
    fill_call_ids,
    read_json_records,
    resolve,
    segment_value,
)
from changeover.traffic.writer import write_traffic

# detection order matters: the most specific shapes first
FORMATS: dict[str, ModuleType] = {
    m.NAME: m for m in (otel, openai_batch, langsmith, langfuse, openai_evals, anthropic, openai_chat, promptfoo)
}

__all__ = ["FORMATS", "ImportResult", "TrafficError", "TrafficRow", "detect_format", "import_traffic", "read_rows"]


def detect_format(path: Path) -> str:
    """The format of ``path``, judged from its name (YAML = promptfoo) and its first record."""
    if promptfoo.detect_path(path):
        return promptfoo.NAME
    for _, record in read_json_records(path):
        for name, module in FORMATS.items():
            if name != promptfoo.NAME and module.detect(record):
                return name
        break
    raise TrafficError(
        f"{Loc(path, 1)}: cannot tell the format from the first record; pass --format ({', '.join(FORMATS)})"
    )


def read_rows(path: Path, fmt: str = "auto", **options: Any) -> Iterator[TrafficRow]:
    """The traffic rows of one source file (``options``: ``responses`` for openai-batch)."""
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt not in FORMATS:
        raise TrafficError(f"--format: unknown format {fmt!r}; use auto or one of {', '.join(FORMATS)}")
    yield from FORMATS[fmt].convert(path, **options)


@dataclass(slots=True)
class ImportResult:
    source: str
    out: str
    format: str
    rows: int
    segments: dict[str, dict[str, int]] = field(default_factory=dict)  # segment name -> value -> count
    with_tools: int = 0
    with_recorded: int = 0
    turns: int = 0  # messages in all rows
    resolved: set[str] = field(default_factory=set)  # segment names whose path found a value in some record

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "out": self.out,
            "format": self.format,
            "rows": self.rows,
            "with_tools": self.with_tools,
            "with_recorded_answer": self.with_recorded,
            "messages": self.turns,
            "segments": self.segments,
        }


def _finish(row: TrafficRow, segments: dict[str, str], redactor: Redactor | None, result: ImportResult) -> TrafficRow:
    row.messages = fill_call_ids(row.messages)
    if row.recorded and row.recorded.get("tool_calls"):
        answer = fill_call_ids([{"role": "assistant", **row.recorded}], prefix="answer")[0]
        row.recorded = {k: v for k, v in answer.items() if k != "role"}
    for name, path in segments.items():
        value = segment_value(resolve(row.raw, path))
        if value is not None:
            row.segment[name] = value
            result.resolved.add(name)
    if redactor is not None:
        row.messages = redactor.value(row.messages)
        row.tools = redactor.value(row.tools, drop_secrets=False)  # a schema's 'token' property is a name
        row.reference = redactor.value(row.reference)
        row.variables = redactor.value(row.variables)
        row.recorded = redactor.value(row.recorded)
        row.segment = redactor.value(row.segment)
        row.params = redactor.value(row.params)
    for name, value in row.segment.items():
        counts = result.segments.setdefault(name, {})
        counts[value] = counts.get(value, 0) + 1
    result.with_tools += bool(row.tools)
    result.with_recorded += bool(row.answer())
    result.turns += len(row.messages)
    return row


def import_traffic(
    source: Path,
    out: Path,
    fmt: str = "auto",
    segments: dict[str, str] | None = None,
    redactor: Redactor | None = None,
    check: Callable[[Path], object] | None = None,
    required: Collection[str] = (),
    **options: Any,
) -> ImportResult:
    """Convert ``source`` into the traffic file ``out``.

    ``out`` is written only when every record converts, every segment named in ``required`` was
    found in at least one record (a mistyped path is an error, not a segment that silently never
    appears), and ``check`` (given the temp file) passes.
    """
    source, out = Path(source), Path(out)
    if not source.exists():
        raise TrafficError(f"{source}: no such file to import")
    name = detect_format(source) if fmt == "auto" else fmt
    result = ImportResult(str(source), str(out), name, 0)
    segments = segments or {}
    rows = (_finish(r, segments, redactor, result) for r in read_rows(source, name, **options))

    def verify(tmp: Path) -> None:
        missing = [s for s in required if s not in result.resolved]
        if missing:
            paths = ", ".join(f"{s}={segments.get(s, '?')}" for s in missing)
            raise TrafficError(
                f"--segment {paths}: no record of {source} has a value at this path; check its spelling "
                f"against a record (paths are dotted keys, e.g. metadata.region)"
            )
        if check is not None:
            check(tmp)

    result.rows = write_traffic(rows, out, verify, str(source))
    return result
