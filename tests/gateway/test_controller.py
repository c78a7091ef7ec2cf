"""The rollout controller: Argo-style analysis on the shadow log, decisions written as events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, insert
from tests.gateway.exchanges import exchange

from changeover.rollout import state as rs
from changeover.rollout.config import RolloutConfig
from changeover.rollout.controller import Controller, window_from_store
from changeover.rollout.measure import Tally, Window, equivalence_rate
from changeover.shadow.config import Upstream
from changeover.shadow.rows import RowMaker
from changeover.shadow.writer import LogWriter
from changeover.shadowlog.answers import load_answers
from changeover.store import open_store
from changeover.store.events import list_events, now
from changeover.store.schema import labels

REFUSAL = "I'm sorry, but I can't help with that."
UP = {"old": Upstream(base_url="http://x/v1"), "new": Upstream(base_url="http://y/v1")}


def config(**kw) -> RolloutConfig:
    base = {
        "stages": [
            {"weight": 0, "min_duration": "60s", "min_requests": 20},
            {"weight": 50, "min_duration": "60s", "min_requests": 20},
            {"weight": 100},
        ],
        "triggers": [{"metric": "error_rate", "above_baseline": 0.01, "min_samples": 10}],
    }
    return RolloutConfig(**{**base, **kw})


def log(store, n: int, *, candidate_errors: float = 0.0, candidate_role: str = "mirror", latency=100.0):
    rs.ensure_started(store, config(), "new", "gateway")  # the stage's window starts before the traffic
    writer = LogWriter(store, RowMaker(UP, {"new"}), flush_interval=0.01).start()
    bad = int(n * candidate_errors)
    for i in range(n):
        writer.submit(exchange(f"r{i}", "old", latency=100.0))
        writer.submit(exchange(f"r{i}", "new", candidate_role, latency=latency, error="http_500" if i < bad else None))
    writer.close()


class Clock:
    def __init__(self):
        self.offset = timedelta()

    def __call__(self):
        return now() + self.offset


def test_a_failed_trigger_rolls_back_and_every_run_is_an_event(store):
    cfg = config()
    rs.advance(store, cfg, rs.read_state(store, cfg, "new"), "operator:ana", "offline GO")
    log(store, 50, candidate_errors=0.2, candidate_role="served")
    decision = Controller(store, cfg, "old", "new").tick()
    assert decision.action == "rollback" and "error_rate" in decision.reason
    state = rs.read_state(store, cfg, "new")
    assert (state.status, state.weight) == ("rolled_back", 0)
    analysis = list_events(store, kind_prefix="rollout.analysis")
    assert len(analysis) == 1 and analysis[0].actor == "controller"
    (m,) = analysis[0].payload["measurements"]
    assert m["phase"] == "failed" and m["value"] == 0.2 and m["baseline"] == 0.0
    (rollback,) = list_events(store, kind_prefix="rollout.rollback")
    assert rollback.actor == "controller" and "failed" in rollback.reason


def test_failure_limit_tolerates_failures_but_a_stage_never_advances_on_a_failed_check(store):
    cfg = config(failure_limit=1, stages=[{"weight": 0, "min_duration": 0, "min_requests": 0}, {"weight": 100}])
    log(store, 50, candidate_errors=0.2)
    ctl = Controller(store, cfg, "old", "new")
    first = ctl.tick()
    assert first.action == "hold" and "never advances on a failed check" in first.reason
    assert ctl.tick().action == "rollback"


def test_advances_only_after_the_window_and_consecutive_successes(store):
    cfg = config(consecutive_success=2)
    log(store, 30)
    clock = Clock()
    ctl = Controller(store, cfg, "old", "new", clock=clock)
    first = ctl.tick()
    assert first.action == "hold" and "stabilising" in first.reason
    clock.offset = timedelta(seconds=61)
    assert ctl.tick().action == "advance"  # second success in a row, window passed
    state = rs.read_state(store, cfg, "new")
    assert (state.stage, state.weight) == (1, 50)
    # the new stage starts its own window: its counters restart and it waits again
    assert ctl.tick().action == "hold"


def test_not_enough_traffic_holds_the_stage(store):
    cfg = config(stages=[{"weight": 0, "min_duration": 0, "min_requests": 100}, {"weight": 100}])
    log(store, 30)
    decision = Controller(store, cfg, "old", "new").tick()
    assert decision.action == "hold" and "30 of 100" in decision.reason


def test_inconclusive_pauses_for_a_human_and_a_paused_rollout_still_rolls_back(store):
    cfg = config(triggers=[{"metric": "p99_latency", "ratio": 1.3, "inconclusive": 20, "min_samples": 10}])
    log(store, 30, latency=120.0)  # limit 130 ms, inconclusive from 110 ms
    ctl = Controller(store, cfg, "old", "new")
    assert ctl.tick().action == "pause"
    assert rs.read_state(store, cfg, "new").status == "paused"
    log(store, 60, latency=400.0)
    assert ctl.tick().action == "rollback"


def test_unmeasurable_triggers_have_their_own_consecutive_error_budget(store):
    cfg = config(consecutive_error_limit=2, triggers=[{"metric": "p_regression", "above": 0.9, "min_samples": 1}])
    log(store, 30)

    def broken(trigger, window):
        raise RuntimeError("no assessment")

    ctl = Controller(store, cfg, "old", "new", regression=broken)
    assert [ctl.tick().action for _ in range(3)] == ["hold", "hold", "rollback"]
    assert "could not be measured 3 times" in ctl.last.reason


def test_p_regression_uses_the_assessment_posterior(store):
    cfg = config(
        triggers=[{"metric": "p_regression", "above": 0.9, "min_samples": 10}],
        stages=[{"weight": 0, "min_duration": 0, "min_requests": 0}, {"weight": 100}],
    )
    log(store, 30)
    seen = {}

    def posterior(trigger, window):
        seen["pairs"] = len(window.keys)
        return 0.97, len(window.keys)

    decision = Controller(store, cfg, "old", "new", regression=posterior).tick()
    assert seen["pairs"] == 30 and decision.action == "rollback"


def test_p_regression_from_the_real_assessment_core(store, tmp_path):
    from changeover.config import spec_from_dict
    from changeover.rollout.controller import window_from_store
    from changeover.rollout.regression import regression_for

    spec = spec_from_dict(
        {
            "incumbent": "old",
            "candidates": ["new"],
            "dimensions": {"equivalence": {"signal": "equivalent", "margin": 0.05}},
        },
        tmp_path / "migration.yaml",
    )
    writer = LogWriter(store, RowMaker(UP, {"new"}), flush_interval=0.01).start()
    for i in range(80):  # from r40 on, the candidate's answer differs from the incumbent's on every other request
        writer.submit(exchange(f"r{i}", "old", text="Paris is the capital of France."))
        writer.submit(
            exchange(
                f"r{i}",
                "new",
                "mirror",
                text="Lyon, I believe." if i >= 40 and i % 2 else "Paris is the capital of France.",
            )
        )
    writer.close()
    window = window_from_store(store, "old", "new", now() - timedelta(hours=1))
    same = Window.of([], [], [p for p in window.pairs if int(p.candidate.request_id[1:]) < 40])
    worse = Window.of([], [], [p for p in window.pairs if int(p.candidate.request_id[1:]) >= 40])
    trigger = RolloutConfig(triggers=[{"metric": "p_regression", "above": 0.9, "min_samples": 10}]).triggers[0]
    p_regression = regression_for(spec, store, "old", "new", draws=150)
    p_same, n_same = p_regression(trigger, same)
    p_worse, n_worse = p_regression(trigger, worse)
    assert n_same == n_worse == 40 and 0.0 <= p_same < p_worse <= 1.0


def test_the_window_counted_in_sql_is_what_the_answers_say(store):
    """The controller's SQL aggregation (PostgreSQL's percentile_cont, SQLite's latencies) against the same
    answers counted in memory: counts, rates and latency percentiles agree; the texts are read only when asked."""
    rs.ensure_started(store, config(), "new", "gateway")
    writer = LogWriter(store, RowMaker(UP, {"new"}), flush_interval=0.01).start()
    errors = ["timeout", "malformed", "http_500", "timeout_read"]
    for i in range(40):
        writer.submit(exchange(f"r{i}", "old", latency=80.0 + i))
        text = REFUSAL if i % 7 == 0 else "Paris is the capital."
        error = errors[i % 4] if i % 5 == 0 else None
        writer.submit(exchange(f"r{i}", "new", "mirror", text=text, error=error, latency=50.0 + (i * 37) % 101))
    writer.submit(exchange("lone", "new", "mirror"))  # no incumbent answer: counted, never paired
    writer.close()
    start = now() - timedelta(hours=1)
    window = window_from_store(store, "old", "new", start)
    answers = load_answers(store, since=start)
    expected = Tally.of([a for a in answers if a.model == "new"])
    got = window.candidate
    assert (got.answers, got.errors, got.timeouts, got.malformed, got.refusals, got.timed) == (
        41,
        8,
        4,
        2,
        expected.refusals,
        33,
    )
    assert got.refusals == expected.refusals > 0
    assert got.latency.keys() == expected.latency.keys() == {50, 95, 99}
    baseline = Tally.of([a for a in answers if a.model == "old" and a.role == "served"])
    assert window.incumbent.answers == baseline.answers == 40 and window.incumbent.timed == 40
    for q in (50, 95, 99):
        assert got.latency[q] == pytest.approx(expected.latency[q])
        assert window.incumbent.latency[q] == pytest.approx(baseline.latency[q])
    assert [k.request_id for k in window.keys] == [f"r{i}" for i in range(40)]
    assert window.version == window_from_store(store, "old", "new", start).version  # nothing new: the same
    assert window._pairs is None  # no measure asked for the texts yet
    texts = [p.candidate.text for p in window.pairs]
    assert len(texts) == 40 and (texts[0], texts[1], texts[7]) == (None, "Paris is the capital.", REFUSAL)


def test_p_regression_refits_only_when_the_window_or_the_labels_change(store, tmp_path):
    from changeover.config import spec_from_dict
    from changeover.rollout.regression import regression_for

    spec = spec_from_dict(
        {"incumbent": "old", "candidates": ["new"], "dimensions": {"equivalence": {"signal": "equivalent"}}},
        tmp_path / "migration.yaml",
    )
    cfg = config(triggers=[{"metric": "p_regression", "above": 0.99, "min_samples": 10}])
    log(store, 30)
    regression = regression_for(spec, store, "old", "new", draws=150)
    ctl = Controller(store, cfg, "old", "new", regression=regression)
    first = ctl.tick().measurements[0]
    assert regression.fits == 1 and first.samples == 30
    again = ctl.tick().measurements[0]
    assert regression.fits == 1 and again.value == first.value  # nothing new: the last fit's reading
    with store.engine.begin() as conn:  # a label made in the app on a mirrored pair
        row = {"item": "r3", "model": "new", "dimension": "equivalence", "value": 0, "annotator": "ana"}
        conn.execute(insert(labels).values(**row, created_at=now(), status="label", source="app"))
    ctl.tick()
    assert regression.fits == 2  # a new label: fitted again
    ctl.tick()
    assert regression.fits == 2
    log(store, 31)  # one more pair in the window (r30; r0..r29 are logged already)
    assert ctl.tick().measurements[0].samples == 31 and regression.fits == 3


def test_word_similarity_equivalence_reads_each_pairs_texts_once(store):
    cfg = config(triggers=[{"metric": "semantic_equivalence", "below": 0.9, "min_samples": 10}])
    log(store, 30)
    ctl = Controller(store, cfg, "old", "new")
    first = ctl.tick().measurements[0]
    assert (first.phase, first.value, first.samples, ctl.equivalence.read) == ("successful", 1.0, 30, 30)
    assert ctl.tick().measurements[0].value == 1.0 and ctl.equivalence.read == 30  # nothing new: nothing read
    writer = LogWriter(store, RowMaker(UP, {"new"}), flush_interval=0.01).start()
    for i in range(10):
        writer.submit(exchange(f"x{i}", "old", text="Paris is the capital of France."))
        writer.submit(exchange(f"x{i}", "new", "mirror", text="Lyon, I believe."))
    writer.close()
    m = ctl.tick().measurements[0]
    assert (m.phase, m.value, m.samples, ctl.equivalence.read) == ("failed", 0.75, 40, 40)  # only the new pairs
    window = window_from_store(store, "old", "new", now() - timedelta(hours=1))
    assert m.value == equivalence_rate(window.pairs)[0]  # the reading of all the texts at once


def test_answers_of_some_requests_come_in_chunks_and_in_log_order(store, monkeypatch):
    from changeover.shadowlog import answers

    log(store, 12)
    monkeypatch.setattr(answers, "_CHUNK", 3)  # 5 ids: two IN lists
    wanted = {"r9", "r2", "r11", "r0", "r5"}
    got = load_answers(store, request_ids=wanted)
    every = [a for a in load_answers(store) if a.request_id in wanted]
    assert got == every and len(got) == 10 and {a.request_id for a in got} == wanted


def test_the_controller_creates_its_tables_once_and_a_run_only_reads(store_url):
    """A controller started on a store it has not seen checks the tables at start-up; every statement of its
    three runs (a rate and the word-similarity equivalence, which reads texts) is then a read or the analysis
    event: no CREATE, ALTER or catalogue look-up (SQLite's PRAGMA, PostgreSQL's pg_catalog)."""
    cfg = config(triggers=[{"metric": "error_rate", "above": 0.5}, {"metric": "semantic_equivalence", "below": 0.5}])
    writing = open_store(store_url)
    log(writing, 20)
    writing.dispose()
    store = open_store(store_url)  # a new Store: it has checked no table yet
    ctl = Controller(store, cfg, "old", "new")
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement.strip())

    event.listen(store.engine, "before_cursor_execute", seen)
    try:
        decisions = [ctl.tick() for _ in range(3)]
    finally:
        event.remove(store.engine, "before_cursor_execute", seen)
    assert [m.phase for m in decisions[-1].measurements] == ["successful", "successful"]
    assert ctl.equivalence.read == 20 and statements
    store.dispose()
    schema = [s for s in statements if s.upper().startswith(("CREATE", "ALTER", "PRAGMA")) or "pg_catalog" in s]
    assert schema == [] and all(s.upper().startswith(("SELECT", "INSERT")) for s in statements)
