"""The gateway: serve the incumbent (or the candidate, by stage), mirror to candidates, log both.

``create_app(spec, store)`` is the ASGI app behind ``changeover serve``; the
shadow report and the export of mirrored pairs as records read what it logged.
"""

from changeover.shadow.app import GatewayService, create_app

__all__ = ["GatewayService", "create_app"]
