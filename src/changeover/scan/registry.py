"""The model lifecycle registry: which model ids a provider retires, when, and what replaces them.

The bundled registry (``registry.yaml`` beside this module) is dated row by
row: each row names the provider page it was read from (``source``) and the
date it was checked (``checked``). A team extends or overrides it with its own
YAML of the same shape; rows merge by (provider, model), the team's fields
winning. A bad row is a ``ScanError`` naming the file, the line and the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from changeover.errors import ChangeoverError, where

BUNDLED = Path(__file__).with_name("registry.yaml")


class ScanError(ChangeoverError):
    """A registry file, a scanned path or a scan option is unusable."""


class RowModel(BaseModel):
    """One registry row as written in YAML (validation only; ``Lifecycle`` is what the code uses)."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(min_length=1)
    model: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list, description="other spellings with the same lifecycle")
    patterns: list[str] = Field(default_factory=list, description="regular expressions a whole id must match")
    deprecated: date | None = None
    shutdown: date | None = None
    successors: list[str] = Field(default_factory=list)
    source: str | None = None
    checked: date | None = None
    note: str | None = None

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, v: list[str]) -> list[str]:
        for p in v:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"pattern {p!r} is not a regular expression ({exc})") from None
        return v


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """A model's announced lifecycle at one provider; no ``shutdown`` means none announced."""

    provider: str
    model: str
    aliases: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    deprecated: date | None = None
    shutdown: date | None = None
    successors: tuple[str, ...] = ()
    source: str | None = None
    checked: date | None = None
    note: str | None = None
    origin: str = ""  # file:line of the row (the last file that touched it)

    @property
    def key(self) -> tuple[str, str]:
        return (self.provider.lower(), self.model.lower())

    def days_left(self, today: date) -> int | None:
        return None if self.shutdown is None else (self.shutdown - today).days

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "aliases": list(self.aliases),
            "deprecated": self.deprecated.isoformat() if self.deprecated else None,
            "shutdown": self.shutdown.isoformat() if self.shutdown else None,
            "successors": list(self.successors),
            "source": self.source,
            "checked": self.checked.isoformat() if self.checked else None,
            "note": self.note,
        }


@dataclass(slots=True)
class Registry:
    """Lifecycle rows by (provider, model), and the files they came from."""

    rows: dict[tuple[str, str], Lifecycle] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def merge(self, other: list[tuple[dict[str, Any], Lifecycle]]) -> None:
        """Add rows; a row whose (provider, model) exists replaces only the fields it gives."""
        for given, row in other:
            old = self.rows.get(row.key)
            if old is None:
                self.rows[row.key] = row
            else:
                changes = {k: getattr(row, k) for k in given if k not in ("provider", "model")}
                self.rows[row.key] = replace(old, **changes, origin=row.origin)

    def __iter__(self) -> Iterator[Lifecycle]:
        return iter(self.rows.values())

    def __len__(self) -> int:
        return len(self.rows)


def _node_lines(path: Path, text: str) -> tuple[int | None, list[dict[str, int]]]:
    """Line of the ``models`` list and, per row, the line of each of its keys (1-based)."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return None, []
    if not isinstance(root, yaml.MappingNode):
        return None, []
    for key, value in root.value:
        if key.value == "models" and isinstance(value, yaml.SequenceNode):
            rows = []
            for item in value.value:
                lines = {"": item.start_mark.line + 1}
                if isinstance(item, yaml.MappingNode):
                    for k, v in item.value:
                        lines[str(k.value)] = v.start_mark.line + 1
                rows.append(lines)
            return value.start_mark.line + 1, rows
    return None, []


def read_registry_file(path: str | Path) -> list[tuple[dict[str, Any], Lifecycle]]:
    """Read one registry YAML: ``models: [{provider, model, ...}, ...]``; errors name file:line and field."""
    path = Path(path)
    if not path.exists():
        raise ScanError(f"{path}: no such registry file; give a YAML file with a 'models:' list")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ScanError(f"{path}: not UTF-8 text (byte {exc.start}); a registry is a YAML file") from None
    except OSError as exc:
        raise ScanError(
            f"{path}: cannot be read ({exc.strerror or exc}); give a YAML file with a 'models:' list"
        ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ScanError(f"{where(path, line)}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), list):
        raise ScanError(f"{where(path, 1)}: a registry file is a mapping with a 'models:' list of rows")
    unknown = sorted(set(raw) - {"models", "about"})
    if unknown:
        raise ScanError(f"{where(path, 1)}: unknown top-level key(s) {unknown}; a registry has 'about' and 'models'")
    _, lines = _node_lines(path, text)
    out: list[tuple[dict[str, Any], Lifecycle]] = []
    seen: dict[tuple[str, str], int] = {}
    for i, given in enumerate(raw["models"]):
        row_lines = lines[i] if i < len(lines) else {"": None}
        if not isinstance(given, dict):
            raise ScanError(f"{where(path, row_lines[''])}: a registry row is a mapping with provider and model")
        try:
            parsed = RowModel.model_validate(given)
        except ValidationError as exc:
            err = exc.errors()[0]
            name = str(err["loc"][0]) if err["loc"] else ""
            line = row_lines.get(name, row_lines[""])
            msg = "is required but missing" if err["type"] == "missing" else err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "is not a known key (check its spelling)"
            raise ScanError(f"{where(path, line, '.'.join(str(p) for p in err['loc']))} {msg}") from None
        row = Lifecycle(
            provider=parsed.provider,
            model=parsed.model,
            aliases=tuple(parsed.aliases),
            patterns=tuple(parsed.patterns),
            deprecated=parsed.deprecated,
            shutdown=parsed.shutdown,
            successors=tuple(parsed.successors),
            source=parsed.source,
            checked=parsed.checked,
            note=parsed.note,
            origin=where(path, row_lines[""]),
        )
        if row.key in seen:
            raise ScanError(
                f"{where(path, row_lines[''])}: {row.provider}/{row.model} is already listed at line "
                f"{seen[row.key]}; one row per provider and model"
            )
        seen[row.key] = row_lines[""] or 0
        out.append((given, row))
    return out


def load_registry(extra: list[Path] | None = None, bundled: bool = True) -> Registry:
    """The bundled registry, then each team file merged over it in order."""
    reg = Registry()
    for path in ([BUNDLED] if bundled else []) + list(extra or []):
        reg.merge(read_registry_file(path))
        reg.files.append(str(path))
    return reg
