"""The report in a real browser: Debian's chromium driven by Playwright renders the page
without console errors or network requests, with its plots, and not blank.

Under CI (CI=true) a missing chromium or playwright is an error, never a skip.
Set CHANGEOVER_UPDATE_SCREENSHOT=1 to refresh docs/report-screenshot.png.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from changeover.report import write_report

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS = Path(__file__).resolve().parents[2] / "docs"


def _chromium() -> str:
    path = os.environ.get("CHANGEOVER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    problem = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "the playwright package is not installed"
    if problem is None and not Path(path).exists():
        problem = f"no chromium at {path}"
    if problem:
        if os.environ.get("CI"):
            raise RuntimeError(f"CI=true but {problem}: scripts/setup.d/50-chromium.sh failed")
        pytest.skip(f"{problem}; run scripts/setup.d/50-chromium.sh")
    return path


@pytest.fixture
def browser_page(tmp_path: Path):
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1200, "height": 1400},
        )
        yield context.pages[0] if context.pages else context.new_page()
        context.close()


def test_report_renders_in_chromium(browser_page, demo, demo_store, tmp_path):
    """The real demo migration with shadow traffic, a rollout and an embedding comparison."""
    out = write_report(demo.assessment, demo.spec, tmp_path / "report.html", store=demo_store)
    page = browser_page
    problems: list[str] = []
    requests: list[str] = []
    page.on(
        "console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(out.as_uri(), wait_until="load")

    assert problems == []
    assert requests == [out.as_uri()]  # nothing fetched but the file itself
    assert page.title().startswith("Replacing llama2orig")
    assert page.locator("[data-verdict]").inner_text() == demo.assessment.verdict
    svgs = page.locator("svg.plot")
    assert svgs.count() == 2 * 2 + 3 + 3 + 1  # density + forest per candidate, judge matrices, 3 sections, quality-cost
    box = svgs.first.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 150  # laid out, not collapsed
    assert page.locator("svg.plot polyline").count() == 2 * 2 + 1 + 1  # density curves, rollout step, Pareto front

    shot = page.screenshot(full_page=False)
    assert len(shot) > 20_000
    _assert_not_blank(shot)
    if os.environ.get("CHANGEOVER_UPDATE_SCREENSHOT"):
        DOCS.mkdir(exist_ok=True)
        page.set_viewport_size({"width": 1200, "height": 1600})
        page.screenshot(path=str(DOCS / "report-screenshot.png"), full_page=False)


def _assert_not_blank(png: bytes) -> None:
    """Many distinct colours in the screenshot: the page painted text, plots and the verdict band."""
    import struct
    import zlib

    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, width = 8, [], 0
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        data = png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, _height, depth, colour = struct.unpack(">IIBB", data[:10])
            assert depth == 8 and colour in (2, 6)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            chunks.append(data)
        pos += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels + 1
    # sample the raw (filtered) bytes of every 20th row: a blank page gives a handful of values
    distinct = {raw[r * stride + 1 : (r + 1) * stride : channels * 7] for r in range(0, len(raw) // stride, 20)}
    assert len(distinct) > 30


def test_nothing_overflows_a_400px_screen(browser_page, demo, demo_store, tmp_path):
    """On a phone-width screen every section fits; wide tables scroll inside their own box."""
    out = write_report(demo.assessment, demo.spec, tmp_path / "report.html", store=demo_store)
    page = browser_page
    page.set_viewport_size({"width": 400, "height": 900})
    page.goto(out.as_uri(), wait_until="load")
    wide = page.evaluate(
        """() => [...document.querySelectorAll('section')]
                 .filter(s => s.scrollWidth > s.clientWidth + 1)
                 .map(s => [s.id, ...[...s.querySelectorAll('*')]
                   .filter(e => !e.closest('.table-wrap') && e.getBoundingClientRect().right
                                > s.getBoundingClientRect().right + 1)
                   .map(e => `${e.tagName}.${e.className}: ${(e.textContent || '').slice(0, 40)}`).slice(0, 3)])"""
    )
    assert wide == []
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 400
    assert page.locator("section .table-wrap table").count() >= 10  # the tables are there, wrapped
