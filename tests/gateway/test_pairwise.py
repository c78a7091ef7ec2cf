"""The comparison judge on mirrored pairs: equivalent / candidate better / worse / different, off the request path.

The fake OpenAI server is the incumbent, the candidate and the judge (real HTTP
on loopback). The candidate's answer depends on the question's number, so each
class shows up a known number of times; the judge reads which of A and B is
the candidate from the texts, so the A/B order the judge sees is exercised too.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import yaml
from tests.gateway.helpers import write_spec
from tests.gateway.test_gateway import wait_for
from tests.gateway.test_judging import SAME, send, settle

from changeover.cli import run
from changeover.config import spec_from_dict
from changeover.errors import ChangeoverError
from changeover.judges import build_judges, judge_configs
from changeover.judges.base import Case
from changeover.judges.comparison import ComparisonJudge, candidate_class, parse_strict
from changeover.judges.llm import _coin
from changeover.judges.parse import parse_verdict
from changeover.judges.rubrics import COMPARISON
from changeover.providers import Completion
from changeover.shadow.disagreements import comparison_summary
from changeover.shadow.report import load_judged
from changeover.store.responses import load_records

CANDIDATE = {  # question number % 6 -> the candidate's answer, and the class the judge gives it
    0: (SAME, "equivalent"),  # word for word the incumbent's: the pre-filter, no judge call
    1: ("The capital of France is Paris.", "equivalent"),
    2: ("Paris is the capital of France, and has been since the year 987.", "better"),
    3: ("Lyon is the capital of France.", "worse"),
    4: ("France's capital is Paris, though many visitors prefer Lyon.", "different"),
    5: ("Hmm, unsure: Paris?", None),  # the judge's reply names no verdict: a failed comparison
}
PROSE = "Hard to say; I would not call them EQUIVALENT."  # one label word in prose: the loose reader's EQUIVALENT


def number(body: dict) -> int:
    return int(body["messages"][-1]["content"].rsplit("#", 1)[1])


def candidate_reply(body: dict) -> str:
    return CANDIDATE[number(body) % 6][0]


def judge_reply(body: dict) -> str:
    """The comparison rubric's judge: finds the candidate among A and B and answers on its side."""
    user = body["messages"][1]["content"]
    a, b = user.split("RESPONSE A:\n", 1)[1].split("\n\nRESPONSE B:\n", 1)
    cand, mine, other = (b, "B", "A") if a == SAME else (a, "A", "B")
    label = next(c for text, c in CANDIDATE.values() if text == cand)
    if label is None:
        return PROSE
    verdict = {"equivalent": "EQUIVALENT", "better": f"{mine}_BETTER", "worse": f"{other}_BETTER"}
    return "Comparing them. " + json.dumps({"verdict": verdict.get(label, "DIFFERENT"), "reason": "as seen"})


def pairwise_spec(tmp_path, fake, judge=None, rollout=None, **settings):
    path = write_spec(tmp_path / "migration.yaml", fake.base_url)
    raw = yaml.safe_load(path.read_text())
    raw["dimensions"] = {"agreement": {"margin": 0.1}}
    raw["models"] = {"judge": {"base_url": fake.base_url, "max_retries": 0}}
    raw["judges"] = {"agreement": {"kind": "llm", "model": "judge", "rubric": "comparison", **(judge or {})}}
    raw["shadow"]["judge"] = {"requests_per_minute": 1000, **settings}
    if rollout:
        raw["rollout"].update(rollout)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def compared(fake):
    fake.set("old", reply=SAME)
    fake.set("new", reply=candidate_reply)
    fake.set("judge", reply=judge_reply)
    return fake


