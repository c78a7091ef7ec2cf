"""The spec's optional ``report:`` section: title and how much detail the report shows."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ReportConfig(BaseModel):
    """``report:`` in migration.yaml; every key is optional."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, description="heading of the report; default: 'Replacing <incumbent>'")
    max_examples: int = Field(6, ge=0, le=50, description="disagreement examples shown side by side")
    next_labels: int = Field(12, ge=0, le=200, description="next items to label listed in the report")
    markdown_segments: bool = Field(False, description="list segments in the Markdown summary too")
