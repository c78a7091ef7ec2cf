"""Spend only what the decision needs: a settled request type is mirrored at the keep-alive rate.

A real gateway on loopback, the fake upstream as incumbent and candidate, the
refusal check as the judge. Type ``faq`` gets enough judged pairs and labels for
the calibrated decision to settle (the candidate answers as the incumbent does):
its mirror rate falls to keep-alive (an event), while ``billing`` (a few
unlabelled pairs) keeps the full rate. The shadow report's USD saved equals the
requests left unmirrored times the cost per mirrored request, both counted here
from the shadow log. Then the candidate starts refusing ``faq`` questions: the
new judged pairs unsettle the decision and the rate rises again (an event).
"""

from __future__ import annotations

import json

import httpx
import pytest
import yaml
from tests.gateway.helpers import chat, write_spec
from tests.gateway.test_gateway import wait_for

from changeover.assessment import ConvergenceWarning
from changeover.cli import run
from changeover.config import load_spec
from changeover.errors import SpecError
from changeover.labeling.importing import import_labels
from changeover.records import Record
from changeover.shadow.config import load_settings
from changeover.shadow.keepalive import KeepAlive, TypeCall, assess_type
from changeover.shadowlog.answers import load_answers
from changeover.store.events import list_events

ANSWER = "Paris is the capital of France."
REFUSAL = "I'm sorry, I cannot help with that."
KEEP_ALIVE = 0.1
PRICE_IN, PRICE_OUT = 0.5, 1.5  # the candidate's USD per million tokens (tests.gateway.helpers.write_spec)


def number(body: dict) -> int:
    return int(body["messages"][-1]["content"].rsplit("#", 1)[1])


def incumbent_reply(body: dict) -> str:
    """Every fifth question refused, the rest answered: both models fail sometimes (a fit that converges)."""
    return REFUSAL if number(body) % 5 == 0 else ANSWER


class Candidate:
    """Answers as the incumbent does, until ``worse``: then refuses everything."""

    def __init__(self) -> None:
        self.worse = False

    def __call__(self, body: dict) -> str:
        return REFUSAL if self.worse else incumbent_reply(body)


def keep_alive_spec(tmp_path, fake, **keep_alive):
    path = write_spec(tmp_path / "migration.yaml", fake.base_url)
    raw = yaml.safe_load(path.read_text())
    raw["dimensions"] = {"answered": {"margin": 0.1}}
    raw["judges"] = {"answered": {"kind": "refusal_phrases"}}
    raw["shadow"]["judge"] = {"requests_per_minute": 100000, "resume": 0}
    raw["shadow"]["keep_alive"] = {"rate": KEEP_ALIVE, "interval": 0.2, "draws": 600, "warmup": 300, **keep_alive}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


class Traffic:
    """Requests of one type through the gateway; their request ids kept."""

    def __init__(self, gw) -> None:
        self.gw = gw
        self.sent: dict[str, list[str]] = {}
        self.n = 0

    def send(self, request_type: str, count: int) -> None:
        with httpx.Client(base_url=self.gw.url, timeout=10) as client:
            for _ in range(count):
                self.n += 1
                r = client.post(
                    "/v1/chat/completions",
                    json=chat(f"What is the capital of France? #{self.n}"),
                    headers={"x-changeover-request-type": request_type},
                )
                assert r.status_code == 200
                self.sent.setdefault(request_type, []).append(r.headers["x-changeover-request-id"])

    def settle(self) -> None:
        """Every mirror sent and judged, every answer logged, then one whole keep-alive pass after that."""
        service = self.gw.service
        mirror = service.gateway.mirror
        wait_for(lambda: mirror.queue.qsize() == 0 and sum(mirror.sent.values()) == sum(mirror.mirrored.values()), 30)
        assert service.judge.wait_idle(30)
        wait_for(lambda: service.writer.queue.qsize() == 0, 30)
        checks = service.keep_alive.checks
        assert service.keep_alive.wait_checks(checks + 2, 120)


def events(store):
    return list_events(store, kind_prefix="shadow.keep_alive")