def test_classes_are_stored_with_the_pairs_and_shown_with_examples_in_shadow_report(
    tmp_path, compared, serve, gw_store, sqlite_url, capsys
):
    spec = pairwise_spec(tmp_path, compared)
    gw = serve(spec)
    ids = send(gw, 12)
    judge = settle(gw, 12)
    # 2 pairs settled by the pre-filter (no call); 8 one call each; the 2 unreadable replies asked again once
    assert dict(judge.compared) == {"equivalent": 4, "better": 2, "worse": 2, "different": 2, "failed": 2}
    assert judge.prefiltered == 2 and judge.judge_calls == 12 == compared.calls["judge"]
    assert judge.to_json()["compared"]["failed"] == 2
    metrics = httpx.get(gw.url + "/metrics").text
    assert 'changeover_judge_compared_total{class="worse"} 2' in metrics
    assert 'changeover_judge_compared_total{class="failed"} 2' in metrics
    gw.stop()

    by = {(r.item, r.model): r for r in load_records(gw_store)}
    for i, rid in enumerate(ids):
        text, label = CANDIDATE[i % 6]
        cand = by[(rid, "new")]
        assert cand.extra["comparison"] == {
            "signal": "agreement",
            "class": label,
            "by": "prefilter" if i % 6 == 0 else "judge",
        }
        assert cand.signals["agreement"] == (None if label is None else int(label in ("equivalent", "better")))
        assert "comparison" not in by[(rid, "old")].extra  # the class is the pair's, kept with the candidate
    assert "unparseable judge output" in by[(ids[5], "new")].extra["unscorable"]["agreement"]

    out = tmp_path / "shadow.json"
    argv = ["shadow", "report", "--spec", str(spec), "--db", sqlite_url, "--json", str(out), "--examples", "1"]
    assert run(argv) == 0
    (overall,) = [r for r in json.loads(out.read_text())["rows"] if r["request_type"] == "all"]
    c = overall["comparison"]
    assert c["classes"] == {"equivalent": 4, "better": 2, "worse": 2, "different": 2}
    assert (c["judge"], c["pairs"], c["failed"], c["prefiltered"]) == ("agreement", 12, 2, 2)
    assert c["equivalent_or_better"] == 6 / 10
    assert {k: len(v) for k, v in c["examples"].items()} == dict.fromkeys(
        ["equivalent", "better", "worse", "different", "failed"], 1
    )
    worse = c["examples"]["worse"][0]
    assert worse["candidate"] == CANDIDATE[3][0] and worse["incumbent"] == SAME and worse["by"] == "judge"
    assert worse["request"].startswith("What is the capital of France? #")
    assert c["examples"]["equivalent"][0]["by"] == "judge"  # a judged example before a pre-filtered one
    assert "unparseable" in c["examples"]["failed"][0]["note"]
    printed = capsys.readouterr().out
    assert "judged equivalent / better / worse / different" in printed and "4 / 2 / 2 / 2" in printed
    assert "pre-filtered (no judge call)" in printed and "2 of 12" in printed
    assert "classified by the judge 'agreement'" in printed and "worse (2 pairs, 1 shown):" in printed
    assert f"new: {CANDIDATE[3][0]}" in printed and f"old: {SAME}" in printed
    assert "failed (2 pairs, 1 shown):" in printed


def test_identical_answers_need_no_judge_call_and_are_counted(tmp_path, compared, serve):
    compared.set("new", reply=SAME)
    gw = serve(pairwise_spec(tmp_path, compared))
    send(gw, 5)
    judge = settle(gw, 5)
    assert judge.prefiltered == 5 and dict(judge.compared) == {"equivalent": 5}
    assert compared.calls["judge"] == 0 and judge.judge_calls == 0
    assert "changeover_judge_prefiltered_total 5" in httpx.get(gw.url + "/metrics").text


def test_the_judging_budget_bounds_the_comparison_calls(tmp_path, compared, serve):
    gw = serve(pairwise_spec(tmp_path, compared, concurrency=1, requests_per_minute=3))
    send(gw, 12)
    judge = settle(gw, 12)
    # no call for the incumbent's side (the comparison needs none), one for the candidate's: 3 a minute;
    # the pairs beyond wait for the budget (not dropped)
    assert compared.calls["judge"] == judge.judge_calls <= 3
    paused = judge.paused["requests_per_minute"]
    assert paused >= 1 and judge.judged + paused == 12 and judge.to_json()["waiting"] == paused


