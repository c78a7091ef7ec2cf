"""Join the model ids found in a codebase with their lifecycles: what must move, and by when.

``scan_codebase`` walks a path, matches every candidate value against the
registry and groups the uses by registry row (one row per provider and model;
an id the registry lacks gets a row of its own). Rows sort by shutdown date,
soonest first; rows without an announced date come last.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from changeover.scan.match import Matcher
from changeover.scan.registry import Lifecycle, Registry, ScanError
from changeover.scan.sources import Unread, iter_files, values_in


@dataclass(frozen=True, slots=True)
class Use:
    """One place a model id is written."""

    path: str  # relative to the scanned root
    line: int
    text: str
    cell: int | None = None

    @property
    def where(self) -> str:
        return f"{self.path}:cell {self.cell}:{self.line}" if self.cell is not None else f"{self.path}:{self.line}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"file": self.path, "line": self.line, "id": self.text}
        if self.cell is not None:
            out["cell"] = self.cell
        return out


@dataclass(slots=True)
class ModelUsage:
    """A model the codebase uses, where, and its lifecycle (None when the registry does not know it)."""

    provider: str
    model: str
    lifecycle: Lifecycle | None
    uses: list[Use] = field(default_factory=list)

    def days_left(self, today: date) -> int | None:
        return None if self.lifecycle is None else self.lifecycle.days_left(today)

    def status(self, today: date, within: int) -> str:
        if self.lifecycle is None:
            return "not in registry"
        left = self.days_left(today)
        if left is not None and left < 0:
            return "shut down"
        if left is not None and left <= within:
            return "shuts down soon"
        if self.lifecycle.deprecated is not None and self.lifecycle.deprecated <= today:
            return "deprecated"
        if left is not None:
            return "shutdown announced"
        return "no shutdown announced"

    def due(self, today: date, within: int) -> bool:
        left = self.days_left(today)
        return left is not None and left <= within

    def to_dict(self, today: date, within: int) -> dict[str, Any]:
        life = self.lifecycle.to_dict() if self.lifecycle else {}
        return {
            "provider": self.provider,
            "model": self.model,
            "status": self.status(today, within),
            "days_left": self.days_left(today),
            "due": self.due(today, within),
            "deprecated": life.get("deprecated"),
            "shutdown": life.get("shutdown"),
            "successors": life.get("successors", []),
            "source": life.get("source"),
            "checked": life.get("checked"),
            "note": life.get("note"),
            "ids_found": sorted({u.text for u in self.uses}),
            "count": len(self.uses),
            "uses": [u.to_dict() for u in self.uses],
        }


@dataclass(slots=True)
class ScanResult:
    root: str
    today: date
    within: int
    files_scanned: int
    usages: list[ModelUsage]
    registry_files: list[str]
    unread: list[tuple[str, str]] = field(default_factory=list)  # (file, why): files a reader knows but could not read

    @property
    def due(self) -> list[ModelUsage]:
        return [u for u in self.usages if u.due(self.today, self.within)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "today": self.today.isoformat(),
            "within_days": self.within,
            "files_scanned": self.files_scanned,
            "registry": self.registry_files,
            "due": len(self.due),
            "models": [u.to_dict(self.today, self.within) for u in self.usages],
            "unread": [{"file": f, "reason": why} for f, why in self.unread],
        }


def parse_within(text: str) -> int:
    """``90d``, ``12w``, ``6m`` (30-day months), ``1y`` or a bare number of days -> days."""
    m = re.fullmatch(r"\s*(\d+)\s*([dwmy]?)\s*", text.lower())
    if not m:
        raise ScanError(f"--within: expected a duration like 90d, 12w, 6m or 1y, got {text!r}")
    return int(m.group(1)) * {"": 1, "d": 1, "w": 7, "m": 30, "y": 365}[m.group(2)]


def _sort_key(u: ModelUsage) -> tuple[Any, ...]:
    life = u.lifecycle
    shutdown = life.shutdown if life and life.shutdown else date.max
    return (shutdown, life is None, u.provider, u.model)


def scan_codebase(
    root: str | Path, registry: Registry, today: date, within: int = 90, exclude: tuple[str, ...] = ()
) -> ScanResult:
    """Find the model ids used under ``root`` and join them with ``registry``.

    ``exclude``: glob patterns on the path relative to ``root`` (``tests/fixtures/*``, ``*.ipynb``).
    """
    root = Path(root)
    if not root.exists():
        raise ScanError(f"{root}: no such file or folder to scan")
    matcher = Matcher(registry)
    usages: dict[tuple[str, str], ModelUsage] = {}
    files = 0
    unread: list[tuple[str, str]] = []
    folders: list[tuple[Path, str]] = []
    for path in iter_files(root, folders):
        rel = path.name if root.is_file() else path.relative_to(root).as_posix()
        if any(fnmatch(rel, pattern) or fnmatch(rel, pattern.rstrip("/") + "/*") for pattern in exclude):
            continue
        try:
            values = list(values_in(path))
        except Unread as exc:
            unread.append((rel, str(exc)))
            continue
        files += 1
        for value in values:
            m = matcher.match(value.text)
            if m is None:
                continue
            use = Use(rel, value.line, m.text, value.cell)
            if m.rows:
                for row in m.rows:
                    usages.setdefault(row.key, ModelUsage(row.provider, row.model, row)).uses.append(use)
            else:
                key = (m.family or "?", m.text.lower())
                usages.setdefault(key, ModelUsage(m.family or "?", m.text, None)).uses.append(use)
    unread += [(folder.relative_to(root).as_posix() + "/", why) for folder, why in folders]
    for u in usages.values():
        u.uses.sort(key=lambda x: (x.path, x.cell or 0, x.line))
    ordered = sorted(usages.values(), key=_sort_key)
    return ScanResult(str(root), today, within, files, ordered, registry.files, unread)
