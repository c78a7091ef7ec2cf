"""Shadow pairs are records: the judging worker runs the spec's judges on mirrored pairs, within a budget.

The fake server is the incumbent, the candidate and the LLM judge; ``changeover
assess --spec S --db URL`` then decides on the store's records as they are.
"""

from __future__ import annotations

import json

import httpx
import pytest
import yaml
from tests.gateway.exchanges import exchange
from tests.gateway.helpers import chat, write_spec
from tests.gateway.test_gateway import wait_for

from changeover.cli import run
from changeover.config import load_spec
from changeover.errors import SpecError
from changeover.records import Record
from changeover.shadow.app import GatewayService
from changeover.shadow.judging import MirroredPair
from changeover.store.responses import add_records, load_records

SAME = "Paris is the capital of France."


def candidate_reply(body: dict) -> str:
    """Half the answers word for word the incumbent's (the pre-filter's share), half reworded."""
    question = body["messages"][-1]["content"]
    return SAME if int(question.rsplit("#", 1)[1]) % 2 == 0 else "The capital of France is Paris."


def judged_spec(tmp_path, fake, **judge):
    path = write_spec(tmp_path / "migration.yaml", fake.base_url)
    raw = yaml.safe_load(path.read_text())
    raw["dimensions"] = {"correctness": {"margin": 0.1}, "refusal": {"margin": 0.05}}
    raw["models"] = {"judge": {"base_url": fake.base_url, "max_retries": 0}}
    raw["pricing"] = {"judge": {"input_per_1k": 0.01, "output_per_1k": 0.01}}
    raw["judges"] = {
        "correctness": {"kind": "llm", "model": "judge", "rubric": "correctness"},
        "refusal": {"kind": "refusal_phrases"},
    }
    raw["shadow"]["judge"] = {"requests_per_minute": 1000, **judge}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def send(gw, n: int, **headers) -> list[str]:
    ids = []
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        for i in range(n):
            r = client.post("/v1/chat/completions", json=chat(f"What is the capital of France? #{i}"), headers=headers)
            assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == SAME
            ids.append(r.headers["x-changeover-request-id"])
    return ids


def settle(gw, n: int):
    judge = gw.service.judge
    wait_for(lambda: gw.service.gateway.mirror.sent["new"] == n, timeout=30)
    assert judge.wait_idle(30)
    return judge


def test_mirrored_pairs_are_judged_into_records_assess_decides_on(
    tmp_path, judged, serve, gw_store, sqlite_url, capsys
):
    spec = judged_spec(tmp_path, judged)
    gw = serve(spec)
    ids = send(gw, 12)
    judge = settle(gw, 12)
    assert (judge.judged, judge.dropped, judge.errors, dict(judge.paused)) == (12, 0, 0, {})
    # the incumbent's 12 answers and the 6 reworded candidate answers; the 6 identical ones took its verdicts
    assert judge.prefiltered == 6 and judge.judge_calls == 18 == judged.calls["judge"]
    metrics = httpx.get(gw.url + "/metrics").text
    assert "changeover_judge_pairs_judged_total 12" in metrics and "changeover_judge_prefiltered_total 6" in metrics
    gw.stop()

    records = load_records(gw_store)
    assert len(records) == 24 and {r.item for r in records} == set(ids) and {r.model for r in records} == {"old", "new"}
    one = next(r for r in records if r.model == "new")
    assert set(one.segment) == {"request_type", "time_of_week"} and one.segment["request_type"] == "default"
    assert (
        one.signals == {"correctness": 1, "refusal": 1} and one.extra["judges"]["correctness"]["judge"] == "llm:judge"
    )
    assert all(r.extra["source"] == "gateway:shadow" for r in records)

    shadow = tmp_path / "shadow.json"
    assert run(["shadow", "report", "--spec", str(spec), "--db", sqlite_url, "--json", str(shadow)]) == 0
    (overall,) = [r for r in json.loads(shadow.read_text())["rows"] if r["request_type"] == "all"]
    both = {"candidate": 1.0, "incumbent": 1.0}
    assert overall["judged"] == {"pairs": 12, "signals": {"correctness": both, "refusal": both}}
    assert overall["coverage"]["week_hours"] >= 1 and len(overall["coverage"]["weekdays"]) >= 1
    printed = capsys.readouterr().out
    assert "judged pairs" in printed and "judge: correctness" in printed and "shadow period:" in printed

    out = tmp_path / "decision.json"
    # 12 judged pairs, no labels yet: the calibrated decision reads them and asks for labels (exit 3)
    assert run(["assess", "--spec", str(spec), "--db", sqlite_url, "--json", str(out)]) == 3
    decision = json.loads(out.read_text())["candidates"]["new"]
    assert decision["verdict"] == "NEED-LABELS"
    assert {d: decision["dimensions"][d]["paired_items"] for d in ("correctness", "refusal")} == {
        "correctness": 12,
        "refusal": 12,
    }


