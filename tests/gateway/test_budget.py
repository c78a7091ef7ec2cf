"""The judging budget: a spec it can never serve is refused at start-up, re-asks take their own calls, and
pairs the budget could not take yet wait in a bounded line and are judged when the minute frees it.

Real gateways on loopback, the fake server as incumbent, candidate and LLM judge (tests/support/fake_openai.py).
"""

from __future__ import annotations

import pytest
import yaml
from tests.gateway.helpers import free_port
from tests.gateway.test_gateway import wait_for
from tests.gateway.test_judging import judged_spec, send, settle

from changeover.cli import run
from changeover.config import load_spec
from changeover.errors import SpecError
from changeover.shadow.app import GatewayService

THREE_JUDGES = {  # three LLM judges on both answers: 6 base calls a pair, each with up to 3 re-asks
    "correctness": {"kind": "llm", "model": "judge", "rubric": "correctness", "retries": 3},
    "helpful": {"kind": "llm", "model": "judge", "rubric": "correctness", "retries": 3},
    "accurate": {"kind": "llm", "model": "judge", "rubric": "correctness", "retries": 3},
}


def three_judges_spec(tmp_path, fake, **judge):
    path = judged_spec(tmp_path, fake, **judge)
    raw = yaml.safe_load(path.read_text())
    raw["judges"] = THREE_JUDGES
    raw["dimensions"] = {name: {"margin": 0.1} for name in THREE_JUDGES}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_a_budget_of_one_pairs_base_calls_judges_pairs_even_with_re_asks_declared(tmp_path, judged, serve):
    """3 judges x 2 answers = 6 base calls; reserving the 3 re-asks of each as well (24) would pass 20 a
    minute and pause every pair forever. Only the base calls are reserved: 3 pairs fit in 20 calls."""
    gw = serve(three_judges_spec(tmp_path, judged, requests_per_minute=20, concurrency=1))
    send(gw, 3)
    judge = settle(gw, 3)
    assert judge.judged == 3 and dict(judge.paused) == {} and judge.reasks_refused == 0
    # the pre-filter spares the candidate's 3 calls on the identical answers (questions #0 and #2)
    assert judge.judge_calls == judged.calls["judge"] == 3 + 6 + 3 <= 20


def test_requests_per_minute_below_one_pairs_base_calls_is_refused_at_start_up(tmp_path, judged, gw_store, capsys):
    spec = three_judges_spec(tmp_path, judged, requests_per_minute=5)
    with pytest.raises(SpecError, match=r"field 'shadow\.judge\.requests_per_minute' is 5, fewer than the 6"):
        GatewayService(load_spec(spec), gw_store)
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    assert run(["serve", "--spec", str(spec), "--db", db, "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert "shadow.judge.requests_per_minute" in err and "at least 6" in err and "Traceback" not in err


def test_paused_pairs_wait_in_line_and_are_judged_when_the_budget_refills(tmp_path, judged, serve):
    gw = serve(judged_spec(tmp_path, judged, requests_per_minute=2, concurrency=4))
    judge = gw.service.judge
    judge.window_s = 0.5  # the minute, shortened: the budget refills within the test
    send(gw, 6)
    # 2 calls per window: a batch of 4 pairs takes what fits, the rest wait and are taken again, oldest first
    wait_for(lambda: judge.judged == 6, timeout=60)
    assert judge.paused["requests_per_minute"] >= 1 and judge.requeued >= judge.paused["requests_per_minute"]
    assert judge.dropped == 0 and judge.to_json()["waiting"] == 0 and judge.errors == 0
    assert judge.judge_calls == judged.calls["judge"] == 6 + 3  # every answer judged once (3 pre-filtered)


def test_the_waiting_line_is_bounded_and_what_does_not_fit_is_dropped_and_counted(tmp_path, judged, serve):
    gw = serve(judged_spec(tmp_path, judged, usd_per_day=0.0, queue_size=2, concurrency=1))
    send(gw, 5)
    judge = settle(gw, 5)
    assert judge.judged == 0 and judge.to_json()["waiting"] == 2  # the day's spend is spent: they wait
    assert judge.dropped == 3 and judge.offered == 5  # beyond the line (or the queue): dropped, counted
    gw.stop()
    assert judge.dropped == 5  # at shutdown the waiting pairs are dropped too (resumed at the next start)
