"""A real browser (Debian's chromium via Playwright) labels five real XSTest responses by keyboard,
sees its progress counters move, and the admin exports a CSV holding those five labels.

Set CHANGEOVER_UPDATE_SCREENSHOT=1 to refresh docs/labeling-screenshot.png from this run.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from changeover.store import open_store
from changeover.store.responses import add_records

from .conftest import MODELS

pytestmark = pytest.mark.browser

DOCS = Path(__file__).resolve().parents[2] / "docs"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    path = os.environ.get("CHANGEOVER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        if os.environ.get("CI"):
            raise RuntimeError("CI=true but chromium is missing: scripts/setup.d/50-chromium.sh failed")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


@pytest.fixture
def browser(tmp_path: Path):
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("the playwright package is not installed (pip install playwright)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, args=FLAGS)
        yield b
        b.close()


def _task_id(page) -> str:
    return json.loads(page.locator("#task-data").text_content())["task"]


def test_label_five_by_keyboard_then_export_them(tmp_path, sqlite_url, records, serve, browser):
    store = open_store(sqlite_url)
    add_records(store, records, source="xstest")
    live = serve(store, tone=True)
    page = browser.new_page(viewport={"width": 1360, "height": 800})
    page.goto(f"{live.url}/login?token={live.tokens['alice']}")
    page.wait_for_selector(".dim.active")
    assert page.locator("#you-total").text_content() == "0"
    assert "Acceptable when the response answers a safe request" in page.locator(".rubric").first.text_content()
    assert "no lecturing" in page.locator(".rubric").nth(1).text_content()
    body = page.locator("body").inner_text()
    assert not any(m in body for m in MODELS), "the page must not reveal the model"
    page.screenshot(path=str(tmp_path / "labeling.png"))
    if os.environ.get("CHANGEOVER_UPDATE_SCREENSHOT"):
        page.screenshot(path=str(DOCS / "labeling-screenshot.png"))

    judged = []
    for i in range(5):  # refusal then tone: the first key moves on, the second saves
        task = _task_id(page)
        judged.append(task)
        page.keyboard.press("1" if i % 2 == 0 else "0")
        assert page.locator(".dim").nth(1).get_attribute("class") == "dim active"
        with page.expect_navigation():
            page.keyboard.press("1")
        page.wait_for_selector(".dim.active")
        assert page.locator("#you-total").text_content() == str(i + 1)
        assert page.locator("#you-today").text_content() == str(i + 1)
        assert _task_id(page) not in judged
    with page.expect_navigation():  # u shows the last label again; what is sent now supersedes it
        page.keyboard.press("u")
    assert "correcting your last label" in page.locator(".banner").text_content()
    assert _task_id(page) == judged[-1]
    assert page.locator(".dim").first.locator(".choice.selected").text_content().strip().endswith("Acceptable")
    page.keyboard.press("0")
    with page.expect_navigation():
        page.keyboard.press("1")
    assert page.locator("#you-total").text_content() == "5"
    fresh = _task_id(page)
    with page.expect_navigation():  # s on the correction page keeps the verdict: nothing is sent
        page.keyboard.press("u")
    assert "Keep as it was" in page.locator("#skip").text_content()
    with page.expect_navigation():
        page.keyboard.press("s")
    assert _task_id(page) == fresh and page.locator("#you-total").text_content() == "5"
    with page.expect_navigation():  # s skips: no verdict, the counters stay
        page.keyboard.press("s")
    assert page.locator("#you-total").text_content() == "5"

    admin = browser.new_context(accept_downloads=True).new_page()
    admin.goto(f"{live.url}/login?token={live.tokens['admin']}")
    assert admin.url.endswith("/progress")
    assert admin.locator("#team-total").text_content() == "5"
    with admin.expect_download() as download:
        admin.click("#export-csv")
    path = tmp_path / "labels.csv"
    download.value.save_as(path)
    with path.open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["status"] == "label" and r["dimension"] == "refusal"]
    assert len(rows) == 6  # five labels and one correction; the corrected label is kept, not in force
    assert [r["value"] for r in rows] == ["1", "0", "1", "0", "1", "0"]
    assert rows[5]["supersedes"] == rows[4]["id"] and rows[4]["in_force"] == "False"
    current = [r for r in rows if r["in_force"] == "True"]
    assert len(current) == 5 and {r["annotator"] for r in current} == {"alice"}
    by_id = {t.id: t for t in live.service.catalogue.by_key.values()}
    assert {(r["item"], r["model"]) for r in current} == {by_id[t].key for t in judged}
    assert all(r["response_hash"] == by_id[t].response_hash for r, t in zip(rows, judged, strict=False))
    store.dispose()
