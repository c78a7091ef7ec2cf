"""SVG primitives for the report's plots: a canvas that collects escaped elements, and
linear scales with readable ticks. No plotting library; the output is inline SVG text.

Inline SVG in HTML5 needs no ``xmlns``, so the report contains no namespace URL either.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup


def fmt(value: float) -> str:
    """A coordinate with at most two decimals and no trailing zeros."""
    out = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if out in ("-0", "") else out


def _attrs(attrs: dict[str, object]) -> str:
    parts = []
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        name = key.rstrip("_").replace("_", "-")
        if isinstance(value, float):
            value = fmt(value)
        parts.append(f'{name}="{escape(str(value), quote=True)}"')
    return (" " + " ".join(parts)) if parts else ""


class Canvas:
    """An SVG drawing: add shapes in drawing order, then ``render()`` to markup."""

    def __init__(self, width: float, height: float, label: str, css_class: str = "plot"):
        self.width = width
        self.height = height
        self.label = label
        self.css_class = css_class
        self._parts: list[str] = []

    def _add(self, tag: str, attrs: dict[str, object], body: str | None = None) -> None:
        if body is None:
            self._parts.append(f"<{tag}{_attrs(attrs)}/>")
        else:
            self._parts.append(f"<{tag}{_attrs(attrs)}>{body}</{tag}>")

    def line(self, x1: float, y1: float, x2: float, y2: float, **attrs: object) -> None:
        self._add("line", {"x1": float(x1), "y1": float(y1), "x2": float(x2), "y2": float(y2), **attrs})

    def rect(self, x: float, y: float, w: float, h: float, **attrs: object) -> None:
        self._add(
            "rect", {"x": float(x), "y": float(y), "width": float(max(w, 0.0)), "height": float(max(h, 0.0)), **attrs}
        )

    def circle(self, cx: float, cy: float, r: float, **attrs: object) -> None:
        self._add("circle", {"cx": float(cx), "cy": float(cy), "r": float(r), **attrs})

    def polyline(self, points: Iterable[tuple[float, float]], **attrs: object) -> None:
        pts = " ".join(f"{fmt(x)},{fmt(y)}" for x, y in points)
        self._add("polyline", {"points": pts, "fill": "none", **attrs})

    def polygon(self, points: Iterable[tuple[float, float]], **attrs: object) -> None:
        pts = " ".join(f"{fmt(x)},{fmt(y)}" for x, y in points)
        self._add("polygon", {"points": pts, **attrs})

    def text(self, x: float, y: float, content: str, anchor: str = "start", **attrs: object) -> None:
        self._add("text", {"x": float(x), "y": float(y), "text_anchor": anchor, **attrs}, escape(content))

    def tooltip_rect(self, x: float, y: float, w: float, h: float, tip: str, **attrs: object) -> None:
        """A rectangle with a hover title (the browser shows it as a tooltip)."""
        self._add(
            "rect",
            {"x": float(x), "y": float(y), "width": float(max(w, 0.0)), "height": float(max(h, 0.0)), **attrs},
            f"<title>{escape(tip)}</title>",
        )

    def render(self) -> Markup:
        body = "".join(self._parts)
        return Markup(
            f'<svg class="{escape(self.css_class)}" viewBox="0 0 {fmt(self.width)} {fmt(self.height)}" '
            f'width="{fmt(self.width)}" height="{fmt(self.height)}" role="img" '
            f'aria-label="{escape(self.label, quote=True)}"><title>{escape(self.label)}</title>{body}</svg>'
        )


@dataclass(frozen=True, slots=True)
class Scale:
    """A linear map from data ``domain`` to pixel ``range`` (either may be decreasing)."""

    domain: tuple[float, float]
    range: tuple[float, float]

    def __call__(self, value: float) -> float:
        d0, d1 = self.domain
        r0, r1 = self.range
        if d1 == d0:
            return (r0 + r1) / 2
        return r0 + (value - d0) * (r1 - r0) / (d1 - d0)

    def ticks(self, count: int = 5) -> list[float]:
        return nice_ticks(self.domain[0], self.domain[1], count)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 x 10^k steps) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    out = []
    value = first
    while value <= hi + 1e-9 * step:
        out.append(round(value, 12))
        value += step
    return out


def padded(values: Sequence[float], pad: float = 0.05) -> tuple[float, float]:
    """The range of ``values`` widened by ``pad`` of its span on each side."""
    lo, hi = float(min(values)), float(max(values))
    span = hi - lo or max(abs(hi), 1e-3)
    return lo - pad * span, hi + pad * span
