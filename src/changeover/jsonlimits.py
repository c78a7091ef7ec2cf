"""JSON from a client, bounded: nesting deeper than a limit is a ``TooDeep`` (a ``ValueError``), never a
``RecursionError`` (a 500 in a web app) or a value nested without bound.

Shared by the web features (the labelling app, the gateway's ``shadow.limits``), so it sits below them.
"""

from __future__ import annotations

import json
from typing import Any


class TooDeep(ValueError):
    """The JSON nests deeper than allowed."""


def depth(value: Any) -> int:
    """How deep containers nest in a parsed JSON value (iterative: never recurses)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


def loads(raw: bytes | str, max_depth: int) -> Any:
    """``json.loads`` that raises ``TooDeep`` instead of nesting without bound."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise TooDeep(f"the JSON nests deeper than {max_depth} levels") from None
    if isinstance(value, dict | list) and depth(value) > max_depth:
        raise TooDeep(f"the JSON nests deeper than {max_depth} levels")
    return value
