"""The spec's say over imports: the ``traffic_import:`` section (segment paths) and the ``redaction:`` rules.

```yaml
traffic_import:
  segments: {region: metadata.region, tier: trace.metadata.tier}
redaction:
  - {pattern: '[\\w.+-]+@[\\w-]+\\.[\\w.]+', replace: '[EMAIL]'}
```

(``traffic:`` itself is the core section of traffic volume and shares.) The gateway's
``shadow.redact`` rules apply too, so one set of rules covers what is
logged live and what is imported.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, RootModel

from changeover.config import MigrationSpec
from changeover.redaction import Redaction  # shared with the gateway; see docs/traffic.md

__all__ = ["Redaction", "RedactionRules", "TrafficConfig", "redaction_rules", "traffic_config"]


class TrafficConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    segments: dict[str, str] = Field(
        default_factory=dict, description="segment name -> dotted path into the source record"
    )


class RedactionRules(RootModel[list[Redaction]]):
    pass


def traffic_config(spec: MigrationSpec | None) -> TrafficConfig:
    if spec is None:
        return TrafficConfig()
    return spec.section("traffic_import", TrafficConfig) or TrafficConfig()


def redaction_rules(spec: MigrationSpec | None) -> list[Redaction]:
    """The ``redaction:`` list, then ``shadow.redact``; errors name the spec field."""
    if spec is None:
        return []
    rules = list((spec.section("redaction", RedactionRules) or RedactionRules([])).root)
    shadow = spec.raw("shadow")
    if isinstance(shadow, dict) and shadow.get("redact"):
        wrapped = spec.section("shadow", _ShadowRedact, default=None)
        rules += wrapped.redact if wrapped else []
    return rules


class _ShadowRedact(BaseModel):
    model_config = ConfigDict(extra="ignore")

    redact: list[Redaction] = Field(default_factory=list)
