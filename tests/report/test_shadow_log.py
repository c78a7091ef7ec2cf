"""The report's shadow section reads the gateway's shadow log, on SQLite and on a real PostgreSQL.

A week of mirrored traffic is written through the gateway's own writer (``LogWriter`` +
``RowMaker``: parsing, tokens, cost, errors as the gateway logs them), the real judging worker
judges it on start-up (the fake OpenAI server is the comparison judge, over loopback HTTP), then
``changeover report --spec S --db URL`` and ``changeover shadow report --json`` run on the same
store: each number of the section must be the shadow report's, the source and the period named,
the examples escaped.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from tests.gateway.exchanges import exchange
from tests.gateway.helpers import write_spec
from tests.gateway.test_gateway import wait_for
from tests.gateway.test_pairwise import CANDIDATE, SAME, judge_reply, pairwise_spec
from tests.support.fake_openai import FakeOpenAI

from changeover.cli import run
from changeover.config import load_spec
from changeover.providers.deprecation import DeprecationNotice
from changeover.report.build import build_report
from changeover.report.shadow import RECORDS, SHADOW_LOG
from changeover.shadow.config import load_settings
from changeover.shadow.exchange import Exchange
from changeover.shadow.judging import JudgeWorker
from changeover.shadow.rows import RowMaker
from changeover.shadow.writer import LogWriter
from changeover.shadowlog.answers import load_answers, pairs
from changeover.shadowlog.export import pair_records
from changeover.store import open_store
from changeover.store.events import now
from changeover.store.responses import add_records

N = 24  # requests, one every 7 hours: a week, every weekday
STEP = timedelta(hours=7)
MARKUP = "<script>alert('x')</script> & <b>bold</b>"  # in every request: must reach the page escaped
TIMEOUT, MALFORMED, STREAMED = 7, 9, 8  # the candidate timed out / answered garbage; the incumbent streamed


def _question(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"What is the capital of France? {MARKUP} #{i}"}]}


def _streamed(ex: Exchange, text: str) -> Exchange:
    """The same answer streamed by an upstream that sent no usage chunk (tokens estimated)."""
    chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}]}
    ex.stream, ex.body = True, f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
    return ex


def write_week(store, spec, start) -> None:
    """N mirrored pairs over a week: the candidate's answer of each comparison class, one timeout,
    one malformed answer, one incumbent answer streamed without usage."""
    rows = RowMaker(load_settings(spec).gateway.upstreams, set(spec.candidates))
    writer = LogWriter(store, rows, flush_interval=0.01).start()
    for i in range(N):
        at, kind, q = start + i * STEP, ("billing", "chitchat")[i % 2], _question(i)
        served = exchange(f"r{i:02d}", "old", text=SAME, latency=100.0 + i, request_type=kind, at=at, payload=q)
        writer.submit(_streamed(served, SAME) if i == STREAMED else served)
        cand = exchange(
            f"r{i:02d}",
            "new",
            "mirror",
            text=CANDIDATE[i % 6][0],
            latency=200.0 + 3 * i,
            request_type=kind,
            at=at,
            payload=q,
            error="timeout" if i == TIMEOUT else None,
        )
        if i == MALFORMED:
            cand.body = b'{"choices": "not a completion"'
        writer.submit(cand)
    writer.close()
    assert writer.written == 2 * N


@pytest.fixture
def judged_week(tmp_path, store_url):
    """A store holding a week of shadow log, judged by the real worker (resumed at its start)."""
    with FakeOpenAI() as fake:
        fake.set("judge", reply=judge_reply)
        spec_path = pairwise_spec(tmp_path, fake, resume=14 * 86400)
        spec = load_spec(spec_path)
        store = open_store(store_url)
        start = (now() - timedelta(days=7)).replace(minute=30, second=0, microsecond=0)
        write_week(store, spec, start)
        settings = load_settings(spec)
        rows = RowMaker(settings.gateway.upstreams, set(spec.candidates))
        worker = JudgeWorker.for_spec(spec, store, settings.shadow.judge, rows).start()
        try:
            wait_for(lambda: worker.resumed == N, timeout=30)
            assert worker.wait_idle(60)
        finally:
            worker.close()
        assert worker.judged == N and worker.errors == 0
        yield spec_path, store, start
        store.dispose()


def _cli_json(tmp_path, spec_path, store_url) -> tuple[dict, dict, str]:
    html, rjson, sjson = tmp_path / "report.html", tmp_path / "report.json", tmp_path / "shadow.json"
    argv = ["report", "--spec", str(spec_path), "--db", store_url, "--out", str(html), "--json", str(rjson)]
    argv += ["--markdown", str(tmp_path / "summary.md")]
    assert run([*argv, "--seed", "3", "--draws", "300"]) in (0, 1, 3)
    shadow = ["shadow", "report", "--spec", str(spec_path), "--db", store_url, "--since", "30d", "--json", str(sjson)]
    assert run([*shadow, "--examples", "6"]) == 0
    return json.loads(rjson.read_text())["report"]["shadow"], json.loads(sjson.read_text()), html.read_text()


def test_the_section_shows_the_shadow_report_numbers_period_and_escaped_examples(tmp_path, judged_week, store_url):
    spec_path, store, start = judged_week
    section, shadow, html = _cli_json(tmp_path, spec_path, store_url)
    (row,) = [r for r in shadow["rows"] if r["request_type"] == "all" and r["candidate"] == "new"]

    assert section["source"] == SHADOW_LOG and section["store"] == store.display_url
    models = {m["model"]: m for m in section["models"]}
    for model, stats in (("old", row["incumbent_stats"]), ("new", row["candidate_stats"])):
        m = models[model]
        assert m["responses"] == stats["answers"] == N
        assert m["percentiles"] == [stats["latency_ms"][q] for q in ("p50", "p95", "p99")]
        assert m["tokens_in"] == pytest.approx(stats["tokens_in_per_1k"] / 1000)
        assert m["tokens_out"] == pytest.approx(stats["tokens_out_per_1k"] / 1000)
        for key, theirs in [
            ("cost_per_1k", "cost_usd_per_1k"),
            ("error_rate", "error_rate"),
            ("refusal_rate", "refusal_rate"),
            ("malformed_rate", "malformed_rate"),
            ("timeout_rate", "timeout_rate"),
            ("tokens_estimated_rate", "tokens_estimated_rate"),
        ]:
            assert m[key] == stats[theirs], key
        assert (m["deprecated_answers"], m["earliest_sunset"]) == tuple(stats["deprecations"].values())
    # known by construction, so the shared numbers are not merely equal but right
    assert models["new"]["error_rate"] == 2 / N and models["new"]["timeout_rate"] == 1 / N
    assert models["old"]["tokens_estimated_rate"] == 1 / N and not models["new"]["tokens_estimated_rate"]
    assert models["old"]["percentiles"][0] == pytest.approx(100 + (N - 1) / 2)
    assert models["old"]["cost_per_1k"] > 5 * models["new"]["cost_per_1k"] > 0  # the spec's prices: 10x apart

    by_type = {(x["candidate"], x["request_type"]): x for x in section["disagreements"]}
    assert list(by_type) == [("new", "all"), ("new", "billing"), ("new", "chitchat")]
    for r in shadow["rows"]:  # each request type's row too, as the shadow report's
        x = by_type[(r["candidate"], r["request_type"])]
        assert (x["pairs"], x["equivalence_rate"], x["rule"]) == (r["pairs"], r["equivalence_rate"], r["disagreements"])
        assert x["classes"] == r["comparison"]["classes"] and x["failed"] == r["comparison"]["failed"]
    d = by_type[("new", "all")]
    c = row["comparison"]
    assert (d["pairs"], d["equivalence_rate"], d["rule"], d["format_drift"]) == (
        row["pairs"],
        row["equivalence_rate"],
        row["disagreements"],
        row["format_drift_rate"],
    )
    assert d["judged_pairs"] == row["judged"]["pairs"] == N and d["signals"] == row["judged"]["signals"]
    assert d["signals"]["agreement"]["candidate"] == 11 / 18  # the comparison's signal: equivalent or better
    assert (d["judge"], d["classes"], d["failed"], d["prefiltered"]) == (
        "agreement",
        c["classes"],
        c["failed"],
        c["prefiltered"],
    )
    # 24 pairs, 4 of each CANDIDATE class; the timed-out and the malformed answers (classes 1 and 3) not compared
    assert c["classes"] == {"equivalent": 7, "better": 4, "worse": 3, "different": 4}
    assert c["failed"] == 4 and c["prefiltered"] == 4
    assert d["equivalent_or_better"] == c["equivalent_or_better"] == 11 / 18

    period, cov = section["period"], row["coverage"]
    assert {k: period[k] for k in cov} == cov
    assert period["days"] == pytest.approx((N - 1) * 7 / 24) and len(period["weekdays"]) == 7
    assert sum(map(sum, period["grid"])) == N == period["pairs"]
    assert sum(bool(n) for day in period["grid"] for n in day) == cov["week_hours"] == N

    # the page says where the numbers come from and which period they cover
    text = " ".join(unescape(re.sub(r"<[^>]+>", "", html)).split())  # what a reader sees
    assert "gateway shadow log" in text and store.display_url in text
    assert f"Period: {cov['first'][:16].replace('T', ' ')} to {cov['last'][:16].replace('T', ' ')} UTC" in text
    assert "(6.7 days, 24 mirrored requests), weekdays Mon, Tue, Wed, Thu, Fri, Sat, Sun, 24 of the week's 168" in text
    assert html.count('class="on"') == N
    assert "7 / 4 / 3 / 4" in html and "61.1%" in html  # the judge's classes, equivalent or better
    assert "judge 'agreement' passes: new (old)" in text
    assert 'all requests</th><th class="num">billing</th><th class="num">chitchat</th>' in html
    assert f"{row['candidate_stats']['cost_usd_per_1k']:.4f}" in html  # a small cost keeps its digits
    assert "gave no usage" in text and "4.2% of the answers" in text  # the estimated tokens marked

    # examples: the judge's picks, worse first, the full texts, the markup escaped
    kinds = [e["kind"] for e in section["examples"]]
    assert kinds[:4] == ["worse", "different", "better", "failed"] and len(kinds) == 6
    worse = section["examples"][0]
    assert worse["item"] == c["examples"]["worse"][0]["request_id"]
    assert worse["candidate"] == ["new", CANDIDATE[3][0]] and worse["incumbent"] == ["old", SAME]
    assert "by the judge 'agreement'" in worse["why"] and MARKUP in worse["prompt"]
    assert "<script>" not in html and "&lt;script&gt;alert(" in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert 'data-kind="worse"' in html

    # the pull-request summary carries the period and the judge's classes in a line each
    md = (tmp_path / "summary.md").read_text()
    assert "Shadow traffic: 24 mirrored pairs over 6.7 days (Mon, Tue, Wed, Thu, Fri, Sat, Sun; 24 of the week's" in md
    assert "- new: 24 pairs judged by agreement: 7 equivalent, 4 better, 3 worse, 4 different." in md


def test_without_a_judge_the_rule_classes_and_the_records_fallback(tmp_path, store, spec, assessment, records):
    """No comparison classes stored: the rule's classes with examples; no shadow log: the records, named."""
    plain = load_spec(write_spec(tmp_path / "migration.yaml", "http://127.0.0.1:9/v1"))  # never called
    write_week(store, plain, now() - timedelta(days=2))
    from changeover.report.shadowlog import shadow_log_stats
    from changeover.shadow.report import build_report as shadow_report

    stats = shadow_log_stats(store, plain, max_examples=4)
    (row,) = [r for r in shadow_report(store, "old", ["new"]).rows if r["request_type"] == "all"]
    d = stats.disagreements[0]
    assert d.request_type == "all" and d.judge is None and d.classes is None and d.rule == row["disagreements"]
    assert row["disagreements"]["worse"] == 2  # the timeout and the malformed answer
    kinds = [e.kind for e in stats.examples]
    assert kinds[:2] == ["worse", "different"] and "better" not in kinds
    assert stats.examples[0].candidate[1].startswith("[no answer: ")
    assert all(e.why.endswith("anything else different") for e in stats.examples)

    empty = open_store(f"sqlite:///{tmp_path / 'empty.db'}")
    report = build_report(assessment, spec, records, store=empty)
    assert report.inputs.shadow.source == RECORDS and "evaluation records" in report.html()
    assert not empty.has_table("shadow_log")  # the report never creates the gateway's tables
    empty.dispose()


