"""How numbers read in the report: rates as percentages, deltas in percentage points,
probabilities with two decimals, counts with thousands separators. Used by the plots,
the HTML templates and the Markdown summary, so all three say the same thing."""

from __future__ import annotations

import math

from changeover.assessment.result import Interval, SegmentResult


def pct(value: float | None, digits: int = 1) -> str:
    """0.9234 -> '92.3%'."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{100 * value:.{digits}f}%"


def points(value: float | None, digits: int = 1) -> str:
    """A signed difference in percentage points: 0.012 -> '+1.2 pts'."""
    if value is None or not math.isfinite(value):
        return "—"
    out = f"{100 * value:+.{digits}f}"
    return ("±0.0" if out in ("+0.0", "-0.0") else out.replace("-", "−")) + " pts"


def prob(value: float | None) -> str:
    """A posterior probability: 0.62 -> '0.62'; near the usual decision thresholds three
    decimals (0.947 must not read as 0.95); extremes read '>0.99' / '<0.01'."""
    if value is None or not math.isfinite(value):
        return "—"
    if value > 0.995:
        return ">0.99"
    if value < 0.005:
        return "<0.01"
    return f"{value:.3f}" if value >= 0.9 or value < 0.1 else f"{value:.2f}"


def count(value: float | None) -> str:
    """1234.4 -> '1,234'."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{round(value):,}"


def impact(block: SegmentResult | None) -> Interval | None:
    """The failures-per-month summary to show for a result block: the signed net change
    (``net_failures_per_month``, negative = fewer failures) when the assessment gives it,
    else ``extra_failures_per_month``."""
    if block is None:
        return None
    return block.net_failures_per_month or block.extra_failures_per_month


def impact_range(block: SegmentResult | None) -> str:
    """The interval of the impact in words: 'between 32,000 and 290,000 fewer'."""
    summary = impact(block)
    if summary is None:
        return ""
    lo, hi = summary.lower, summary.upper
    if lo >= 0:
        return f"between {count(lo)} and {count(hi)} extra"
    if hi <= 0:
        return f"between {count(-hi)} and {count(-lo)} fewer"
    return f"from {count(-lo)} fewer to {count(hi)} extra"


def failures(summary: Interval | None) -> str:
    """Expected change in failures per month, in words: '~1,200 fewer failures/month'."""
    if summary is None or not math.isfinite(summary.mean):
        return "—"
    rounded = _round_sig(abs(summary.mean))
    if rounded == 0:
        return "no change in failures/month"
    word = "fewer" if summary.mean < 0 else "extra"
    return f"~{rounded:,} {word} failures/month"


def failures_short(summary: Interval | None) -> str:
    """The same for table cells: '~160,000 fewer'."""
    text = failures(summary)
    return text.removesuffix(" failures/month") if text.startswith("~") else text


def prob_is(value: float | None) -> str:
    """'= 0.97', '> 0.99' or '< 0.01': a probability after its P(...)."""
    text = prob(value)
    return text[0] + " " + text[1:] if text[:1] in "<>" else "= " + text


def interval_short(summary: Interval | None) -> str:
    """A delta's interval in points without units, for table cells: '[−3.0, +5.5]'."""
    if summary is None:
        return ""
    return "[" + ", ".join(points(x).removesuffix(" pts") for x in (summary.lower, summary.upper)) + "]"


def _round_sig(value: float, digits: int = 2) -> int:
    if value < 1:
        return 0 if value < 0.5 else 1
    magnitude = 10 ** max(int(math.floor(math.log10(value))) - digits + 1, 0)
    return int(round(value / magnitude) * magnitude)


def plural(n: int, noun: str) -> str:
    """The noun in the number ``n`` asks for: plural(2, 'category') -> 'categories'."""
    if n == 1:
        return noun
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")
