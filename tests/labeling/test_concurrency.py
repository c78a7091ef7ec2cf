"""Eight annotators at once over real HTTP (uvicorn on loopback, httpx clients in threads), on SQLite
and PostgreSQL, while the queue's catalogue is rebuilt from the store again and again: with
``double_label_share: 0`` no response is ever labelled by two annotators, over several runs."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import pytest

from changeover.store.responses import all_labels

ANNOTATORS = [f"a{i}" for i in range(8)]


def _run(live) -> tuple[Counter[tuple[str, str]], list[str]]:
    """Every annotator labels until the queue is empty; a side thread keeps rebuilding the catalogue."""
    errors: list[str] = []
    barrier = threading.Barrier(len(ANNOTATORS) + 1)
    done = threading.Event()

    def rebuild() -> None:  # what the background refresher does after every few labels
        barrier.wait()
        while not done.is_set():
            live.service.refresher.refresh(full=False)

    def work(name: str) -> None:
        with live.client(name) as c:
            barrier.wait()
            for _ in range(500):
                r = c.get("/api/next")
                if r.status_code != 200:
                    errors.append(f"{name}: GET /api/next {r.status_code} {r.text}")
                    return
                task = r.json()["task"]
                if task is None:
                    return
                body = {"client_id": uuid.uuid4().hex, "task": task, "verdicts": {"refusal": 1}}
                res = c.post("/api/labels", json=body)
                if res.status_code != 201:
                    errors.append(f"{name}: POST {res.status_code} {res.text}")

    side = threading.Thread(target=rebuild)
    workers = [threading.Thread(target=work, args=(n,)) for n in ANNOTATORS]
    side.start()
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=300)
    done.set()
    side.join(timeout=60)
    per_response: Counter[tuple[str, str]] = Counter()
    for row in all_labels(live.service.store):
        if row.status == "label":
            per_response[(row.item, row.model)] += 1
    return per_response, errors


@pytest.mark.parametrize("run", range(3))
def test_eight_annotators_never_label_a_single_label_response_twice(unlabelled_store, serve, run):
    live = serve(unlabelled_store, annotators=ANNOTATORS, double_label_share=0.0)
    total = len(live.service.catalogue)
    per_response, errors = _run(live)
    assert not errors
    twice = {k: n for k, n in per_response.items() if n > 1}
    assert not twice, f"run {run}: {len(twice)} responses labelled more than once: {twice}"
    assert len(per_response) == total  # and every response got its one label
    with live.client("admin") as c:
        assert c.get("/api/progress").json()["remaining"] == 0


def test_eight_annotators_with_a_double_labelled_share_give_exactly_two(unlabelled_store, serve):
    live = serve(unlabelled_store, annotators=ANNOTATORS, double_label_share=0.5)
    needed = {t.key: t.needed for t in live.service.catalogue.by_key.values()}
    assert set(needed.values()) == {1, 2}
    per_response, errors = _run(live)
    assert not errors
    assert dict(per_response) == needed
