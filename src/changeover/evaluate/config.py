"""The spec's ``evaluate:`` section: defaults for the options of ``changeover evaluate``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EvaluateConfig(BaseModel):
    """The spec's ``evaluate:`` section (command-line options override it)."""

    model_config = ConfigDict(extra="forbid")

    sample: int | None = Field(None, ge=1, description="interactions to sample (default: all)")
    min_per_segment: int = Field(5, ge=1, description="each segment gets at least this many (if it has them)")
    labels_budget: int = Field(0, ge=0, description="items to export for human labelling")
    batch: int = Field(50, ge=1, description="sampled interactions per batch (one Ray task each with --engine ray)")
    params: dict[str, Any] = Field(default_factory=dict, description="generation parameters for every call")
    prompt_ab: bool = Field(False, description="run the 2x2 of {old, adapted prompt} x {old, new model}")
    samples: int = Field(
        1, ge=1, le=100, description="answers drawn per (item, model); records carry extra.sample (0-based)"
    )
    max_tool_rounds: int = Field(
        8, ge=1, le=64, description="agent replay: model turns per item before it stops (status max_tool_rounds)"
    )
