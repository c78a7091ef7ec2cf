"""Trigger measurements: successful / failed / inconclusive / error / pending, against a moving baseline."""

from __future__ import annotations

from datetime import UTC, datetime

from changeover.rollout.config import Trigger
from changeover.rollout.measure import Window, equivalence_rate, measure
from changeover.shadowlog.answers import Answer, Pair

AT = datetime(2026, 11, 23, tzinfo=UTC)


def answer(
    i: int,
    model: str,
    role: str = "served",
    *,
    refusal=False,
    error=None,
    latency=100.0,
    text="Paris is the capital of France.",
) -> Answer:
    return Answer(
        f"r{i}",
        model,
        role,
        "default",
        f"u{i}",
        AT,
        0,
        200 if error is None else 500,
        error,
        latency,
        None,
        10,
        10,
        None,
        refusal if error is None else None,
        text if error is None else None,
    )


def window(cand, inc, pairs=()) -> Window:
    return Window.of(cand, inc, list(pairs))


def test_refusal_rate_above_baseline_fails_only_past_the_margin():
    inc = [answer(i, "old", refusal=i < 2) for i in range(100)]  # 2 %
    ok = [answer(i, "new", "mirror", refusal=i < 2) for i in range(100)]  # 2 %
    bad = [answer(i, "new", "mirror", refusal=i < 5) for i in range(100)]  # 5 %
    trig = Trigger(metric="refusal_rate", above_baseline=0.005)
    m = measure(trig, window(ok, inc))
    assert m.phase == "successful" and m.baseline == 0.02 and abs(m.limit - 0.025) < 1e-12
    m = measure(trig, window(bad, inc))
    assert m.phase == "failed" and m.value == 0.05


def test_p99_latency_ratio_and_inconclusive_band():
    inc = [answer(i, "old", latency=100.0) for i in range(50)]
    slow = [answer(i, "new", latency=140.0) for i in range(50)]
    near = [answer(i, "new", latency=125.0) for i in range(50)]
    trig = Trigger(metric="p99_latency", ratio=1.3, inconclusive=10)
    assert measure(trig, window(slow, inc)).phase == "failed"
    assert measure(trig, window(near, inc)).phase == "inconclusive"  # within 10 ms of the 130 ms limit
    assert measure(trig, window(inc, inc)).phase == "successful"


def test_too_few_samples_is_pending_not_a_pass():
    trig = Trigger(metric="error_rate", above_baseline=0.01, min_samples=20)
    m = measure(
        trig,
        window([answer(i, "new", error="http_500") for i in range(5)], [answer(i, "old") for i in range(100)]),
    )
    assert m.phase == "pending" and m.samples == 5
    m = measure(trig, window([answer(i, "new") for i in range(50)], [answer(i, "old") for i in range(3)]))
    assert m.phase == "pending" and "baseline" in m.message


def test_error_rate_and_semantic_equivalence():
    inc = [answer(i, "old") for i in range(40)]
    cand = [answer(i, "new", "mirror", error="timeout" if i % 4 == 0 else None) for i in range(40)]
    assert measure(Trigger(metric="error_rate", above_baseline=0.01), window(cand, inc)).phase == "failed"
    assert measure(Trigger(metric="timeout_rate", above=0.3), window(cand, inc)).phase == "successful"
    pairs = [
        Pair(
            answer(i, "old"),
            answer(i, "new", "mirror", text="Paris is the capital of France." if i < 30 else "Lyon."),
        )
        for i in range(40)
    ]
    rate, n = equivalence_rate(pairs)
    assert n == 40 and rate == 0.75
    trig = Trigger(metric="semantic_equivalence", below=0.9)
    m = measure(trig, window(cand, inc, pairs))
    assert m.phase == "failed" and m.value == 0.75


def test_a_metric_that_cannot_be_measured_is_an_error():
    def broken(_trigger):
        raise RuntimeError("assessment core crashed")

    trig = Trigger(metric="p_regression", above=0.9)
    m = measure(trig, window([], []), broken)
    assert m.phase == "error" and "crashed" in m.message
    assert measure(trig, window([], []), None).phase == "error"
    assert measure(trig, window([], []), lambda t: (0.95, 300)).phase == "failed"
    assert measure(trig, window([], []), lambda t: (0.20, 300)).phase == "successful"