def test_re_asks_after_unreadable_replies_stay_within_the_budget(tmp_path, compared, serve, gw_store):
    compared.set("new", reply=CANDIDATE[5][0])  # the judge's every reply is unreadable: asked twice each time
    gw = serve(pairwise_spec(tmp_path, compared, concurrency=1, requests_per_minute=3))
    ids = send(gw, 4)
    judge = settle(gw, 4)
    # a pair reserves its one base call; its re-ask takes one more when made. Pair 1: call + re-ask (2);
    # pair 2: its call (3), its re-ask does not fit: not made, a failed comparison; pairs 3 and 4 wait
    assert compared.calls["judge"] == judge.judge_calls == 3
    assert dict(judge.compared) == {"failed": 2} and judge.reasks_refused == 1
    assert judge.paused["requests_per_minute"] == 2 and judge.to_json()["waiting"] == 2
    gw.stop()
    notes = {r.item: r.extra["unscorable"]["agreement"] for r in load_records(gw_store) if r.model == "new"}
    # the two pairs the mirror finished first (its workers run side by side: not always the first two sent)
    assert len(notes) == 2 and set(notes) <= set(ids)
    first, second = sorted(notes.values(), key=lambda note: "judging budget spent" in note)
    assert "unparseable judge output" in first and "judging budget spent" not in first
    assert "judging budget spent" in second and "re-ask not made" in second  # never a pass


def test_semantic_equivalence_trips_on_a_candidate_the_judge_calls_worse(tmp_path, compared, serve):
    compared.set("new", reply=CANDIDATE[3][0])  # every answer the judge calls worse: words half the same
    trigger = {"metric": "semantic_equivalence", "below": 0.8, "min_samples": 5}
    gw = serve(pairwise_spec(tmp_path, compared, rollout={"triggers": [trigger]}), run_controller=False)
    send(gw, 6)
    settle(gw, 6)
    wait_for(lambda: gw.service.writer.written == 12, timeout=30)  # both answers of each pair in the shadow log
    decision = gw.service.controller.tick()
    (m,) = decision.measurements
    assert (m.phase, m.value, m.samples) == ("failed", 0.0, 6)
    assert m.method == "llm judge 'agreement' (comparison rubric)"
    assert decision.action == "rollback" and decision.state.status == "rolled_back"
    assert "on 6 samples by llm judge 'agreement' (comparison rubric)" in decision.reason


def test_semantic_equivalence_reads_the_comparison_classes_and_falls_back_to_words(tmp_path, store):
    from tests.gateway.test_triggers import answer

    from changeover.records import Record
    from changeover.rollout.config import RolloutConfig
    from changeover.rollout.measure import WORD_SIMILARITY, Window, measure
    from changeover.rollout.regression import equivalence_for
    from changeover.shadowlog.answers import Pair
    from changeover.store.responses import add_records

    def spec(judges):
        return spec_from_dict(
            {
                "incumbent": "old",
                "candidates": ["new"],
                "dimensions": {"agreement": {"margin": 0.05}},
                "judges": judges,
                "models": {"judge": {"base_url": "http://127.0.0.1:1/v1"}},
            },
            tmp_path / "migration.yaml",
        )

    # word for word the same answers (the word rule: 100 %); the judge: 20 equivalent, 10 better, 8 worse,
    # 2 different, and 2 it could not classify (left out of the share)
    labels = ["equivalent"] * 20 + ["better"] * 10 + ["worse"] * 8 + ["different"] * 2 + [None] * 2
    pairs = [Pair(answer(i, "old"), answer(i, "new", "mirror")) for i in range(len(labels))]
    records = []
    for i, label in enumerate(labels):
        value = None if label is None else int(label in ("equivalent", "better"))
        compared = {"signal": "agreement", "class": label, "by": "judge"}
        records += [
            Record(item=f"r{i}", model="old", prompt="q", signals={"agreement": 1}),
            Record(item=f"r{i}", model="new", prompt="q", signals={"agreement": value}, extra={"comparison": compared}),
        ]
    add_records(store, records, source="gateway:shadow")
    window = Window.of([p.candidate for p in pairs], [p.incumbent for p in pairs], pairs)
    both = {
        "agreement": {"kind": "llm", "model": "judge", "rubric": "comparison"},
        "same": {"kind": "llm", "model": "judge", "rubric": "equivalence"},
    }
    rate = equivalence_for(spec(both), store, "old", "new")  # the comparison judge first
    assert rate(window) == (0.75, 40, "llm judge 'agreement' (comparison rubric)")
    trigger = RolloutConfig(triggers=[{"metric": "semantic_equivalence", "below": 0.8}]).triggers[0]
    assert measure(trigger, window, None, lambda: rate(window)).phase == "failed"
    words = measure(trigger, window)  # no pairwise judge configured: word similarity, and it says so
    assert (words.phase, words.value, words.method) == ("successful", 1.0, WORD_SIMILARITY)
    # the report reads the same stored classes (on either backend)
    summary = comparison_summary(pairs, load_judged(store, ["old", "new"], None), examples=2)
    assert summary["classes"] == {"equivalent": 20, "better": 10, "worse": 8, "different": 2}
    assert summary["failed"] == 2 and summary["equivalent_or_better"] == 0.75 and len(summary["examples"]["worse"]) == 2


