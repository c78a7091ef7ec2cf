"""The sections read from the store — annotators, rollout events, embedding results — on
SQLite and on a real PostgreSQL (the `store` fixture runs each test on both)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert

from changeover.report.config import ReportConfig
from changeover.report.inputs import collect_inputs
from changeover.store.schema import labels as labels_table


def test_sections_from_the_store(store, spec, assessment, records, migration_events):
    migration_events(store)
    rows = [{"item": "q-0001", "model": "cand-a", "dimension": "correctness", "value": v, "annotator": who,
             "created_at": datetime.now(UTC), "status": status, "source": "app"}
            for v, who, status in [(1, "alice", "label"), (0, "bob", "label"), (1, "alice", "label"),
                                   (None, "carol", "skip")]]
    with store.engine.begin() as conn:
        conn.execute(insert(labels_table), rows)
    inputs = collect_inputs(records, spec, assessment.to_json(), ReportConfig(), store)
    assert inputs.labels.by_annotator[:2] == [("alice", 2), ("bob", 1)]     # skips carry no verdict
    assert inputs.rollout.rollbacks == 1 and inputs.rollout.trigger_checks == 2
    shares = [m.share for m in inputs.rollout.milestones if m.share is not None]
    assert shares == [0.0, 0.05, 0.25, 0.0, 0.05, 0.5]
    assert inputs.embeddings.k == 10 and inputs.embeddings.overlap.size == 225
    assert inputs.embeddings.verdict == "preserves retrieval"