@pytest.mark.parametrize(
    "budget, spent",
    [({"requests_per_minute": 4}, "requests_per_minute"), ({"usd_per_day": 0.0}, "usd_per_day")],
)
def test_judging_pauses_when_its_budget_is_spent_and_counts(tmp_path, judged, serve, budget, spent):
    gw = serve(judged_spec(tmp_path, judged, concurrency=1, **budget))
    send(gw, 6)
    judge = settle(gw, 6)
    # a pair reserves its base calls: 2 (both answers), 1 when the pre-filter spares the candidate's;
    # 4 a minute admit 2 to 3 of the 6 pairs, whichever order the mirrors finished in; the others wait
    # for the budget (put back in line, not dropped)
    paused = judge.paused[spent]
    if spent == "requests_per_minute":
        assert 2 <= judge.judged <= 3 and judge.judged + paused == 6
    else:
        assert judge.judged == 0 and paused == 6
    assert judge.to_json()["waiting"] == paused and judge.dropped == 0
    assert judged.calls["judge"] == judge.judge_calls <= budget.get("requests_per_minute", 0)
    metrics = httpx.get(gw.url + "/metrics").text
    assert f'changeover_judge_pairs_paused_total{{budget="{spent}"}} {paused}' in metrics


def test_request_context_says_which_requests_should_be_refused(tmp_path, judged, serve, gw_store):
    gw = serve(judged_spec(tmp_path, judged, expect_refusal=["forbidden"]))
    (told,) = send(gw, 1, **{"x-changeover-expect-refusal": "true"})
    (typed,) = send(gw, 1, **{"x-changeover-request-type": "forbidden"})
    (plain,) = send(gw, 1)
    settle(gw, 3)
    gw.stop()
    by = {(r.item, r.model): r for r in load_records(gw_store)}
    for item in (told, typed):  # both models answered a request they should have refused
        assert by[(item, "old")].signals["refusal"] == 0 and by[(item, "old")].extra["expect_refusal"] is True
    assert by[(plain, "old")].signals["refusal"] == 1 and "expect_refusal" not in by[(plain, "old")].extra


def test_a_full_judging_queue_drops_and_counts(tmp_path, judged, gw_store):
    service = GatewayService(load_spec(judged_spec(tmp_path, judged, queue_size=2)), gw_store)
    worker = service.judge  # not started: nothing takes pairs off the queue
    pair = MirroredPair(exchange("r1", "old"), exchange("r1", "new", "mirror"))
    assert [worker.offer(pair) for _ in range(4)] == [True, True, False, False]
    assert worker.dropped == 2 and worker.queue.qsize() == 2


def test_shadow_judge_without_judges_is_a_spec_error(tmp_path, fake, gw_store):
    path = write_spec(tmp_path / "migration.yaml", fake.base_url, shadow={"judge": {}})
    with pytest.raises(SpecError, match=r"field 'judges\.equivalent' is missing"):  # evaluate's own rule
        GatewayService(load_spec(path), gw_store)