def test_several_candidates_each_against_the_incumbent_on_its_own_requests(tmp_path, store, store_url):
    """Two candidates mirrored on different requests: the incumbent's row per candidate (its answers to
    that candidate's requests, as the shadow report compares them), each request once in the period."""
    ups = {m: {"base_url": "http://127.0.0.1:9/v1", "output_per_mtok": 1.0} for m in ("old", "new", "newer")}
    path = write_spec(tmp_path / "migration.yaml", "", candidates=["new", "newer"], gateway={"upstreams": ups})
    spec = load_spec(path)
    rows = RowMaker(load_settings(spec).gateway.upstreams, {"new", "newer"})
    writer = LogWriter(store, rows, flush_interval=0.01).start()
    start = now() - timedelta(days=1)
    for i in range(12):
        at, q = start + i * timedelta(hours=1), _question(i)
        served = exchange(f"s{i}", "old", text=SAME, latency=100.0 + i, at=at, payload=q)
        if i < 3:  # the incumbent's upstream announces its end
            served.deprecation = DeprecationNotice(True, sunset=datetime(2027, 3, 1, tzinfo=UTC))
        writer.submit(served)
        writer.submit(exchange(f"s{i}", "new", "mirror", text=SAME, latency=150.0, at=at, payload=q))
        if i % 2 == 0:  # newer: every other request, sent with a prompt variant
            newer = exchange(f"s{i}", "newer", "mirror", text="Lyon.", latency=300.0 + i, at=at, payload=q)
            newer.prompt = "support@terse:v2"
            writer.submit(newer)
    writer.close()
    from changeover.report.shadowlog import shadow_log_stats
    from changeover.shadow.report import build_report as shadow_report

    stats = shadow_log_stats(store, spec, max_examples=4)
    rows_all = {
        r["candidate"]: r for r in shadow_report(store, "old", ["new", "newer"]).rows if r["request_type"] == "all"
    }
    assert [(m.model, m.requests_of, m.responses) for m in stats.models] == [
        ("old", "new", 12),
        ("new", None, 12),
        ("old", "newer", 6),
        ("newer", None, 6),
    ]
    assert stats.models[2].p50 == rows_all["newer"]["incumbent_stats"]["latency_ms"]["p50"] == 105.0
    assert stats.models[3].prompts == {"support@terse:v2": 6} and stats.models[1].prompts == {"as sent": 12}
    overall = [(d.candidate, d.equivalence_rate) for d in stats.disagreements if d.request_type == "all"]
    assert overall == [("new", 1.0), ("newer", 0.0)]
    assert stats.period.pairs == 12 and sum(map(sum, stats.period.grid)) == 12  # each request once
    assert [e.candidate[0] for e in stats.examples] == ["newer"] * 2  # new agrees everywhere: nothing to show
    assert stats.models[0].label == "old (requests mirrored to new)"
    # the pairs exported as records and imported: what `changeover report` assesses
    answers = load_answers(store, with_request=True)
    add_records(store, [r for c in ("new", "newer") for r in pair_records(pairs(answers, "old", c))], "import")
    out = tmp_path / "report.html"
    argv = ["report", "--spec", str(path), "--db", store_url, "--out", str(out), "--draws", "300", "--seed", "1"]
    assert run(argv) == 0
    html = out.read_text()
    assert "old (requests mirrored to newer)" in html and "prompt support@terse:v2" in html
    assert "gateway shadow log" in html and "deprecation notice on 3 answers, sunset 2027-03-01" in html
    assert (stats.models[0].deprecated_answers, stats.models[2].deprecated_answers) == (3, 2)  # s0..s2; s0, s2


