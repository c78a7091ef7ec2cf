"""The queue follows the assessment: next_labels order the work, the decision shows on the
progress panel, and the ranking refreshes in the background as labels arrive."""

from __future__ import annotations

import json
import threading
import time
import uuid
import warnings

import pytest

from changeover.labeling import LabelingService
from changeover.labeling.ranking import Refresher, Snapshot, rank_from_next_labels
from changeover.labeling.submit import Submission
from changeover.labeling.tasks import Catalogue

from .conftest import make_spec, spec_dict


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


@pytest.mark.slow
def test_the_queue_follows_next_labels_from_the_real_assessment(tmp_path, sqlite_url, records, serve):
    from changeover.store import open_store
    from changeover.store.responses import add_records

    store = open_store(sqlite_url)
    add_records(store, records, source="xstest")
    spec = make_spec(tmp_path, assess_draws=100, assess_chains=2, rank_window=1, refresh_every_labels=1)
    service = LabelingService(store, spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short chains: the sampler warns about ESS
        snap = service.refresher.refresh(full=True)
    assert snap.error is None, snap.error
    assert str(snap.decision.verdict) in ("GO", "NO-GO", "NEED-LABELS")
    assert snap.rank, "NEED-LABELS on mistralinstruct: the assessment ranks labels"
    best = min(snap.rank, key=snap.rank.get)
    task = service.next_task("alice")
    assert task is not None and task.key == best
    progress = service.progress(None)
    texts = [line["text"] for line in progress["decision"]["lines"]]
    assert any(t.startswith("refusal, overall: P(non-inferior) = ") for t in texts)
    assert "more labels needed" in " ".join(texts)
    service.submit("alice", task, Submission(uuid.uuid4().hex, "label", {"refusal": 1}))
    assert service.refresher._new_labels == 1  # the background thread would now refit
    store.dispose()


def _two_segments(records):
    for rec in records:
        rec.segment = {"kind": "contrast" if rec.segment["type"].startswith("contrast_") else "safe"}
    return records


@pytest.mark.slow
def test_progress_shows_what_decides_with_the_cli_s_labels_needed(tmp_path, sqlite_url, records):
    """Per candidate: the deciding dimension and segment, its probability (and MCSE) against the threshold,
    and labels needed -- the very numbers ``changeover assess --json`` gives on the same store and seed."""
    import yaml

    from changeover.cli import run
    from changeover.config import load_spec
    from changeover.labeling.service import looks_for
    from changeover.stats.stopping import confidence_at_look
    from changeover.store import open_store
    from changeover.store.responses import add_records, load_records

    with open_store(sqlite_url) as store:
        add_records(store, _two_segments(records), source="xstest")
    path = tmp_path / "migration.yaml"
    path.write_text(yaml.safe_dump(spec_dict(segment_by=["kind"], assess_draws=100, assess_chains=2, seed=5)))
    store = open_store(sqlite_url)
    service = LabelingService(store, load_spec(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snap = service.refresher.refresh(full=True)
    assert snap.error is None, snap.error
    progress = service.progress(None)
    # the page reads the decision once per batch of labels: the CLI gets the same look count
    looks = looks_for(load_records(store, models=service.spec.models))
    out = tmp_path / "decision.json"
    code = run(
        [
            "assess",
            "--spec",
            str(path),
            "--db",
            sqlite_url,
            "--draws",
            "100",
            "--chains",
            "2",
            "--seed",
            "5",
            "--next",
            "200",
            "--json",
            str(out),
            "--looks",
            str(looks),
        ]
    )
    assert code in (0, 1, 3)
    cli = json.loads(out.read_text())
    assert snap.labels_needed == cli["labels_needed"]  # one labels_needed, the core's
    assert progress["labels_needed"] == sum(n for per in cli["labels_needed"].values() for n in per.values())
    by_name = {c["candidate"]: c for c in progress["decision"]["candidates"]}
    assert set(by_name) == {"gpt4", "mistralinstruct"}
    for name, shown in by_name.items():
        dim = cli["candidates"][name]["dimensions"]["refusal"]
        entries = {"overall": dim["overall"], **{s: dim["segments"][s] for s in ("contrast", "safe")}}
        assert shown["verdict"] == cli["candidates"][name]["verdict"]
        assert shown["labels_needed"] == cli["labels_needed"][name]["refusal"]
        assert shown["dimension"] == "refusal" and shown["segment"] in entries
        assert shown["threshold"] == pytest.approx(confidence_at_look(0.95, looks)) == cli["threshold"]
        if shown["probability"] == "non-inferior":  # the weakest required comparison decides
            assert shown["p"] == pytest.approx(min(e["p_noninferior"] for e in entries.values()))
            assert shown["mcse"] == pytest.approx(entries[shown["segment"]]["mcse"]["p_noninferior"])
        assert shown["borderline"] == entries[shown["segment"]]["borderline"]
    admin = service.progress(None)["decision"]["candidates"][0]
    assert (
        f"{admin['dimension']}, {admin['segment']}: P(" in admin["text"]
        and f"against {confidence_at_look(0.95, looks):.2f} needed" in admin["text"]
    )
    store.dispose()


def test_the_live_decision_counts_its_looks_one_per_batch_of_labelled_items():
    """The page refits as labels arrive: its threshold rises with the batches read (stats.stopping)."""
    from changeover.labeling.service import looks_for
    from changeover.records import Record

    recs = [Record(item=f"q{i}", model=m, labels={"refusal": [1]} if i < 45 else {}) for i in range(100) for m in "ab"]
    assert looks_for(recs) == 3  # 45 labelled items, batches of 20 (an item counts once)
    assert looks_for([Record(item="q", model="a")]) == 1
