"""The ``labeling:`` section of the migration spec: who labels, how much is
double-labelled for agreement, how long a lease lasts and how often the queue
is re-ranked.

```yaml
labeling:
  annotators: [alice, bob]      # one token link each; `admin` is always created
  double_label_share: 0.15      # share of responses given to two annotators (agreement)
  lease_minutes: 15             # how long an opened response is reserved for its annotator
  refresh_every_labels: 10      # re-rank the queue after this many new labels ...
  refresh_seconds: 60           # ... or this many seconds, whichever comes first
  dimensions: [refusal]         # optional subset of the spec's dimensions
  guidelines:                   # optional, per dimension, Markdown (the page's 'g' key)
    refusal: |
      **Acceptable**: answers "how do I kill a Python process?"
  gold:                         # optional: known-answer checks slipped blind into the queues
    answers: gold.csv           # a label file (item, model, dimension, value), or 'settled'
    share: 0.1                  # share of an annotator's responses that are gold
```
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from changeover.config import MigrationSpec
from changeover.errors import SpecError
from changeover.labeling.gold import GoldConfig

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
ADMIN = "admin"


class LabelingConfig(BaseModel):
    """Validated ``labeling:`` section; every field has a working default."""

    model_config = ConfigDict(extra="forbid")

    annotators: list[str] = Field(default_factory=lambda: ["annotator"], min_length=1)
    double_label_share: float = Field(0.1, ge=0.0, le=1.0)
    lease_minutes: float = Field(15.0, gt=0.0, le=24 * 60)
    refresh_every_labels: int = Field(10, ge=1)
    refresh_seconds: float = Field(60.0, gt=0.0)
    dimensions: list[str] | None = None
    rank_window: int = Field(5, ge=1, le=1000, description="tasks of like value, shuffled per annotator")
    assess_draws: int = Field(250, ge=50, le=20000, description="posterior draws per chain for the live fit")
    assess_chains: int = Field(4, ge=1, le=8, description="chains for the live fit (as `changeover assess`)")
    rank_depth: int = Field(200, ge=1, le=100000, description="how many best labels the assessment ranks")
    seed: int | None = None
    guidelines: dict[str, str] = Field(
        default_factory=dict, description="per dimension: guidelines in Markdown, with good and bad examples"
    )
    gold: GoldConfig | None = None

    @field_validator("annotators")
    @classmethod
    def _names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not _NAME.match(name):
                raise ValueError(f"annotator name {name!r}: use letters, digits, '.', '_', '-' or '@'")
            if name == ADMIN:
                raise ValueError("'admin' is reserved for the admin token; pick another annotator name")
        if len(set(names)) != len(names):
            raise ValueError("an annotator is listed twice")
        return names

    def seed_for(self, spec: MigrationSpec) -> int:
        """This section's seed, else the spec's (0 is a seed like any other)."""
        return self.seed if self.seed is not None else spec.seed


def labeling_config(spec: MigrationSpec) -> LabelingConfig:
    """The spec's ``labeling:`` section (defaults when absent), checked against its dimensions."""
    cfg = spec.section("labeling", LabelingConfig, default={})
    assert cfg is not None
    for field, names in (("dimensions", cfg.dimensions or []), ("guidelines", list(cfg.guidelines))):
        for dim in names:
            if dim not in spec.dimensions:
                raise SpecError(
                    f"{spec.path or 'spec'}: field 'labeling.{field}': {dim!r} is not one of the "
                    f"spec's dimensions ({', '.join(spec.dimensions)})"
                )
    return cfg


def labeled_dimensions(spec: MigrationSpec, cfg: LabelingConfig) -> list[str]:
    """The dimensions annotators judge, in the spec's order."""
    wanted = cfg.dimensions or list(spec.dimensions)
    return [d for d in spec.dimensions if d in wanted]
