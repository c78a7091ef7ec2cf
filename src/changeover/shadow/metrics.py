"""Prometheus text exposition for the gateway: requests, latency histograms, drops, stage, triggers.

A few counters and histograms kept as plain dicts (the event loop is one
thread), rendered in the Prometheus text format 0.0.4 on ``/metrics``.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

LATENCY_BUCKETS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    escaped = (str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for v in values)
    return "{" + ",".join(f'{n}="{v}"' for n, v in zip(names, escaped, strict=True)) + "}"


class Histogram:
    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS_MS):
        self.buckets = buckets
        self.counts: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0] * (len(buckets) + 1))
        self.sums: dict[tuple[str, ...], float] = defaultdict(float)

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        self.counts[labels][bisect.bisect_left(self.buckets, value)] += 1
        self.sums[labels] += value

    def render(self, name: str, label_names: tuple[str, ...]) -> list[str]:
        out = []
        for labels, counts in sorted(self.counts.items()):
            running = 0
            for bound, count in zip((*self.buckets, float("inf")), counts, strict=True):
                running += count
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                out.append(f"{name}_bucket{_labels((*label_names, 'le'), (*labels, le))} {running}")
            out.append(f"{name}_sum{_labels(label_names, labels)} {self.sums[labels]:.3f}")
            out.append(f"{name}_count{_labels(label_names, labels)} {running}")
        return out


class Metrics:
    """The gateway's metrics; ``render`` adds gauges read at scrape time."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)  # model, role, outcome
        self.latency = Histogram()
        self.rejected: dict[str, int] = defaultdict(int)  # requests refused before routing, by reason
        self.errors: dict[str, int] = defaultdict(int)  # bugs on the request path (500), by exception type
        self.disconnects = 0  # clients that went away mid-stream

    def reject(self, reason: str) -> None:
        self.rejected[reason] += 1

    def error(self, exc: BaseException) -> None:
        self.errors[type(exc).__name__] += 1

    def observe(self, model: str, role: str, outcome: str, latency_ms: float) -> None:
        self.requests[(model, role, outcome)] += 1
        self.latency.observe((model, role), latency_ms)

    def render(self, gauges: dict[str, tuple[str, dict[tuple[tuple[str, str], ...], float]]]) -> str:
        """``gauges``: name -> (help, {((label, value), ...): number})."""
        lines = [
            "# HELP changeover_requests_total Answers by model, role (served/mirror/fallback) and outcome.",
            "# TYPE changeover_requests_total counter",
        ]
        for (model, role, outcome), n in sorted(self.requests.items()):
            lines.append(
                f"changeover_requests_total{_labels(('model', 'role', 'outcome'), (model, role, outcome))} {n}"
            )
        lines += [
            "# HELP changeover_latency_ms Upstream answer latency in milliseconds.",
            "# TYPE changeover_latency_ms histogram",
            *self.latency.render("changeover_latency_ms", ("model", "role")),
            "# HELP changeover_rejected_total Requests refused before routing (body too large, bad JSON, ...).",
            "# TYPE changeover_rejected_total counter",
            *(f"changeover_rejected_total{_labels(('reason',), (r,))} {n}" for r, n in sorted(self.rejected.items())),
            "# HELP changeover_gateway_errors_total Errors of the gateway itself on the request path (500s).",
            "# TYPE changeover_gateway_errors_total counter",
            *(
                f"changeover_gateway_errors_total{_labels(('error',), (e,))} {n}"
                for e, n in sorted(self.errors.items())
            ),
            "# HELP changeover_client_disconnects_total Streams the client left before the end.",
            "# TYPE changeover_client_disconnects_total counter",
            f"changeover_client_disconnects_total {self.disconnects}",
        ]
        for name, (help_text, series) in gauges.items():
            kind = "counter" if name.endswith("_total") else "gauge"
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            for labels, value in series.items():
                names = tuple(k for k, _ in labels)
                values = tuple(v for _, v in labels)
                lines.append(f"{name}{_labels(names, values)} {value:g}")
        return "\n".join(lines) + "\n"


