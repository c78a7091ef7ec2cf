"""The gateway's layers: ``shadow`` (the feature on top) -> ``rollout`` -> ``shadowlog`` (the log's read side).

Parsed, not imported: every import statement of every module, at top level or
inside a function, counts, so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import changeover

SRC = Path(changeover.__file__).parent

# package -> the changeover packages it must never import
FORBIDDEN = {
    "rollout": ("changeover.shadow",),
    "shadowlog": ("changeover.shadow", "changeover.rollout"),
}


def imports(source: str, package: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, a module of ``package``; relative ones
    resolved, and ``from X import y`` counted as X and as X.y (``from changeover import shadow``)."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module) if p)
            out.append((node.lineno, module))
            out += [(node.lineno, f"{module}.{a.name}") for a in node.names]
    return out


def module_imports(path: Path) -> list[tuple[int, str]]:
    return imports(path.read_text(encoding="utf-8"), ".".join(("changeover", *path.relative_to(SRC).parent.parts)))


def _hits(module: str, forbidden: tuple[str, ...]) -> bool:
    return any(module == f or module.startswith(f + ".") for f in forbidden)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_import_nothing_above(package):
    files = sorted((SRC / package).rglob("*.py"))
    assert files, f"no modules found under {SRC / package}"
    bad = [
        f"{path.relative_to(SRC)}:{line} imports {module}"
        for path in files
        for line, module in module_imports(path)
        if _hits(module, FORBIDDEN[package])
    ]
    assert not bad, "a lower layer imports a higher one (move what they share into changeover.shadowlog):\n" + (
        "\n".join(bad)
    )


def test_the_check_sees_lazy_and_relative_imports():
    """The parser the test relies on catches the ways a cycle used to be dodged."""
    source = (
        "import json\n"
        "def late():\n    from changeover.shadow.app import create_app\n"
        "from .. import shadow\n"
        "from . import measure\n"
        "import changeover.shadow.gateway as g\n"
    )
    found = [m for _, m in imports(source, "changeover.rollout") if _hits(m, FORBIDDEN["rollout"])]
    assert sorted(set(found)) == [
        "changeover.shadow",
        "changeover.shadow.app",
        "changeover.shadow.app.create_app",
        "changeover.shadow.gateway",
    ]
    assert "changeover.rollout.measure" in {m for _, m in imports(source, "changeover.rollout")}
