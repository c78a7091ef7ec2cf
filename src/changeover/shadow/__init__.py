"""The gateway: serve the incumbent (or the candidate, by stage), mirror to candidates, log both.

``create_app(spec, store)`` (in ``shadow.app``) is the ASGI app behind
``changeover serve``; the shadow report and the export of mirrored pairs as
records read what it logged.
"""

from typing import Any

__all__ = ["GatewayService", "create_app"]


def __getattr__(name: str) -> Any:
    # lazy: shadow.app imports rollout, which imports shadow's tables and answers
    if name in __all__:
        from changeover.shadow import app

        return getattr(app, name)
    raise AttributeError(name)