def test_shadow_since_narrows_the_section_and_a_stretch_without_pairs_is_an_error(tmp_path, sqlite_url, capsys):
    store = open_store(sqlite_url)
    path = write_spec(tmp_path / "migration.yaml", "http://127.0.0.1:9/v1")
    spec = load_spec(path)
    write_week(store, spec, now() - timedelta(days=7))  # one request every 7 hours
    answers = load_answers(store, with_request=True)
    add_records(store, pair_records(pairs(answers, "old", "new")), "import")
    store.dispose()
    out, data = tmp_path / "r.html", tmp_path / "r.json"
    argv = ["report", "--spec", str(path), "--db", sqlite_url, "--out", str(out), "--json", str(data)]
    assert run([*argv, "--draws", "300", "--seed", "1", "--shadow-since", "2d"]) == 0
    section = json.loads(data.read_text())["report"]["shadow"]
    assert section["source"] == SHADOW_LOG and section["since"] is not None
    assert 5 <= section["period"]["pairs"] <= 7 < N  # the last 48 hours only
    assert "the answers logged since" in out.read_text()
    assert run([*argv, "--shadow-since", "1m"]) == 2  # no pair in the last minute
    assert "holds no mirrored pairs" in capsys.readouterr().err
    assert run([*argv, "--shadow-since", "soon"]) == 2
