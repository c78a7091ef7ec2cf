"""The JSON API over real HTTP (uvicorn on loopback): 401s, idempotency, unknown items,
blindness, corrections, leases and concurrent annotators, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter

import pytest

from changeover.labeling.export import label_rows
from changeover.labeling.queue import candidates, read_state
from changeover.store.responses import current_labels

from .conftest import MODELS


def _label(client, task: str, value: int = 1, client_id: str | None = None, **extra):
    body = {"client_id": client_id or uuid.uuid4().hex, "task": task, "verdicts": {"refusal": value}, **extra}
    return client.post("/api/labels", json=body)


def test_every_page_and_api_answers_401_without_a_valid_token(filled_store, serve):
    live = serve(filled_store)
    paths = ["/", "/correct", "/progress", "/review", "/export.csv", "/api/next", "/api/progress", "/api/export"]
    paths += ["/api/flags", "/api/disagreements"]
    for token in (None, "not-a-token"):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with live.client(None) as c:
            for path in paths:
                r = c.get(path, headers=headers)
                assert r.status_code == 401, (path, token)
            r = c.post("/api/labels", json={"client_id": "x" * 12, "task": "t"}, headers=headers)
            assert r.status_code == 401
            assert "token" in r.json()["error"]
    with live.client(None) as c:
        assert c.get("/login", params={"token": "wrong"}).status_code == 401
    with live.client(None) as c:
        c.cookies.set("changeover_label_token", "wrong")
        assert c.get("/api/next").status_code == 401
    with live.client("alice") as c:  # an annotator is not the admin
        assert c.get("/progress").status_code == 403
        assert c.get("/review").status_code == 403 and c.get("/api/flags").status_code == 403
        assert c.get("/api/export").status_code == 403
        assert c.get("/api/next").status_code == 200


def test_an_oversized_body_is_refused_before_the_token_is_checked(filled_store, serve):
    live = serve(filled_store)
    huge = b"x" * ((1 << 20) + 1)
    for who in (None, "alice"):
        with live.client(who) as c:
            r = c.post("/api/labels", content=huge, headers={"Content-Type": "application/json"})
            assert r.status_code == 413 and "larger than" in r.json()["error"]


def test_next_item_is_blind_and_stable_while_leased(filled_store, serve):
    live = serve(filled_store)
    with live.client("alice") as c:
        first = c.get("/api/next")
        assert first.status_code == 200
        body = first.json()
        assert body["dimensions"][0]["rubric"].startswith("Acceptable when")
        assert body["response"] and body["messages"][0]["role"] == "user"
        text = first.text
        assert not any(m in text for m in MODELS), "the model's name must never reach the annotator"
        assert c.get("/api/next").json()["task"] == body["task"]  # a reload shows the same response


def test_double_submission_is_stored_once(filled_store, serve):
    live = serve(filled_store)
    with live.client("alice") as c:
        task = c.get("/api/next").json()["task"]
        cid = uuid.uuid4().hex
        first = _label(c, task, 1, cid)
        second = _label(c, task, 1, cid)
        assert first.status_code == 201 and second.status_code == 200
        assert second.json()["duplicate"] is True
        assert second.json()["label_ids"] == first.json()["label_ids"]
        assert _label(c, task, 0, cid).status_code == 409  # same id, different content
    rows = [r for r in label_rows(filled_store)]
    assert len(rows) == 1 and rows[0]["annotator"] == "alice" and rows[0]["value"] == 1


def test_unknown_item_task_or_dimension_is_a_clear_4xx(filled_store, serve):
    live = serve(filled_store)
    with live.client("alice") as c:
        cid = uuid.uuid4().hex
        r = c.post(
            "/api/labels", json={"client_id": cid, "item": "no-such-item", "model": "gpt4", "verdicts": {"refusal": 1}}
        )
        assert r.status_code == 404 and "unknown item 'no-such-item'" in r.json()["error"]
        r = c.post("/api/labels", json={"client_id": cid, "item": "v2-1", "model": "gpt-9", "verdicts": {"refusal": 1}})
        assert r.status_code == 404 and "no response from model 'gpt-9'" in r.json()["error"]
        r = _label(c, "feedfacefeedface", 1)
        assert r.status_code == 404 and "GET /api/next" in r.json()["error"]
        task = c.get("/api/next").json()["task"]
        r = c.post("/api/labels", json={"client_id": cid, "task": task, "verdicts": {"tone": 1}})
        assert r.status_code == 422 and "unknown dimension" in r.json()["error"]
        r = c.post("/api/labels", json={"client_id": cid, "task": task, "verdicts": {"refusal": 2}})
        assert r.status_code == 422
        r = c.post("/api/labels", json={"task": task, "verdicts": {"refusal": 1}})
        assert r.status_code == 422 and "client_id" in r.json()["error"]
        r = c.post("/api/labels", content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 400
        r = c.post(
            "/api/labels",
            content=json.dumps({"client_id": cid, "task": task}).encode(),
            headers={"Content-Type": "text/plain"},
        )
        assert r.status_code == 415
        # the item-and-model form works for tools that know the response
        ok = c.post(
            "/api/labels",
            json={"client_id": uuid.uuid4().hex, "item": "v2-1", "model": "gpt4", "verdicts": {"refusal": 1}},
        )
        assert ok.status_code == 201
    assert len(list(label_rows(filled_store))) == 1


def test_a_correction_supersedes_and_keeps_the_original(filled_store, serve):
    live = serve(filled_store)
    with live.client("alice") as c:
        task = c.get("/api/next").json()["task"]
        cid = uuid.uuid4().hex
        original = _label(c, task, 1, cid).json()["label_ids"]["refusal"]
        fixed = _label(c, task, 0, corrects=cid)
        assert fixed.status_code == 201
    with live.client("bob") as c:  # nobody corrects someone else's label
        assert _label(c, task, 1, corrects=cid).status_code == 403
    rows = {r["id"]: r for r in label_rows(filled_store)}
    new = rows[fixed.json()["label_ids"]["refusal"]]
    assert new["supersedes"] == original and new["in_force"] and not rows[original]["in_force"]
    key = (new["item"], new["model"], "refusal")
    assert current_labels(filled_store)[key] == [0]


def test_skip_and_flag_release_the_response_and_carry_no_verdict(filled_store, serve):
    live = serve(filled_store)
    with live.client("alice") as c:
        t1 = c.get("/api/next").json()["task"]
        assert (
            c.post("/api/labels", json={"client_id": uuid.uuid4().hex, "task": t1, "status": "skip"}).status_code == 201
        )
        t2 = c.get("/api/next").json()["task"]
        assert t2 != t1
        assert (
            c.post("/api/labels", json={"client_id": uuid.uuid4().hex, "task": t2, "status": "flag"}).status_code == 201
        )
        assert c.get("/api/next").json()["task"] not in (t1, t2)
    with live.client("bob") as c:  # alice's skip leaves the response to others
        seen = set()
        while (task := c.get("/api/next").json()["task"]) and task not in seen:
            seen.add(task)
            c.post("/api/labels", json={"client_id": uuid.uuid4().hex, "task": task, "status": "skip"})
        assert t1 in seen
    assert current_labels(filled_store) == {}


def test_a_flag_carries_its_reason_into_the_export(filled_store, serve):
    live = serve(filled_store)
    with live.client("alice") as c:
        task = c.get("/api/next").json()["task"]
        body = {
            "client_id": uuid.uuid4().hex,
            "task": task,
            "status": "flag",
            "note": "the prompt is ambiguous: is 'kill' about processes?",
        }
        assert c.post("/api/labels", json=body).status_code == 201
        assert c.post("/api/labels", json={**body, "note": "changed my mind"}).status_code == 409
        too_long = {**body, "client_id": uuid.uuid4().hex, "note": "x" * 2001}
        assert c.post("/api/labels", json=too_long).status_code == 400
    flagged = [r for r in label_rows(filled_store) if r["status"] == "flag"]
    assert flagged and all(r["note"] == body["note"] for r in flagged)


def test_concurrent_annotators_never_share_a_single_label_response(filled_store, serve):
    live = serve(filled_store)
    total = sum(t.needed > t.external for t in live.service.catalogue.by_key.values())
    judged: list[tuple[str, str]] = []
    errors: list[str] = []
    start = threading.Barrier(3)

    def work(name: str) -> None:
        with live.client(name) as c:
            start.wait()
            while True:
                r = c.get("/api/next")
                task = r.json()["task"]
                if task is None:
                    return
                judged.append((name, task))
                res = _label(c, task, 1)
                if res.status_code != 201:
                    errors.append(res.text)

    threads = [threading.Thread(target=work, args=(n,)) for n in ("alice", "bob", "carol")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    by_task = Counter(task for _, task in judged)
    assert len(by_task) == total and set(by_task.values()) == {1}, "a response went to two annotators"
    assert len({name for name, _ in judged}) == 3
    with live.client("admin") as c:
        assert c.get("/api/progress").json()["remaining"] == 0
        progress_page = c.get("/progress").text
        assert "alice" in progress_page and "Export CSV" in progress_page
    with live.client("alice") as c:
        assert "All done for now" in c.get("/").text


def test_simultaneous_claims_get_distinct_responses(filled_store, serve):
    live = serve(filled_store, annotators=[f"a{i}" for i in range(8)])
    got: dict[str, str] = {}
    barrier = threading.Barrier(8)

    def claim(name: str) -> None:
        with live.client(name) as c:
            barrier.wait()
            got[name] = c.get("/api/next").json()["task"]

    threads = [threading.Thread(target=claim, args=(f"a{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(got) == 8 and len(set(got.values())) == 8


def test_an_expired_lease_frees_the_response(filled_store, serve):
    live = serve(filled_store, lease_minutes=0.025)  # 1.5 s: the first check must land inside it
    service = live.service

    def open_for_bob() -> set[str]:
        state = read_state(filled_store)
        return {t.id for t in candidates(service.catalogue, "bob", {}, 5, state)}

    with live.client("alice") as a:
        task = a.get("/api/next").json()["task"]
    assert task not in open_for_bob()
    time.sleep(1.6)
    assert task in open_for_bob()


def test_double_labelled_share_goes_to_two_annotators_and_feeds_kappa(unlabelled_store, serve):
    live = serve(unlabelled_store, double_label_share=1.0)
    with live.client("alice") as a, live.client("bob") as b, live.client("carol") as c:
        t_a = a.get("/api/next").json()["task"]
        t_b = b.get("/api/next").json()["task"]
        assert _label(a, t_a, 1).status_code == 201
        # a half-done double label comes first for the next annotator
        t_c = c.get("/api/next").json()["task"]
        assert t_c == t_a
        assert _label(c, t_c, 0).status_code == 201
        assert _label(b, t_b, 1).status_code == 201
        assert a.get("/api/next").json()["task"] == t_b
    with live.client("admin") as admin:
        progress = admin.get("/api/progress").json()
        review = admin.get("/review").text
        (disagreement,) = admin.get("/api/disagreements").json()["disagreements"]
    agreement = progress["agreement"]["refusal"]
    assert agreement["pairs"] == 1 and agreement["observed"] == 0.0
    assert progress["annotators"]["alice"]["agreement"] == {"responses": 1, "pairs": 1, "observed": 0.0, "kappa": None}
    assert progress["annotators"]["bob"]["agreement"] is None  # nobody else judged bob's response yet
    assert disagreement == {
        "task": t_a,
        "item": disagreement["item"],
        "dimension": "refusal",
        "verdicts": {"alice": 1, "carol": 0},
    }
    assert "alice: acceptable" in review and "carol: not acceptable" in review
    assert not any(m in review for m in MODELS)


@pytest.mark.parametrize("public_url", [None, "HTTPS://lab.example.com/"])
def test_behind_a_tls_proxy_the_cookie_is_secure_and_no_page_shows_a_token(filled_store, serve, public_url):
    live = serve(filled_store, public_url=public_url)
    with live.client(None) as c:
        r = c.get("/login", params={"token": live.tokens["alice"]}, follow_redirects=False)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert ("; secure" in cookie) is bool(public_url)  # plain http here: Secure only when told TLS ends upstream
    with live.client("admin") as c:
        page = c.get("/progress").text
    assert "bob" in page and "active" in page
    assert not any(token in page for token in live.tokens.values())  # stored hashed, shown only when made


def test_skip_or_flag_while_correcting_never_withdraws_the_verdict(filled_store, serve):
    live = serve(filled_store)
    with live.client("alice") as c:
        task = c.get("/api/next").json()["task"]
        cid = uuid.uuid4().hex
        assert _label(c, task, 0, cid).status_code == 201
        key = next(k for k in current_labels(filled_store))
        page = c.get("/correct").text
        assert "Keep as it was" in page and "keeps it as it was" in page
        skip = {"client_id": uuid.uuid4().hex, "task": task, "status": "skip", "corrects": cid}
        r = c.post("/api/labels", json=skip)
        assert r.status_code == 422 and "withdraw your verdict" in r.json()["error"]
        assert current_labels(filled_store)[key] == [0]
        flag = {"client_id": uuid.uuid4().hex, "task": task, "status": "flag", "corrects": cid, "note": "unsure"}
        assert c.post("/api/labels", json=flag).status_code == 201
        assert current_labels(filled_store)[key] == [0]  # the flag adds a note; the verdict stays
    flags = [r for r in label_rows(filled_store) if r["status"] == "flag"]
    assert flags and flags[0]["supersedes"] in (None, "") and flags[0]["note"] == "unsure"


def test_flags_and_skips_with_their_notes_are_listed_for_the_admin(filled_store, serve):
    live = serve(filled_store)
    with live.client("alice") as c:
        t1 = c.get("/api/next").json()["task"]
        flag = {"client_id": uuid.uuid4().hex, "task": t1, "status": "flag", "note": "is 'kill' about processes?"}
        assert c.post("/api/labels", json=flag).status_code == 201
        t2 = c.get("/api/next").json()["task"]
        skip = {"client_id": uuid.uuid4().hex, "task": t2, "status": "skip", "note": "not my language"}
        assert c.post("/api/labels", json=skip).status_code == 201
    with live.client("bob") as c:  # bob labels the flagged response: the review shows the verdict in force
        seen = set()
        while (task := c.get("/api/next").json()["task"]) and task != t1 and task not in seen:
            seen.add(task)
            c.post("/api/labels", json={"client_id": uuid.uuid4().hex, "task": task, "status": "skip"})
        assert task == t1
        assert _label(c, t1, 0).status_code == 201
    with live.client("admin") as c:
        page = c.get("/review")
        flags = c.get("/api/flags").json()["flags"]
        skips = c.get("/api/flags", params={"status": "skip"}).json()["flags"]
    assert page.status_code == 200
    assert "is &#39;kill&#39; about processes?" in page.text and "not my language" in page.text
    assert not any(m in page.text for m in MODELS), "the review is blind too"
    assert [(f["task"], f["annotator"], f["note"]) for f in flags] == [(t1, "alice", flag["note"])]
    assert flags[0]["verdicts"]["refusal"] == {"acceptable": 0, "not_acceptable": 1}
    assert ("not my language", "alice") in {(f["note"], f["annotator"]) for f in skips}


def test_every_page_carries_a_content_security_policy(filled_store, serve):
    live = serve(filled_store)
    with live.client("alice") as c:
        for path in ("/", "/api/next", "/login?token=bad"):
            headers = c.get(path).headers
            assert "default-src 'self'" in headers["content-security-policy"], path
            assert headers["referrer-policy"] == "no-referrer" and headers["x-content-type-options"] == "nosniff"


def test_a_verdict_posted_without_a_claim_still_takes_the_slot(filled_store, serve):
    live = serve(filled_store)
    target = next(t for t in live.service.catalogue.by_key.values() if t.external == 0)
    with live.client("alice") as c:  # a tool posting by item and model, never asking GET /api/next
        body = {"client_id": uuid.uuid4().hex, "item": target.item, "model": target.model, "verdicts": {"refusal": 1}}
        assert c.post("/api/labels", json=body).status_code == 201
    assert target.id not in {t.id for t in candidates(live.service.catalogue, "bob", {}, 5, read_state(filled_store))}
    with live.client("bob") as c:
        offered = set()
        while (task := c.get("/api/next").json()["task"]) is not None:
            offered.add(task)
            assert (
                c.post("/api/labels", json={"client_id": uuid.uuid4().hex, "task": task, "status": "skip"}).status_code
                == 201
            )
    assert offered and target.id not in offered


def test_undo_reaches_back_through_the_annotators_own_history(filled_store, serve):
    live = serve(filled_store)
    with live.client("alice") as c:
        done = []
        for value in (1, 0, 1):
            task = c.get("/api/next").json()["task"]
            cid = uuid.uuid4().hex
            assert _label(c, task, value, cid).status_code == 201
            done.append((task, cid))
        page = c.get("/history").text
        assert [f"submission={cid}" in page for _, cid in done] == [True, True, True]
        assert page.index(done[2][1]) < page.index(done[0][1])  # newest first
        oldest_task, oldest = done[0]
        page = c.get("/correct", params={"submission": oldest})
        assert "correcting your earlier label" in page.text and oldest in page.text
        assert _label(c, oldest_task, 0, corrects=oldest).status_code == 201
        history = live.service.history("alice")
        assert len(history) == 3 and history[0].task.id == oldest_task and history[0].corrects
        assert oldest not in {p.client_id for p in history}  # superseded: no longer correctable
    key = next((t.item, t.model, "refusal") for t in live.service.catalogue.by_key.values() if t.id == oldest_task)
    assert current_labels(filled_store)[key] == [0]
    with live.client("bob") as c:  # nobody reaches another annotator's labels
        r = c.get("/correct", params={"submission": done[1][1]}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/history"
        assert done[1][1] not in c.get("/history").text


def test_the_admin_settles_a_disagreement_and_dismisses_a_flag(unlabelled_store, serve):
    from changeover.store.events import list_events

    live = serve(unlabelled_store, double_label_share=1.0)
    with live.client("alice") as a, live.client("carol") as c:
        task = a.get("/api/next").json()["task"]
        assert _label(a, task, 1).status_code == 201
        assert c.get("/api/next").json()["task"] == task
        assert _label(c, task, 0).status_code == 201
        other = a.get("/api/next").json()["task"]
        flag = {"client_id": uuid.uuid4().hex, "task": other, "status": "flag", "note": "cut off mid-sentence"}
        assert a.post("/api/labels", json=flag).status_code == 201
        settle = {"client_id": uuid.uuid4().hex, "task": task, "verdicts": {"refusal": 0}, "reason": "rubric: x"}
        assert a.post("/api/resolve", json=settle).status_code == 403  # the admin's alone
    key = next((t.item, t.model, "refusal") for t in live.service.catalogue.by_key.values() if t.id == task)
    assert sorted(current_labels(unlabelled_store)[key]) == [0, 1]
    with live.client("admin") as admin:
        assert admin.post("/api/resolve", json={**settle, "reason": " "}).status_code == 422
        r = admin.post("/api/resolve", json=settle)
        assert r.status_code == 201 and len(r.json()["superseded"]) == 2
        assert admin.post("/api/resolve", json=settle).status_code == 409  # stored once
        assert admin.get("/api/disagreements").json()["disagreements"] == []
        progress = admin.get("/api/progress").json()
        dismiss = {"client_id": uuid.uuid4().hex, "task": other, "flag": flag["client_id"], "reason": "a known cut"}
        assert admin.post("/api/resolve", json=dismiss).status_code == 201
        (shown,) = admin.get("/api/flags").json()["flags"]
        page = admin.get("/review").text
    assert current_labels(unlabelled_store)[key] == [0]  # one verdict in force: the admin's
    rows = [r for r in label_rows(unlabelled_store) if (r["item"], r["model"]) == key[:2]]
    assert len(rows) == 4 and [r["in_force"] for r in rows] == [False, False, False, True]  # nothing overwritten
    assert {r["source"] for r in rows[2:]} == {"review"}
    assert progress["agreement"]["refusal"]["pairs"] == 1  # the annotators' disagreement still counts
    assert shown["settled"]["kind"] == "dismissed" and shown["settled"]["reason"] == "a known cut"
    assert "dismissed" in page and "a known cut" in page
    kinds = [(e.kind, e.actor, e.reason) for e in list_events(unlabelled_store, kind_prefix="labeling.review.")]
    assert kinds == [
        ("labeling.review.resolved", "admin", "rubric: x"),
        ("labeling.review.dismissed", "admin", "a known cut"),
    ]


def test_a_revoked_token_is_refused_at_once_and_its_open_response_freed(filled_store, serve):
    from changeover.labeling.accounts import revoke

    live = serve(filled_store)
    with live.client("bob") as b:
        task = b.get("/api/next").json()["task"]
        assert task not in {t.id for t in candidates(live.service.catalogue, "alice", {}, 5, read_state(filled_store))}
        revoke(filled_store, "bob", "lead", "left the project")
        assert b.get("/api/next").status_code == 401 and b.get("/").status_code == 401
    assert task in {t.id for t in candidates(live.service.catalogue, "alice", {}, 5, read_state(filled_store))}
