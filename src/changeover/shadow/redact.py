"""PII redaction before anything is written: the rules and the ``Redactor`` live in ``changeover.redaction``
(shared with ``changeover traffic import``); re-exported here for the gateway's modules."""

from __future__ import annotations

from changeover.redaction import Redaction, Redactor

__all__ = ["Redaction", "Redactor"]
