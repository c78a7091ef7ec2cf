"""The traffic and scan features stand on services and nouns only: no feature imports another feature."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import changeover

SRC = Path(changeover.__file__).parent
FEATURES = (
    "evaluate",
    "gateway",
    "shadow",
    "embeddings",
    "labeling",
    "report",
    "prompts",
    "rollout",
    "traffic",
    "scan",
)


def imported(module_dir: Path) -> set[str]:
    """Every ``changeover.X`` package imported by a module under ``module_dir`` (X, the top level)."""
    out: set[str] = set()
    for path in module_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            out |= {n.split(".")[1] for n in names if n.startswith("changeover.") and n.count(".") >= 1}
    return out


@pytest.mark.parametrize("feature", ["traffic", "scan"])
def test_feature_imports_no_other_feature(feature):
    others = imported(SRC / feature) & (set(FEATURES) - {feature})
    assert not others, f"changeover.{feature} imports the feature(s) {sorted(others)}; move what they share down"


def test_redaction_is_one_set_of_rules_for_the_gateway_and_imports():
    from changeover import redaction
    from changeover.shadow import config, redact
    from changeover.traffic import config as traffic_config

    assert redact.Redactor is redaction.Redactor and redact.Redaction is redaction.Redaction
    assert config.Redaction is redaction.Redaction is traffic_config.Redaction
    rule = redaction.Redaction(pattern=r"\d{4}", replace="[N]")
    out = redaction.Redactor([rule]).value({"a": ["card 1234"], "api_key": "sk-1", "n": 3})
    assert out == {"a": ["card [N]"], "n": 3}
