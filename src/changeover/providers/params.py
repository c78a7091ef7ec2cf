"""A per-model rename/drop table for request parameters, applied to every request body.

    models:
      new-model:
        param_map: {max_tokens: max_completion_tokens, temperature: null}   # rename one, drop one

A newer API may refuse a parameter an older one took (OpenAI's reasoning
models want ``max_completion_tokens`` and only the default ``temperature``).
The table lets the same traffic reach it without failing the candidate for a
parameter name. Pure: the gateway applies the same function to the bodies it
forwards upstream.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ParamMap = Mapping[str, str | None]
"""parameter -> its new name, or None to drop it."""


def apply_param_map(body: Mapping[str, Any], mapping: ParamMap | None) -> dict[str, Any]:
    """A copy of ``body`` with each mapped key renamed (or dropped when mapped to None).

    A rename never overwrites a key the body already has under the new name:
    ``{max_tokens: 10, max_completion_tokens: 20}`` keeps 20.
    """
    out = dict(body)
    for key, new in (mapping or {}).items():
        if key not in out:
            continue
        value = out.pop(key)
        if new is not None and new not in out:
            out[new] = value
    return out