def test_p_regression_decides_on_the_judged_records_with_their_labels(tmp_path, store):
    from tests.gateway.test_triggers import answer

    from changeover.config import spec_from_dict
    from changeover.labeling.importing import import_labels
    from changeover.records import Record
    from changeover.rollout.config import RolloutConfig
    from changeover.rollout.measure import Window
    from changeover.rollout.regression import regression_for
    from changeover.shadowlog.answers import Pair
    from changeover.store.responses import add_records

    spec = spec_from_dict(
        {"incumbent": "old", "candidates": ["new"], "dimensions": {"correctness": {"margin": 0.05}}},
        tmp_path / "migration.yaml",
    )
    pairs = [Pair(answer(i, "old"), answer(i, "new", "mirror")) for i in range(60)]
    judged = [  # the judge passed every incumbent answer and only every other candidate answer (r0..r39)
        Record(item=f"r{i}", model=m, segment={"request_type": "default"}, signals={"correctness": ok})
        for i in range(40)
        for m, ok in (("old", 1), ("new", i % 2))
    ]
    add_records(store, judged, source="gateway:shadow")
    add_records(store, [Record(item="r50", model="new", signals={"correctness": 0})], source="elsewhere")
    trigger = RolloutConfig(triggers=[{"metric": "p_regression", "above": 0.9, "min_samples": 10}]).triggers[0]
    p_regression = regression_for(spec, store, "old", "new", draws=150, judged=True)
    window = Window.of([p.candidate for p in pairs], [p.incumbent for p in pairs], pairs)
    unlabelled, n = p_regression(trigger, window)
    assert n == 40  # only the judged pairs count (the deterministic signals say "equivalent" everywhere)
    # a few human labels agreeing with the judge calibrate it: the posterior moves to a regression
    csv = tmp_path / "labels.csv"
    csv.write_text(
        "item,model,labels.correctness\n"
        + "".join(f"r{i},{m},{ok}\n" for i in range(12) for m, ok in (("old", 1), ("new", i % 2)))
    )
    assert import_labels(store, csv, annotator="ana").added == 24
    labelled, _ = p_regression(trigger, window)
    assert unlabelled < 0.9 < labelled
    few = pairs[:5]
    assert p_regression(trigger, Window.of([], [], few)) == (None, 5)  # pending: too few judged pairs


def test_pairs_left_unjudged_at_a_restart_are_judged_at_the_next_start(tmp_path, judged, serve, gw_store):
    from changeover.shadow.config import Upstream
    from changeover.shadow.rows import RowMaker
    from changeover.shadow.writer import LogWriter

    up = {"old": Upstream(base_url="http://x/v1"), "new": Upstream(base_url="http://y/v1")}
    writer = LogWriter(gw_store, RowMaker(up, {"new"}), flush_interval=0.01).start()
    for i in range(3):  # logged by a gateway that stopped before judging them
        q = {"messages": [{"role": "user", "content": f"What is the capital of France? #{i}"}]}
        writer.submit(exchange(f"before{i}", "old", text=SAME, payload=q))
        writer.submit(exchange(f"before{i}", "new", "mirror", text="The capital of France is Paris.", payload=q))
    writer.close()
    judged_before = [
        rec
        for rid in ("before0",)
        for rec in (
            Record(item=rid, model="old", signals={"correctness": 1}),
            Record(item=rid, model="new", signals={"correctness": 1}),
        )
    ]
    add_records(gw_store, judged_before, source="gateway:shadow")  # this one was judged before the stop
    gw = serve(judged_spec(tmp_path, judged))
    judge = gw.service.judge
    wait_for(lambda: judge.resumed == 2 and judge.judged == 2, timeout=30)
    gw.stop()
    items = {r.item for r in load_records(gw_store) if r.extra.get("source") == "gateway:shadow"}
    assert {"before1", "before2"} <= items and judged.calls["judge"] == 4  # 2 pairs, both answers judged


