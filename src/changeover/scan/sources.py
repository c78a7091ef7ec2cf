"""The values in a codebase that can hold a model id: string literals in code, values in config files.

Code (Python, JS/TS, Go, Java, Kotlin) is read by a small lexer that knows
comments and string quotes, so a model named in a comment or inside a sentence
is not a use. YAML is read through its node tree (keys and scalar values, with
their lines), ``.env`` / INI / properties files as ``key=value`` lines, JSON and
TOML by their quoted strings, and Jupyter notebooks cell by cell (code cells
only, each reported with its cell number and the line within the cell).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

SKIP_DIRS = {
    ".git",
    ".hg",
    ".svn",
    "node_modules",
    ".venv",
    "venv",
    "env",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".tox",
    ".nox",
    "dist",
    "build",
    "site-packages",
    ".ipynb_checkpoints",
    ".changeover",
    "vendor",
    "target",
    ".next",
}
MAX_BYTES = 2_000_000

_HASH = {".py", ".pyi", ".toml", ".rb", ".sh"}
_SLASH = {
    ".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".mts", ".cts",
    ".go", ".java", ".kt", ".kts", ".scala", ".cs", ".swift", ".dart",
}  # fmt: skip
_HCL = {".tf", ".tfvars", ".hcl"}  # Terraform: where Bedrock and Vertex model ids often live
_KEY_VALUE = {".ini", ".cfg", ".properties", ".conf"}
_YAML = {".yaml", ".yml"}
_JSON = {".json", ".jsonc"}


@dataclass(frozen=True, slots=True)
class Value:
    """One string found in a file: where it is and what it says."""

    text: str
    line: int
    cell: int | None = None  # notebook cell number (1-based), the line is then within the cell


def kind_of(path: Path) -> str | None:
    """The reader for a file, by name; None = not scanned."""
    name = path.name.lower()
    suffix = path.suffix.lower()
    if name == ".env" or name.startswith(".env.") or suffix == ".env":
        return "env"
    if suffix == ".ipynb":
        return "notebook"
    if suffix in _YAML:
        return "yaml"
    if suffix in _JSON:
        return "json"
    if suffix in _HASH:
        return "hash"
    if suffix in _SLASH:
        return "slash"
    if suffix in _HCL:
        return "hcl"
    if suffix in _KEY_VALUE:
        return "env"
    return None


def iter_files(root: Path, unread: list[tuple[Path, str]] | None = None) -> Iterator[Path]:
    """Files under ``root`` that a reader knows, skipping dependency, build and VCS folders; sorted.

    A folder that cannot be listed is added to ``unread`` (with why) instead of stopping the walk.
    """
    if root.is_file():
        yield root
        return
    try:
        entries = sorted(root.iterdir())
    except OSError as exc:
        if unread is not None:
            unread.append((root, f"folder cannot be listed ({exc.strerror or exc})"))
        return
    for path in entries:
        if path.is_dir():
            if path.name not in SKIP_DIRS and not path.is_symlink():
                yield from iter_files(path, unread)
        elif kind_of(path) is not None:
            yield path


_STRINGS = (
    r"(?P<q3>\"\"\"|''')(?P<b3>(?:\\.|[^\\])*?)(?:(?P=q3)|\Z)"  # triple quotes (Python, Java text blocks)
    r"|(?P<q1>[\"'])(?P<b1>(?:\\.|(?!(?P=q1))[^\\\n])*)(?P=q1)?"  # one line, to its quote or the line's end
    r"|`(?P<bt>[^`]*)`?"  # Go raw strings, JS templates: no escapes, may span lines
)
_COMMENTS = {
    "hash": r"(?P<c>#[^\n]*)",
    "slash": r"(?P<c>//[^\n]*|/\*.*?(?:\*/|\Z))",
    "hcl": r"(?P<c>#[^\n]*|//[^\n]*|/\*.*?(?:\*/|\Z))",
}
_LEXERS = {name: re.compile(f"{comment}|{_STRINGS}", re.DOTALL) for name, comment in _COMMENTS.items()}
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def string_literals(text: str, comments: str) -> Iterator[Value]:
    """Quoted strings in source code; ``comments`` is "hash" (#), "slash" (// and /* */) or "hcl" (all three).

    One regular expression finds the next comment or string, so a quote inside a comment
    and a comment marker inside a string are what they are; escapes are undone; triple
    quotes and backticks span lines. (The character loop it replaced was 3x slower on 4 MB of JS.)
    """
    line, last = 1, 0
    for m in _LEXERS[comments].finditer(text):
        if m.group("c") is not None:
            continue
        line += text.count("\n", last, m.start())
        last = m.start()
        if m.group("bt") is not None:
            yield Value(m.group("bt"), line)
        else:
            body = m.group("b3") if m.group("q3") else m.group("b1")
            yield Value(_ESCAPE.sub(r"\1", body), line)


def yaml_values(text: str) -> Iterator[Value]:
    """Every scalar (keys included) of every YAML document, with its line; a broken file falls back to lines."""
    try:
        nodes = list(yaml.compose_all(text))
    except yaml.YAMLError:
        yield from key_values(text)
        return
    stack = [n for n in nodes if n is not None]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.ScalarNode):
            if isinstance(node.value, str):
                yield Value(node.value, node.start_mark.line + 1)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                stack.extend((k, v))


_KV = re.compile(r"^\s*(?:export\s+)?[A-Za-z_][\w.\-]*\s*[=:]\s*(.*?)\s*$")


def key_values(text: str) -> Iterator[Value]:
    """``KEY=value`` / ``key: value`` lines (.env, INI, properties), quotes and trailing comments removed."""
    for lineno, raw in enumerate(text.splitlines(), 1):
        if raw.lstrip().startswith(("#", ";", "!", "[")):
            continue
        m = _KV.match(raw)
        if not m:
            continue
        value = m.group(1)
        if value[:1] in "\"'" and value[:1] and value[:1] in value[1:]:
            value = value[1 : value.index(value[0], 1)]
        else:
            value = re.split(r"\s+[#;]", value, maxsplit=1)[0]
        for part in re.split(r"[,\s]+", value):
            if part:
                yield Value(part, lineno)


def notebook_values(text: str) -> Iterator[Value]:
    """String literals of each code cell (Python), numbered from 1; shell and magic lines are skipped."""
    nb = json.loads(text)
    for number, cell in enumerate(nb.get("cells", []), 1):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        source = "\n".join("" if ln.lstrip().startswith(("!", "%")) else ln for ln in source.split("\n"))
        for v in string_literals(source, "hash"):
            yield Value(v.text, v.line, number)


class Unread(Exception):
    """A file the scan could not read (too large, binary, unreadable, a broken notebook): reported, not a use."""


def read_source(path: Path) -> str:
    """A file's text; bytes that are not UTF-8 become U+FFFD (model ids are ASCII, so a Latin-1 file still scans)."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise Unread(f"larger than {MAX_BYTES // 1_000_000} MB")
        data = path.read_bytes()
    except OSError as exc:
        raise Unread(f"cannot be read ({exc.strerror or exc})") from None
    if b"\x00" in data:
        raise Unread("binary (holds NUL bytes)")
    return data.decode("utf-8", errors="replace")


def values_in(path: Path) -> Iterator[Value]:
    """The candidate values of one file; ``Unread`` (before any value) when the file cannot be read."""
    kind = kind_of(path)
    text = read_source(path)
    if kind in ("hash", "slash", "hcl"):
        yield from string_literals(text, kind)
    elif kind == "json":
        yield from string_literals(text, "slash")
    elif kind == "yaml":
        yield from yaml_values(text)
    elif kind == "env":
        yield from key_values(text)
    elif kind == "notebook":
        try:
            values = list(notebook_values(text))
        except (json.JSONDecodeError, AttributeError, TypeError) as exc:
            raise Unread(f"not a readable notebook ({type(exc).__name__}: {str(exc)[:80]})") from None
        yield from values