def test_a_settled_request_type_drops_to_keep_alive_and_rises_again(tmp_path, fake, serve, gw_store, sqlite_url):
    candidate = Candidate()
    fake.set("old", reply=incumbent_reply)
    fake.set("new", reply=candidate)
    spec = keep_alive_spec(tmp_path, fake)
    gw = serve(spec)
    keep = gw.service.keep_alive
    mirror = gw.service.gateway.mirror
    traffic = Traffic(gw)

    # judged pairs of both types, no labels yet: the decision asks for labels, nothing is settled
    traffic.send("faq", 40)
    traffic.send("billing", 6)
    traffic.settle()
    assert events(gw_store) == [] and keep.rate("faq") == keep.rate("billing") == 1.0
    assert keep.last["faq"].pairs == 40 and not keep.last["faq"].settled

    # labels agreeing with the judge on 20 faq pairs: the calibrated decision on faq settles (non-inferior)
    labels = tmp_path / "labels.csv"
    rows = [
        (rid, m, 0 if i % 5 == 0 else 1) for i, rid in enumerate(traffic.sent["faq"][:20], 1) for m in ("old", "new")
    ]
    labels.write_text("item,model,labels.answered\n" + "".join(f"{r},{m},{v}\n" for r, m, v in rows))
    assert import_labels(gw_store, labels, annotator="ana").added == 40
    (settled,) = wait_for(lambda: events(gw_store), 120)
    assert settled.kind == "shadow.keep_alive.settled" and settled.actor == "gateway keep-alive"
    assert settled.payload["request_type"] == "faq" and settled.payload["rate"] == KEEP_ALIVE
    call = settled.payload["candidates"]["new"]["answered"]
    assert call["call"] in ("non-inferior", "superior") and call["converged"] and not call["borderline"]
    assert call["p_noninferior"] >= 0.95 and "settled on 40 judged pairs" in settled.reason
    assert keep.rate("faq") == KEEP_ALIVE and keep.rate("billing") == 1.0

    # the mirrored share of faq falls (the mirror's own counters); billing keeps the full rate
    before = {t: (mirror.considered[t], mirror.mirrored[t]) for t in ("faq", "billing")}
    traffic.send("faq", 100)
    traffic.send("billing", 20)
    traffic.settle()
    share = {t: (mirror.mirrored[t] - before[t][1]) / (mirror.considered[t] - before[t][0]) for t in ("faq", "billing")}
    assert share["billing"] == 1.0 and share["faq"] < 0.3  # 0.1 expected: P(> 0.3 of 100) < 1e-8
    metrics = httpx.get(gw.url + "/metrics").text
    assert 'changeover_mirror_rate{request_type="faq"} 0.1' in metrics
    assert 'changeover_mirror_rate{request_type="billing"} 1' in metrics
    assert 'changeover_mirror_settled{request_type="faq"} 1' in metrics

    # the USD saved: faq requests not mirrored x the cost of a mirrored faq request, both from the shadow log
    answers = load_answers(gw_store, models=["old", "new"])
    mirrored = [a for a in answers if a.model == "new" and a.role == "mirror" and a.request_type == "faq"]
    not_mirrored = len(set(traffic.sent["faq"]) - {a.request_id for a in mirrored})
    assert not_mirrored == (mirror.considered["faq"] - mirror.mirrored["faq"]) > 50
    per_request = sum(a.tokens_in * PRICE_IN + a.tokens_out * PRICE_OUT for a in mirrored) / 1e6 / len(mirrored)
    report = tmp_path / "shadow.json"
    assert run(["shadow", "report", "--spec", str(spec), "--db", sqlite_url, "--json", str(report)]) == 0
    by_type = {r["request_type"]: r["keep_alive"] for r in json.loads(report.read_text())["rows"]}
    faq = by_type["faq"]
    assert faq["settled"] and faq["rate"] == KEEP_ALIVE and faq["configured_rate"] == 1.0
    assert faq["requests_not_mirrored"] == not_mirrored
    assert faq["usd_saved"] == pytest.approx(not_mirrored * per_request, rel=1e-9) and faq["usd_saved"] > 0
    assert by_type["billing"]["settled"] is False and by_type["billing"]["usd_saved"] == 0.0
    assert by_type["all"]["usd_saved"] == pytest.approx(faq["usd_saved"])
    # the report's shadow section carries the same keep-alive rows as the shadow report
    out = tmp_path / "report.json"
    argv = ["report", "--spec", str(spec), "--db", sqlite_url, "--out", str(tmp_path / "r.html"), "--json", str(out)]
    assert run([*argv, "--draws", "300"]) in (0, 1, 3)
    section = json.loads(out.read_text())["report"]["shadow"]
    assert {d["request_type"]: d["keep_alive"] for d in section["disagreements"]} == by_type
    assert "USD saved against mirroring at the configured rate" in (tmp_path / "r.html").read_text()

    # the candidate starts refusing faq questions: new judged pairs unsettle the decision, the rate rises again
    candidate.worse = True
    for _ in range(20):
        traffic.send("faq", 20)
        traffic.settle()
        if len(events(gw_store)) > 1:
            break
    settled_again, unsettled = events(gw_store)
    assert settled_again.id == settled.id and unsettled.kind == "shadow.keep_alive.unsettled"
    assert unsettled.payload["request_type"] == "faq" and unsettled.payload["rate"] == 1.0
    assert unsettled.payload["candidates"]["new"]["answered"]["call"] == "inconclusive"
    assert keep.rate("faq") == 1.0 and keep.rate("billing") == 1.0
    assert 'changeover_mirror_rate{request_type="faq"} 1' in httpx.get(gw.url + "/metrics").text


