"""The queue follows the assessment: next_labels order the work, the decision shows on the
progress panel, and the ranking refreshes in the background as labels arrive."""

from __future__ import annotations

import threading
import time
import uuid
import warnings

import pytest

from changeover.labeling import LabelingService
from changeover.labeling.progress import decision_lines
from changeover.labeling.ranking import Refresher, Snapshot, rank_from_next_labels
from changeover.labeling.submit import Submission
from changeover.labeling.tasks import Catalogue

from .conftest import make_spec


def test_rank_keeps_each_response_at_its_best_label():
    ranked = rank_from_next_labels(
        [
            {"item": "a", "model": "m1", "dimension": "d1", "value": 0.9},
            {"item": "b", "model": "m1", "dimension": "d1", "value": 0.5},
            {"item": "a", "model": "m1", "dimension": "d2", "value": 0.4},
            {"item": "a", "model": "m2", "dimension": "d1", "value": 0.1},
        ]
    )
    assert ranked == {("a", "m1"): 0, ("b", "m1"): 1, ("a", "m2"): 2}
    only_d2 = rank_from_next_labels(
        [
            {"item": "a", "model": "m1", "dimension": "d1", "value": 0.9},
            {"item": "b", "model": "m1", "dimension": "d2", "value": 0.5},
        ],
        ["d2"],
    )
    assert only_d2 == {("b", "m1"): 0}


def test_refresher_refits_after_enough_labels_without_blocking_reads():
    calls: list[bool] = []
    gate = threading.Event()

    def compute(full: bool) -> Snapshot:
        calls.append(full)
        if full:
            gate.wait(5)  # a slow fit
        return Snapshot(Catalogue([]), decision={"n": len(calls)})

    r = Refresher(compute, every_labels=3, every_seconds=3600)
    first = r.snapshot  # built at once, without the fit
    assert calls == [False]
    r.start()
    t0 = time.monotonic()
    assert r.snapshot is first and time.monotonic() - t0 < 0.1  # reads never wait for the fit
    gate.set()
    deadline = time.monotonic() + 10
    while r.refreshes < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert calls == [False, True]
    r.labels_added(2)
    time.sleep(0.2)
    assert len(calls) == 2  # two labels are not enough
    r.labels_added(1)
    while r.refreshes < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert calls == [False, True, True] and r.snapshot.decision == {"n": 3}
    r.stop()


def test_decision_lines_read_the_assessment_json(tmp_path):
    spec = make_spec(tmp_path)
    decision = {
        "verdict": "NEED-LABELS",
        "candidates": {
            "gpt4": {"dimensions": {"refusal": {"verdict": "inconclusive", "overall": {"p_noninferior": 0.914}}}}
        },
        "labels_needed": {"gpt4": {"refusal": 140}},
    }
    lines = decision_lines(decision, spec, ["refusal"])
    assert lines[0].text == ("refusal, gpt4 vs llama2orig: P(non-inferior) = 0.91, about 140 more labels needed")
    assert lines[1].text.endswith("P(non-inferior) not available")


@pytest.mark.slow
def test_the_queue_follows_next_labels_from_the_real_assessment(tmp_path, sqlite_url, records, serve):
    pytest.importorskip("changeover.assess")
    from changeover.store import open_store
    from changeover.store.responses import add_records

    store = open_store(sqlite_url)
    add_records(store, records, source="xstest")
    spec = make_spec(tmp_path, assess_draws=100, assess_chains=1, rank_window=1, refresh_every_labels=1)
    service = LabelingService(store, spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short chains: the sampler warns about ESS
        snap = service.refresher.refresh(full=True)
    assert snap.error is None, snap.error
    assert snap.decision["verdict"] in ("GO", "NO-GO", "NEED-LABELS")
    assert snap.rank, "NEED-LABELS on mistralinstruct: the assessment ranks labels"
    best = min(snap.rank, key=snap.rank.get)
    task = service.next_task("alice")
    assert task is not None and task.key == best
    progress = service.progress(None)
    texts = [line["text"] for line in progress["decision"]["lines"]]
    assert any(t.startswith("refusal, mistralinstruct vs llama2orig: P(non-inferior) = ") for t in texts)
    assert "more labels needed" in " ".join(texts)
    service.submit("alice", task, Submission(uuid.uuid4().hex, "label", {"refusal": 1}))
    assert service.refresher._new_labels == 1  # the background thread would now refit
    store.dispose()
