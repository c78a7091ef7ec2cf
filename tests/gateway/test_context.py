"""What the gateway reads from a request: its type (for stratified mirroring) and its sticky key."""

from __future__ import annotations

import pytest

from changeover.errors import SpecError
from changeover.shadow.config import RequestTypes, ShadowConfig
from changeover.shadow.context import RequestTyper, StickyKey


def body(text: str, **extra) -> dict:
    return {"messages": [{"role": "system", "content": "be nice"}, {"role": "user", "content": text}], **extra}


def test_request_type_from_header_then_field_then_rules_then_default():
    typer = RequestTyper(RequestTypes(rules=[{"type": "billing", "pattern": r"invoice|refund"}]))
    assert typer(body("refund me"), {"x-changeover-request-type": "support"}) == "support"
    assert typer(body("refund me", metadata={"request_type": "sales"}), {}) == "sales"
    assert typer(body("Please REFUND me"), {}) == "billing"
    assert typer(body("hello"), {}) == "default"
    assert typer(None, {}) == "default"  # a body that is not JSON


def test_sticky_key_sources_in_order():
    sticky = StickyKey(["header:x-session-id", "field:user"])
    assert sticky(body("x", user="u-1"), {"x-session-id": "s-9"}) == "s-9"
    assert sticky(body("x", user="u-1"), {}) == "u-1"
    assert sticky(body("x"), {}) is None
    with pytest.raises(SpecError, match="rollout.stickiness.0"):
        StickyKey(["cookie:sid"])


def test_sampling_is_stratified_by_request_type():
    cfg = ShadowConfig(sample={"billing": 1.0, "default": 0.1})
    assert (cfg.rate("billing"), cfg.rate("chitchat"), cfg.rate("default")) == (1.0, 0.1, 0.1)
    assert ShadowConfig(sample={"billing": 0.5}).rate("other") == 0.0
    with pytest.raises(ValueError, match="sample share"):
        ShadowConfig(sample=1.5)
