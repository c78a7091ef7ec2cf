"""The report's inputs, one per section, and how they are gathered.

Every optional section has a small input type (``ShadowStats``, ``RolloutTimeline``,
``EmbeddingStats``); ``collect_inputs`` fills those it can find in the records and the
store, and anything passed in explicitly wins. A section whose input is None is not
rendered.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from changeover.assessment.result import Decision
from changeover.config import MigrationSpec
from changeover.records import Record
from changeover.report.config import ReportConfig
from changeover.report.embeddings import EmbeddingStats, embedding_stats
from changeover.report.labels import LabelStats, label_stats
from changeover.report.rollout import RolloutTimeline, rollout_timeline
from changeover.report.shadow import ShadowStats
from changeover.report.shadowlog import shadow_section
from changeover.store import Store
from changeover.store.events import list_events


@dataclass(slots=True)
class ReportInputs:
    """Optional section inputs; None means 'not part of this migration (yet)'."""

    labels: LabelStats | None = None
    shadow: ShadowStats | None = None
    rollout: RolloutTimeline | None = None
    embeddings: EmbeddingStats | None = None


def collect_inputs(
    records: list[Record],
    spec: MigrationSpec,
    decision: Decision,
    config: ReportConfig,
    store: Store | None = None,
    given: ReportInputs | None = None,
) -> ReportInputs:
    """Fill each section from ``given`` first, then from the records and the store."""
    given = given or ReportInputs()
    events = list_events(store) if store is not None else []
    found = ReportInputs(
        labels=label_stats(records, spec, decision, store, config.next_labels),
        shadow=shadow_section(records, spec, store, config.max_examples),
        rollout=rollout_timeline(events),
        embeddings=embedding_stats(events),
    )
    return replace(found, **{k: v for k, v in vars_of(given).items() if v is not None})


def vars_of(inputs: ReportInputs) -> dict[str, Any]:
    return {name: getattr(inputs, name) for name in ReportInputs.__slots__}
