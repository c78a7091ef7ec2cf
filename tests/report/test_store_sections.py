"""The sections read from the store — annotators, rollout events, embedding results — on
SQLite and on a real PostgreSQL (the `store` fixture runs each test on both)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert

from changeover.report.config import ReportConfig
from changeover.report.inputs import collect_inputs
from changeover.report.results import decision_of
from changeover.store.schema import labels as labels_table


def test_sections_from_the_store(store, spec, assessment, records, migration_events):
    migration_events(store)
    rows = [
        {
            "item": item,
            "model": "cand-a",
            "dimension": "correctness",
            "value": v,
            "annotator": who,
            "created_at": datetime.now(UTC),
            "status": status,
            "source": "app",
        }
        for item, v, who, status in [
            ("q-0001", 1, "alice", "label"),
            ("q-0001", 0, "bob", "label"),
            ("q-0002", 1, "alice", "label"),
            ("q-0002", 0, "alice", "label"),
            ("q-0001", None, "carol", "skip"),
        ]
    ]
    with store.engine.begin() as conn:
        conn.execute(insert(labels_table), rows)
    inputs = collect_inputs(records, spec, decision_of(assessment), ReportConfig(), store)
    # alice's second verdict on q-0002 replaces her first; skips carry no verdict
    assert inputs.labels.by_annotator[:2] == [("alice", 2), ("bob", 1)]
    assert "carol" not in dict(inputs.labels.by_annotator)
    assert inputs.rollout.rollbacks == 1 and inputs.rollout.trigger_checks == 2
    shares = [m.share for m in inputs.rollout.milestones if m.share is not None]
    assert shares == [0.0, 0.05, 0.25, 0.0, 0.05, 0.5]
    assert inputs.embeddings.k == 10 and inputs.embeddings.overlap.size == 225
    assert inputs.embeddings.verdict == "preserves retrieval"
