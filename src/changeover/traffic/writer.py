"""Write imported traffic rows as JSONL, atomically: a temp file beside the target, checked, then renamed.

Nothing is written on error: a bad source line, a duplicate item or a failed
check leaves the target as it was.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from changeover.errors import RecordsError
from changeover.traffic.common import TrafficError, TrafficRow


def write_traffic(
    rows: Iterable[TrafficRow], out: Path, check: Callable[[Path], object] | None = None, source: str = "the source"
) -> int:
    """Write ``rows`` to ``out``; ``check(temp_path)`` may validate the file before it replaces ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.jsonl")
    seen: dict[str, str] = {}
    n = 0
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            for row in rows:
                if row.item in seen:
                    raise TrafficError(
                        f"{row.source}: item '{row.item}' was already imported from {seen[row.item]}; "
                        "every interaction needs its own id (remove the duplicate line)"
                    )
                seen[row.item] = row.source
                fh.write(json.dumps(row.to_dict(), ensure_ascii=False) + "\n")
                n += 1
        if n == 0:
            raise TrafficError(
                f"{source}: no interactions to import (no chat requests, GenAI spans, generations or llm runs found)"
            )
        if check is not None:
            try:
                check(tmp)
            except RecordsError as exc:
                raise TrafficError(str(exc).replace(str(tmp), f"{out} (not written)")) from None
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n
