"""Gold items: responses with a settled answer slipped blind into annotators' queues, never twice to one
annotator; an annotator who fails them shows low gold agreement on the progress page and in
``label export --quality``; their gold verdicts are not labels of the decision."""

from __future__ import annotations

import csv
import io
import json
import uuid
from pathlib import Path

import pytest

from changeover.cli import run
from changeover.labeling.export import label_rows
from changeover.labeling.gold import GOLD
from changeover.store.responses import current_labels

from .conftest import spec_dict

N_GOLD = 4


def write_gold(tmp_path: Path, store, n: int = N_GOLD) -> dict[tuple[str, str], int]:
    """``n`` responses without a human label as gold, with an answer each, in ``tmp_path/gold.csv``."""
    have = current_labels(store)
    from changeover.labeling.tasks import stored_responses

    free = [r for r in stored_responses(store, ["gpt4", "mistralinstruct"]) if not r.labels]
    free = [r for r in free if (r.item, r.model, "refusal") not in have][:n]
    answers = {(r.item, r.model): k % 2 for k, r in enumerate(free)}
    with (tmp_path / "gold.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["item", "model", "dimension", "value"])
        w.writerows([item, model, "refusal", v] for (item, model), v in answers.items())
    return answers


def label_through(live, who: str, n: int, answers: dict[tuple[str, str], int], fail_gold: bool) -> list[dict]:
    """``who`` judges ``n`` responses over the API: gold ones right, or wrong when ``fail_gold``;
    returns what /api/next sent each time (with the test's own note of whether it was gold)."""
    seen = []
    with live.client(who) as c:
        for _ in range(n):
            body = c.get("/api/next").json()
            if body["task"] is None:
                break
            key = live.service.task(body["task"]).key
            gold = key in answers
            value = (1 - answers[key] if fail_gold else answers[key]) if gold else 1
            r = c.post(
                "/api/labels",
                json={"client_id": uuid.uuid4().hex, "task": body["task"], "verdicts": {"refusal": value}},
            )
            assert r.status_code == 201, r.text
            seen.append({**body, "_key": key, "_gold": gold})
    return seen


def test_an_annotator_failing_gold_shows_low_gold_agreement(tmp_path, filled_store, serve):
    answers = write_gold(tmp_path, filled_store)
    before = current_labels(filled_store)
    live = serve(filled_store, gold={"answers": "gold.csv", "share": 1.0})
    alice = label_through(live, "alice", N_GOLD + 3, answers, fail_gold=False)
    bob = label_through(live, "bob", N_GOLD + 3, answers, fail_gold=True)
    for seen in (alice, bob):
        assert [s["_gold"] for s in seen] == [True] * N_GOLD + [False] * 3  # share 1.0: gold first, then the queue
        assert len({s["_key"] for s in seen}) == len(seen)  # never twice to one annotator
        regular = next(s for s in seen if not s["_gold"])
        for s in seen:  # blind: a gold response is sent exactly as any other
            assert set(s) == set(regular) and "gold" not in json.dumps({k: s[k] for k in ("task", "dimensions")})
    with live.client("admin") as admin:
        p = admin.get("/api/progress").json()
        page = admin.get("/progress").text
    qa, qb = p["annotators"]["alice"]["quality"], p["annotators"]["bob"]["quality"]
    assert qa["gold"] == 1.0 and qa["gold_checks"] == N_GOLD and not qa["low"]
    assert qb["gold"] == 0.0 and qb["gold_checks"] == N_GOLD and qb["low"]
    assert qa["consensus_checks"] == N_GOLD and qa["consensus"] == 0.0  # on gold they contradicted each other
    assert p["annotators"]["bob"]["total"] == N_GOLD + 3  # a gold check counts as judged on their counters
    assert p["gold"] == {"responses": N_GOLD, "share": 1.0}
    assert 'data-annotator="bob">0% <span class="muted small">of 4</span> <span class="tag warn">low' in page
    # the note says what happens: the answer is the label, the verdicts beside it measure the annotators
    assert "the settled answer is the response's label in the decision" in page
    assert "not counted as labels of the decision" not in page
    from changeover.cli.common import load_assessment_records

    recs, _, _ = load_assessment_records(live.service.spec, None, filled_store.url)
    beside = {(r.item, r.model): sorted(r.annotators("refusal")) for r in recs if (r.item, r.model) in answers}
    assert beside == {k: ["alice", "bob", "settled:gold"] for k in answers}  # as `changeover assess` reads them
    # not labels of the decision: the store's labels in force hold no verdict on a gold response
    after = current_labels(filled_store)
    assert not [k for k in after if k[:2] in answers]
    assert len(after) == len(before) + 6  # the 3 regular labels of each annotator
    gold_rows = [r for r in label_rows(filled_store) if r["status"] == GOLD]
    assert len(gold_rows) == 2 * N_GOLD and {(r["item"], r["model"]) for r in gold_rows} == set(answers)
    with live.client("bob") as c:  # the annotator's own history shows a gold check as a label
        page = c.get("/history").text
        assert ">gold<" not in page and page.count("correct-link") == N_GOLD + 3


def test_a_corrected_gold_verdict_supersedes_and_changes_the_gold_agreement(tmp_path, filled_store, serve):
    answers = write_gold(tmp_path, filled_store, 1)
    live = serve(filled_store, gold={"answers": "gold.csv", "share": 1.0})
    (seen,) = label_through(live, "carol", 1, answers, fail_gold=True)
    with live.client("carol") as c:
        (past,) = [p for p in live.service.history("carol")]
        assert past.status == "label"
        body = {"client_id": uuid.uuid4().hex, "task": seen["task"], "verdicts": {"refusal": answers[seen["_key"]]}}
        assert c.post("/api/labels", json={**body, "corrects": past.client_id}).status_code == 201
    q = live.service.quality()["carol"]
    assert (q.gold, q.gold_checks) == (1.0, 1)
    assert not [k for k in current_labels(filled_store) if k[:2] in answers]


def test_admin_settled_responses_become_gold_for_those_who_have_not_seen_them(unlabelled_store, serve):
    live = serve(unlabelled_store, double_label_share=1.0, gold={"answers": "settled", "share": 1.0})
    with live.client("alice") as a, live.client("bob") as b:
        task = a.get("/api/next").json()["task"]
        assert (
            a.post(
                "/api/labels", json={"client_id": uuid.uuid4().hex, "task": task, "verdicts": {"refusal": 1}}
            ).status_code
            == 201
        )
        assert b.get("/api/next").json()["task"] == task
        assert (
            b.post(
                "/api/labels", json={"client_id": uuid.uuid4().hex, "task": task, "verdicts": {"refusal": 0}}
            ).status_code
            == 201
        )
    with live.client("admin") as admin:
        settle = {"client_id": uuid.uuid4().hex, "task": task, "verdicts": {"refusal": 0}, "reason": "harmful: decline"}
        assert admin.post("/api/resolve", json=settle).status_code == 201
    live.service.refresher.refresh(full=False)
    key = live.service.task(task).key
    assert live.service.refresher.snapshot.gold == {key: {"refusal": 0}}
    with live.client("carol") as c:
        assert c.get("/api/next").json()["task"] == task  # share 1.0: carol, who never saw it, gets it first
        assert (
            c.post(
                "/api/labels", json={"client_id": uuid.uuid4().hex, "task": task, "verdicts": {"refusal": 1}}
            ).status_code
            == 201
        )
        assert c.get("/api/next").json()["task"] != task
    assert current_labels(unlabelled_store)[(*key, "refusal")] == [0]  # still only the admin's verdict counts
    q = live.service.quality()
    assert (q["carol"].gold, q["carol"].gold_checks) == (0.0, 1)
    assert "alice" not in q or q["alice"].gold_checks == 0  # her regular label is not a gold check


def test_export_quality_and_gold_file_errors(tmp_path, sqlite_url, records, capsys):
    import yaml

    from changeover.labeling import LabelingService
    from changeover.labeling.submit import Submission
    from changeover.store import open_store
    from changeover.store.responses import add_records

    with open_store(sqlite_url) as store:
        add_records(store, records, source="xstest")
        answers = write_gold(tmp_path, store, 2)
        spec_path = tmp_path / "migration.yaml"
        spec_path.write_text(yaml.safe_dump(spec_dict(gold={"answers": "gold.csv", "share": 1.0})), encoding="utf-8")
        from changeover.config import load_spec

        service = LabelingService(store, load_spec(spec_path))
        for _ in range(2):
            task = service.next_task("bob")
            assert task is not None and task.key in answers
            service.submit("bob", task, Submission(uuid.uuid4().hex, verdicts={"refusal": 1 - answers[task.key]}))
    code = run(["label", "export", "--quality", "--spec", str(spec_path), "--db", sqlite_url])
    assert code == 0
    (row,) = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert row["annotator"] == "bob" and row["gold"] == "0.0" and row["gold_checks"] == "2" and row["low"] == "True"
    assert run(["label", "export", "--quality", "--db", sqlite_url]) == 2
    assert "--quality needs --spec" in capsys.readouterr().err
    (tmp_path / "gold.csv").write_text("item,model,dimension,value\nnope,gpt4,refusal,1\n", encoding="utf-8")
    assert run(["label", "export", "--quality", "--spec", str(spec_path), "--db", sqlite_url]) == 2
    err = capsys.readouterr().err
    assert "labeling.gold.answers" in err and "'nope'" in err and "Traceback" not in err


@pytest.mark.parametrize("answers", ["missing.csv"])
def test_a_gold_file_that_is_not_there_is_a_spec_error(tmp_path, filled_store, serve, answers):
    from changeover.errors import SpecError

    with pytest.raises(SpecError, match="labeling.gold.answers"):
        serve(filled_store, gold={"answers": answers})


def test_a_response_judged_by_a_low_gold_annotator_gets_a_second_label(tmp_path, unlabelled_store, serve):
    answers = write_gold(tmp_path, unlabelled_store, 1)
    live = serve(unlabelled_store, gold={"answers": "gold.csv", "share": 1.0})
    label_through(live, "bob", 1, answers, fail_gold=True)  # bob fails the gold item ...
    label_through(live, "carol", 1, answers, fail_gold=False)  # ... carol passes it
    live.service.refresher.refresh(full=False)
    assert live.service.refresher.snapshot.recheck == {"bob"}
    (by_bob,) = label_through(live, "bob", 1, answers, fail_gold=True)
    checked, by_carol = label_through(live, "carol", 2, answers, fail_gold=False)
    assert checked["_key"] == by_bob["_key"]  # bob's verdict is the next one checked
    alice = label_through(live, "alice", 3, answers, fail_gold=False)
    assert alice[0]["_gold"] and not {by_bob["_key"], by_carol["_key"]} & {s["_key"] for s in alice}
    assert sorted(current_labels(unlabelled_store)[(*by_bob["_key"], "refusal")]) == [1, 1]  # two verdicts
    assert len(current_labels(unlabelled_store)[(*by_carol["_key"], "refusal")]) == 1  # carol's is enough alone