def test_the_verdict_is_read_strictly_and_mapped_to_the_candidates_side():
    scale = COMPARISON.scale()
    assert parse_strict('{"verdict": "B_BETTER", "reason": "x"}', scale) == (2, "json")
    assert parse_strict("Verdict: DIFFERENT", scale) == (3, "line")
    assert parse_strict("EQUIVALENT", scale)[0] == 0
    assert parse_verdict(PROSE, scale)[0] == 0 and parse_strict(PROSE, scale)[0] is None  # a word in prose: none
    assert [candidate_class(v, True) for v in range(4)] == ["equivalent", "better", "worse", "different"]
    assert [candidate_class(v, False) for v in range(4)] == ["equivalent", "worse", "better", "different"]

    first = next(f"r{i}" for i in range(100) if _coin(f"r{i}"))  # the candidate shown as A
    second = next(f"r{i}" for i in range(100) if not _coin(f"r{i}"))  # ... as B
    asked = []

    async def ask(request):
        asked.append(request)
        return Completion(text='{"verdict": "A_BETTER"}')

    judge = ComparisonJudge("agreement", COMPARISON, "judge", ask, retries=0)

    def score(item: str, **kw):
        case = Case(item=item, model="new", prompt="q", response="cand", incumbent_response="inc", **kw)
        return asyncio.run(judge.score(case))

    assert (score(first).label, score(first).value) == ("better", 1)
    assert (score(second).label, score(second).value) == ("worse", 0)
    assert "RESPONSE A:\ncand\n" in asked[0].messages[1]["content"]
    n = len(asked)
    assert score(first, is_incumbent=True).value == 1 and len(asked) == n  # no call for the incumbent


def test_the_comparison_judge_is_declared_in_judges_and_checked_strictly(tmp_path):
    def spec(judge):
        return spec_from_dict(
            {
                "incumbent": "old",
                "candidates": ["new"],
                "dimensions": {"agreement": {"margin": 0.05}},
                "judges": {"agreement": judge},
                "models": {"judge": {"base_url": "http://127.0.0.1:1/v1"}},
            },
            tmp_path / "migration.yaml",
        )

    ok = judge_configs(spec({"kind": "llm", "model": "judge", "rubric": "comparison"}))
    assert ok["agreement"].rubric == "comparison"
    with pytest.raises(ChangeoverError, match="verdicts"):  # an unknown key stays an error
        judge_configs(spec({"kind": "llm", "model": "judge", "rubric": "comparison", "verdicts": 4}))
    levels = spec({"kind": "llm", "model": "judge", "rubric": "comparison", "levels": 3})
    with pytest.raises(ChangeoverError, match="no ordinal form"):
        build_judges(levels, judge_configs(levels), lambda s, m: None)