def deprecation_gauges(upstreams: Mapping[str, Any]) -> dict[str, tuple[str, dict[tuple[tuple[str, str], ...], float]]]:
    """Upstream answers that announced a deprecation (``Deprecation``/``Sunset`` headers, body warnings),
    and the sunset date each last announced (a label: a float gauge would round a Unix time), for ``render``."""
    Series = dict[tuple[tuple[str, str], ...], float]
    counts: Series = {
        (("model", m), ("source", str(src))): float(n)
        for m, u in upstreams.items()
        for src, n in u.deprecations.items()
    }
    sunsets: Series = {
        (("model", m), ("date", u.last_notice.sunset.date().isoformat())): 1.0
        for m, u in upstreams.items()
        if u.last_notice is not None and u.last_notice.sunset is not None
    }
    return {
        "changeover_upstream_deprecations_total": ("Upstream answers announcing a deprecation, by source.", counts),
        "changeover_upstream_sunset": ("The sunset date an upstream last announced (1 per model).", sunsets),
    }


def judge_gauges(judge: Any) -> dict[str, tuple[str, dict[tuple[tuple[str, str], ...], float]]]:
    """The judging worker's counters (``shadow.judging.JudgeWorker``), for ``render``."""
    return {
        "changeover_judge_pairs_judged_total": ("Mirrored pairs judged and stored as records.", {(): judge.judged}),
        "changeover_judge_pairs_dropped_total": (
            "Pairs not judged because the judging queue was full (or at shutdown).",
            {(): judge.dropped},
        ),
        "changeover_judge_pairs_paused_total": (
            "Pairs not judged because a judging budget was spent, per budget.",
            {
                (("budget", b),): judge.paused.get(b, 0)
                for b in ("requests_per_minute", "usd_per_day", "store_unavailable")
            },
        ),
        "changeover_judge_shared_budget_errors_total": (
            "Reads or writes of the judging budget shared in the store that failed (counted as spent).",
            {(): judge.shared.errors if judge.shared is not None else 0},
        ),
        "changeover_judge_prefiltered_total": (
            "Candidate answers that took the incumbent's verdicts (identical words, no judge call).",
            {(): judge.prefiltered},
        ),
        "changeover_judge_compared_total": (
            "Pairs per comparison-judge class (failed: no readable verdict).",
            {(("class", c),): n for c, n in sorted(judge.compared.items())},
        ),
        "changeover_judge_errors_total": ("Pairs whose judging or storing failed.", {(): judge.errors}),
        "changeover_judge_calls_total": ("Judge model calls made (cache hits excluded).", {(): judge.judge_calls}),
        "changeover_judge_queue_depth": ("Pairs waiting to be judged.", {(): judge.queue.qsize()}),
    }


def keep_alive_gauges(keep_alive: Any, mirror: Any) -> dict[str, tuple[str, dict[tuple[tuple[str, str], ...], float]]]:
    """Each request type's mirror rate now (``shadow.keepalive``: the keep-alive rate once settled) and the
    mirror's per-type counts, for ``render``."""
    rates = keep_alive.rates(list(mirror.considered))
    return {
        "changeover_mirror_rate": (
            "Share of a request type's requests mirrored now (the keep-alive rate once its decision is settled).",
            {(("request_type", t),): r for t, r in rates.items()},
        ),
        "changeover_mirror_settled": (
            "1 when the calibrated decision on a request type's judged pairs is settled (keep-alive rate).",
            {(("request_type", t),): float(t in keep_alive.state and keep_alive.state[t].settled) for t in rates},
        ),
        "changeover_mirror_considered_total": (
            "Served requests that could be mirrored, per request type.",
            {(("request_type", t),): n for t, n in sorted(mirror.considered.items())},
        ),
        "changeover_mirror_drawn_total": (
            "Requests drawn for mirroring at their type's rate, per request type.",
            {(("request_type", t),): n for t, n in sorted(mirror.mirrored.items())},
        ),
        "changeover_keep_alive_assessments_total": (
            "Calibrated assessments of a request type's judged pairs (keep-alive).",
            {(): keep_alive.assessments},
        ),
    }