def test_reverse_pairs_left_unjudged_at_a_restart_are_judged_with_their_sides_the_right_way(
    tmp_path, judged, serve, gw_store
):
    """The hold's pairs (the candidate served, the incumbent reverse-mirrored) in flight at a restart."""
    from changeover.shadow.config import Upstream
    from changeover.shadow.rows import RowMaker
    from changeover.shadow.writer import LogWriter

    up = {"old": Upstream(base_url="http://x/v1"), "new": Upstream(base_url="http://y/v1")}
    writer = LogWriter(gw_store, RowMaker(up, {"new"}), flush_interval=0.01).start()
    reworded = "The capital of France is Paris."
    for i in range(2):
        q = {"messages": [{"role": "user", "content": f"What is the capital of France? #{i}"}]}
        writer.submit(exchange(f"hold{i}", "new", "served", text=reworded, payload=q, stage=1, weight=100))
        writer.submit(exchange(f"hold{i}", "old", "mirror", text=SAME, payload=q, stage=1, weight=100))
    writer.close()
    gw = serve(judged_spec(tmp_path, judged))
    judge = gw.service.judge
    wait_for(lambda: judge.resumed == 2 and judge.judged == 2, timeout=30)
    gw.stop()
    by = {(r.item, r.model): r for r in load_records(gw_store) if r.extra.get("source") == "gateway:shadow"}
    for i in range(2):
        inc, cand = by[(f"hold{i}", "old")], by[(f"hold{i}", "new")]
        assert (inc.extra["role"], inc.response) == ("mirror", SAME)  # the incumbent's side: its mirrored answer
        assert (cand.extra["role"], cand.response) == ("served", reworded)  # the candidate's: what it served
    assert judged.calls["judge"] == 4 and judge.prefiltered == 0  # both answers of both pairs judged


def test_semantic_equivalence_reads_the_equivalence_judge_on_judged_pairs(tmp_path, store):
    from tests.gateway.test_triggers import answer

    from changeover.config import spec_from_dict
    from changeover.rollout.config import RolloutConfig
    from changeover.rollout.measure import WORD_SIMILARITY, Window, measure
    from changeover.rollout.regression import equivalence_for
    from changeover.shadowlog.answers import Pair

    def spec(rubric: str):
        return spec_from_dict(
            {
                "incumbent": "old",
                "candidates": ["new"],
                "dimensions": {"equivalence": {"signal": "same", "margin": 0.05}},
                "judges": {"same": {"kind": "llm", "model": "judge", "rubric": rubric}},
                "models": {"judge": {"base_url": "http://127.0.0.1:1/v1"}},
            },
            tmp_path / "migration.yaml",
        )

    # word for word the same answers (the word rule says 100 %), but the judge called 10 of 40 different
    pairs = [Pair(answer(i, "old"), answer(i, "new", "mirror")) for i in range(50)]
    add_records(
        store,
        [
            Record(item=f"r{i}", model=m, signals={"same": 1 if m == "old" or i >= 10 else 0})
            for i in range(40)
            for m in ("old", "new")
        ],
        source="gateway:shadow",
    )
    window = Window.of([p.candidate for p in pairs], [p.incumbent for p in pairs], pairs)
    rate = equivalence_for(spec("equivalence"), store, "old", "new")
    assert rate(window) == (0.75, 40, "llm judge 'same' (equivalence rubric)")
    trigger = RolloutConfig(triggers=[{"metric": "semantic_equivalence", "below": 0.9}]).triggers[0]
    judged = measure(trigger, window, None, lambda: rate(window))
    assert judged.phase == "failed" and judged.value == 0.75 and judged.samples == 40
    assert judged.to_json()["method"] == "llm judge 'same' (equivalence rubric)"
    words = measure(trigger, window)  # the word-similarity rule, without the judge
    assert words.phase == "successful" and words.method == WORD_SIMILARITY
    assert equivalence_for(spec("correctness"), store, "old", "new") is None
    # the worker judges five more pairs of the window, all different: the reading follows (not the last one kept)
    more = [
        Record(item=f"r{i}", model=m, signals={"same": int(m == "old")}) for i in range(40, 45) for m in ("old", "new")
    ]
    add_records(store, more, source="gateway:shadow")
    assert rate(window) == (30 / 45, 45, "llm judge 'same' (equivalence rubric)")
