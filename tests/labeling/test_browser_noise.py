"""An annotator who fails gold items: their noise rate, estimated by the assessment's measurement model,
rises (their weight drops) on the admin's progress page and in the assessment itself (Debian chromium).

Set CHANGEOVER_UPDATE_SCREENSHOT=1 to refresh docs/labeling-noise.png from this run.
"""

from __future__ import annotations

import os
import uuid
import warnings

from changeover.labeling.progress import noisy_annotators
from changeover.store import open_store
from changeover.store.responses import add_records

from .test_browser import DOCS, browser  # noqa: F401  (the fixture)
from .test_gold import write_gold

N_GOLD = 8


def _label(live, who: str, n: int, answers: dict) -> list[dict]:
    """``who`` judges ``n`` responses over the API, the gold ones right; returns what they sent."""
    sent = []
    with live.client(who) as c:
        for _ in range(n):
            task = c.get("/api/next").json()["task"]
            if task is None:
                break
            key = live.service.task(task).key
            value = answers.get(key, 1)
            client_id = uuid.uuid4().hex
            r = c.post("/api/labels", json={"client_id": client_id, "task": task, "verdicts": {"refusal": value}})
            assert r.status_code == 201, r.text
            sent.append({"client_id": client_id, "task": task, "key": key})
    return sent


def _noise_on_page(admin, who: str) -> tuple[float, float]:
    cell = admin.locator(f"td.noise[data-annotator={who}] .noise-rate")
    return float(cell.get_attribute("data-noise")), float(cell.get_attribute("data-weight"))


def _noise_in_assessment(live, who: str) -> float:
    decision = live.service.refresher.snapshot.decision
    rates = [a for c in decision.candidates.values() for a in c.dimensions["refusal"].annotators if a.name == who]
    return max(rates, key=lambda a: a.labels).noise_mean


def _refit(live) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a small live fit may warn about convergence; the rates are what is read
        live.service.refresher.refresh(full=True)


def test_failing_gold_items_raises_the_annotators_noise_on_the_page_and_in_the_assessment(
    tmp_path,
    sqlite_url,
    records,
    serve,
    browser,  # noqa: F811
):
    store = open_store(sqlite_url)
    add_records(store, records, source="xstest")
    answers = write_gold(tmp_path, store, N_GOLD)
    live = serve(store, gold={"answers": "gold.csv", "share": 0.5})
    _label(live, "alice", 24, answers)
    bob = _label(live, "bob", 24, answers)
    bob_gold = [s for s in bob if s["key"] in answers]
    assert len(bob_gold) == N_GOLD  # the queue gave bob every gold response, blind

    _refit(live)
    admin = browser.new_page(viewport={"width": 1360, "height": 900})
    admin.goto(f"{live.url}/login?token={live.tokens['admin']}")
    before, weight_before = _noise_on_page(admin, "bob")
    assert before < 0.12 and weight_before > 0.75  # right on every gold item: trusted
    assert "low" not in admin.locator("td.noise[data-annotator=bob] .noise-rate").get_attribute("class")
    in_assessment_before = _noise_in_assessment(live, "bob")
    assert abs(in_assessment_before - before) < 1e-3

    with live.client("bob") as c:  # bob changes his mind on every gold item, to the wrong answer
        for s in bob_gold:
            body = {
                "client_id": uuid.uuid4().hex,
                "task": s["task"],
                "corrects": s["client_id"],
                "verdicts": {"refusal": 1 - answers[s["key"]]},
            }
            assert c.post("/api/labels", json=body).status_code == 201
    _refit(live)
    admin.reload()
    after, weight_after = _noise_on_page(admin, "bob")
    alice, _ = _noise_on_page(admin, "alice")
    print(
        f"bob: noise {before:.3f} -> {after:.3f}, weight {weight_before:.2f} -> {weight_after:.2f}; alice {alice:.3f}"
    )
    assert after > 0.3 and weight_after < 0.4 and weight_after < weight_before - 0.4
    assert alice < 0.12  # alice's rate stays where her gold verdicts put it
    assert "low" in admin.locator("td.noise[data-annotator=bob] .noise-rate").get_attribute("class")
    assert _noise_in_assessment(live, "bob") > in_assessment_before + 0.2
    snap = live.service.refresher.snapshot
    assert noisy_annotators(snap.decision, ["refusal"]) == {"bob"} <= snap.recheck  # his lone labels get a second
    text = admin.locator("td.noise[data-annotator=bob]").inner_text()
    assert text.startswith(f"{100 * after:.0f}%") and f"{weight_after:.2f}" in text
    if os.environ.get("CHANGEOVER_UPDATE_SCREENSHOT"):
        admin.locator("section.card.wide").screenshot(path=str(DOCS / "labeling-noise.png"))
    store.dispose()