def test_keep_alive_config_is_strict(tmp_path, fake):
    spec = keep_alive_spec(tmp_path, fake)
    assert load_settings(load_spec(spec)).shadow.keep_alive.rate == KEEP_ALIVE
    raw = yaml.safe_load(spec.read_text())
    raw["shadow"]["keep_alive"] = 0.02  # the shorthand: a number is the rate
    spec.write_text(yaml.safe_dump(raw))
    assert load_settings(load_spec(spec)).shadow.keep_alive.rate == 0.02
    raw["shadow"]["keep_alive"] = {"rate": 0.02, "intervall": "5m"}
    spec.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match="intervall"):
        load_settings(load_spec(spec))
    raw["shadow"]["keep_alive"] = 0.02
    del raw["shadow"]["judge"]
    spec.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match="shadow.keep_alive' needs 'shadow.judge'"):
        load_settings(load_spec(spec))


def judged_records(pairs: int, labelled: int) -> list[Record]:
    """Judged ``faq`` pairs as the judging worker stores them: both models refuse every fifth question."""
    out = []
    for i in range(1, pairs + 1):
        for model in ("old", "new"):
            value = 0 if i % 5 == 0 else 1
            rec = Record(item=f"r{i}", model=model, segment={"request_type": "faq"}, signals={"answered": value})
            if i <= labelled:
                rec.labels["answered"] = [value]
            out.append(rec)
    return out


def test_an_unconverged_fit_never_settles_a_type(tmp_path, fake):
    spec = load_spec(keep_alive_spec(tmp_path, fake))
    records = judged_records(40, 20)
    converged = assess_type(spec, records, "faq", ["new"], draws=600, warmup=300)
    assert converged.settled and converged.calls["new"]["answered"]["call"] == "non-inferior"
    # the same records sampled far too briefly (the policy's longest round still short of ESS 400): not settled
    with pytest.warns(ConvergenceWarning, match="not converged"):
        short = assess_type(spec, records, "faq", ["new"], draws=20, warmup=20)
    assert short.calls["new"]["answered"]["converged"] is False and not short.settled
    assert short.calls["new"]["answered"]["call"] == "inconclusive" and "not converged" in short.reason
    assert not assess_type(spec, [r for r in records if r.model == "old"], "faq", ["new"], 600, 300).settled


def test_a_restarted_gateway_keeps_a_settled_types_rate(tmp_path, fake, gw_store):
    spec = load_spec(keep_alive_spec(tmp_path, fake))
    settings = load_settings(spec)
    first = KeepAlive(spec, gw_store, settings)
    first._apply(TypeCall("faq", True, 40, {}, "settled for the test"))
    again = KeepAlive(spec, gw_store, settings)
    assert again.rate("faq") == 1.0  # before reading the events
    again.load()
    assert again.rate("faq") == KEEP_ALIVE and again.rate("billing") == 1.0
    again._apply(TypeCall("faq", False, 41, {}, "unsettled for the test"))
    third = KeepAlive(spec, gw_store, settings)
    third.load()
    assert third.rate("faq") == 1.0
    # a replica that had not read the events reaches the recorded state: it takes it, no second event
    replica = KeepAlive(spec, gw_store, settings)
    replica.state["faq"] = first.state["faq"]
    replica._apply(TypeCall("faq", False, 41, {}, "unsettled for the test"))
    assert replica.rate("faq") == 1.0
    assert [e.kind for e in events(gw_store)] == ["shadow.keep_alive.settled", "shadow.keep_alive.unsettled"]
