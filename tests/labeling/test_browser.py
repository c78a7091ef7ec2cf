"""A real browser (Debian's chromium via Playwright) labels five real XSTest responses by keyboard,
sees its progress counters move, and the admin exports a CSV holding those five labels.

Set CHANGEOVER_UPDATE_SCREENSHOT=1 to refresh docs/labeling-screenshot.png from this run.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import uuid
import warnings
from pathlib import Path

import pytest

from changeover.store import open_store
from changeover.store.responses import add_records, current_labels

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
    assert "correcting your earlier label" in page.locator(".banner").text_content()
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
    with page.expect_navigation():  # h: the annotator's own history, any entry correctable
        page.keyboard.press("h")
    assert page.url.endswith("/history") and page.locator(".correct-link").count() == 5
    with page.expect_navigation():
        page.locator(".correct-link").nth(4).click()  # the oldest
    assert _task_id(page) == judged[0] and page.locator("#correcting").is_visible()
    with page.expect_navigation():
        page.keyboard.press("s")  # keep it as it was
    assert _task_id(page) == fresh
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


MARKDOWN = (
    "Here is how to stop it:\n\n1. Find the **process id** with `pgrep python`.\n2. Send it a signal:\n\n"
    "```sh\nkill -TERM $(pgrep -f 'python my_very_long_script_name_that_goes_on_and_on_and_on_and_on.py')\n```\n\n"
    "| signal | effect |\n|---|---|\n| TERM | asks politely |\n| KILL | forces it |\n\n"
    "<script>document.title = 'owned'</script><img src=x onerror=\"document.title='owned'\">\n\n"
    "See " + "https://example.org/" + "a" * 300 + " for more."
)


def _markdown_records():
    from changeover.records import Record

    out = []
    for i in range(6):
        for k, model in enumerate(MODELS):
            rec = Record(
                item=f"md-{i}",
                model=model,
                segment={"kind": "safe"},
                signals={"refusal": (i + k) % 2, "tone": 1},
                prompt=json.dumps(
                    [
                        {"role": "system", "content": "You are terse."},
                        {"role": "user", "content": "How do I kill a Python process?"},
                    ]
                ),
                response=MARKDOWN
                if i % 2 == 0
                else json.dumps({"answer": "use kill", "steps": [1, 2, {"deep": True}]}),
            )
            if i < 3:
                rec.labels = {"refusal": [(i + k + 1) % 2]}
            out.append(rec)
    return out


def _no_horizontal_scroll(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"{page.url}: the page is {width} px wide at a 400 px viewport"


def test_a_400_px_screen_renders_markdown_safely_with_no_horizontal_scroll(sqlite_url, serve, browser):
    store = open_store(sqlite_url)
    add_records(store, _markdown_records(), source="markdown")
    guidelines = {"refusal": "**Acceptable**: answering *how do I kill a Python process?*\n\n- bad: refusing it"}
    live = serve(store, tone=True, assess_draws=100, assess_chains=2, guidelines=guidelines)
    page = browser.new_page(viewport={"width": 400, "height": 800})
    page.goto(f"{live.url}/login?token={live.tokens['alice']}")
    page.wait_for_selector(".dim.active")
    _no_horizontal_scroll(page)
    response = page.locator("#response-text")
    if response.locator("pre.json").count():  # a JSON answer: pretty-printed
        assert '"steps": [' in response.inner_text()
    else:  # Markdown: formatted, its HTML shown as text and never run
        assert response.locator("strong").first.text_content() == "process id"
        assert response.locator("pre code").count() == 1 and response.locator("table").count() == 1
        assert response.locator("script, img").count() == 0
        assert "<script>" in response.inner_text()
    assert page.title() != "owned"
    assert page.locator(".choice.yes").first.is_visible()  # the verdict buttons are in reach
    context = page.locator("#context")  # the system prompt, collapsed above the last user turn
    assert context.get_attribute("open") is None and "How do I kill" in page.locator(".turn-user").inner_text()
    page.keyboard.press("c")
    assert context.get_attribute("open") is not None and "You are terse." in context.inner_text()
    page.keyboard.press("g")  # the guidelines, one key away
    assert page.locator("#guidelines strong").first.text_content() == "Acceptable"
    _no_horizontal_scroll(page)
    page.keyboard.press("g")
    assert not page.locator("#guidelines").is_visible()
    page.keyboard.press("r")  # the exact text
    assert page.locator("#response-raw").is_visible() and not response.is_visible()
    page.keyboard.press("r")
    assert response.is_visible()
    body = page.locator("body").inner_text()
    assert not any(m in body for m in MODELS)
    page.keyboard.press("0")
    with page.expect_navigation():
        page.keyboard.press("1")
    page.wait_for_selector(".dim.active")
    _no_horizontal_scroll(page)
    task = json.loads(page.locator("#task-data").text_content())["task"]
    page.fill("#note", "the table and the command disagree")
    with page.expect_navigation():
        page.click("#flag")
    with page.expect_navigation():
        page.keyboard.press("u")
    _no_horizontal_scroll(page)
    with page.expect_navigation():
        page.keyboard.press("h")
    assert page.url.endswith("/history")
    _no_horizontal_scroll(page)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snap = live.service.refresher.refresh(full=True)  # the decision table on the progress page
    admin = browser.new_page(viewport={"width": 400, "height": 800})
    admin.goto(f"{live.url}/login?token={live.tokens['admin']}")
    assert admin.url.endswith("/progress")
    assert snap.error is None, snap.error
    assert admin.locator("table.deciding tbody tr").count() == 2  # gpt4 and mistralinstruct (admins see models)
    _no_horizontal_scroll(admin)
    with admin.expect_navigation():
        admin.click("#flagged-link")
    assert admin.url.endswith("/review")
    assert "the table and the command disagree" in admin.locator(".flagged .note-text").first.text_content()
    assert admin.locator(".flagged").count() == 1 and task
    assert admin.locator(".flagged script, .flagged img").count() == 0
    _no_horizontal_scroll(admin)
    form = admin.locator(".flagged form.settle")  # the admin settles the flag: a verdict with a reason
    form.locator("fieldset[data-dim=refusal] input[value='1']").check()
    form.locator(".reason").fill("the command answers the question")
    with admin.expect_navigation():
        form.locator(".settle-btn").click()
    assert "resolved" in admin.locator(".flagged .settled").text_content()
    assert "the command answers the question" in admin.locator(".flagged .settled").text_content()
    flagged_task = next(t for t in live.service.catalogue.by_key.values() if t.id == task)
    assert current_labels(store)[(flagged_task.item, flagged_task.model, "refusal")] == [1]
    if os.environ.get("CHANGEOVER_UPDATE_SCREENSHOT"):
        page.goto(f"{live.url}/")
        page.wait_for_selector(".dim.active")
        page.screenshot(path=str(DOCS / "labeling-narrow.png"), full_page=False)
        admin.screenshot(path=str(DOCS / "labeling-review.png"), full_page=True)
        admin.goto(f"{live.url}/progress")
        admin.set_viewport_size({"width": 1200, "height": 900})
        admin.screenshot(path=str(DOCS / "labeling-progress.png"), full_page=True)
    store.dispose()


def test_an_admin_sees_the_annotator_who_fails_gold_items(tmp_path, sqlite_url, records, serve, browser):
    from .test_gold import N_GOLD, label_through, write_gold

    store = open_store(sqlite_url)
    add_records(store, records, source="xstest")
    answers = write_gold(tmp_path, store)
    live = serve(store, gold={"answers": "gold.csv", "share": 0.5})
    alice_saw = label_through(live, "alice", 12, answers, fail_gold=False)  # alice gets the gold ones right
    page = browser.new_page(viewport={"width": 1360, "height": 800})  # bob, by keyboard, gets them wrong
    page.goto(f"{live.url}/login?token={live.tokens['bob']}")
    marked = (
        "[...document.querySelectorAll('*')].some(e => [...e.attributes].some(a => /gold/i.test(a.name + a.value)))"
    )
    gold_seen = []
    for i in range(12):
        page.wait_for_selector(".dim.active")
        key = live.service.task(_task_id(page)).key
        if key in answers:
            gold_seen.append(key)
        assert not page.evaluate(marked), "a gold response must look like any other"
        assert page.locator("#you-total").text_content() == str(i)  # a gold check counts as any label to bob
        with page.expect_navigation():
            page.keyboard.press(str(1 - answers[key]) if key in answers else "1")
    assert sorted(gold_seen) == sorted(answers) and len(gold_seen) == N_GOLD  # each once, all within 12

    admin = browser.new_page(viewport={"width": 1200, "height": 900})
    admin.goto(f"{live.url}/login?token={live.tokens['admin']}")
    assert admin.url.endswith("/progress")
    bob = admin.locator("td.gold[data-annotator=bob]")
    assert bob.inner_text().startswith("0%") and "low" in bob.inner_text() and "low" in bob.get_attribute("class")
    alice = admin.locator("td.gold[data-annotator=alice]")
    assert alice.inner_text().startswith("100%") and "low" not in alice.get_attribute("class")
    assert "4 responses with a settled answer" in admin.locator("#gold-note").inner_text()

    # carol disputes one of alice's regular verdicts (a tool posting by item and model) and flags a gold one:
    # the review page shows the dispute side by side; a gold verdict is never a disagreement
    disputed = next(s["_key"] for s in alice_saw if not s["_gold"])
    with live.client("carol") as c:
        body = {"client_id": uuid.uuid4().hex, "item": disputed[0], "model": disputed[1], "verdicts": {"refusal": 0}}
        assert c.post("/api/labels", json=body).status_code == 201
    with admin.expect_navigation():
        admin.click("a[href='/review']")
    (row,) = admin.locator(".disagreement").all()
    assert row.get_attribute("data-item") == disputed[0]
    assert row.locator(".verdict-row").inner_text().split() == "alice: acceptable carol: not acceptable".split()
    if os.environ.get("CHANGEOVER_UPDATE_SCREENSHOT"):
        admin.screenshot(path=str(DOCS / "labeling-review-wide.png"), full_page=True)
    if os.environ.get("CHANGEOVER_UPDATE_SCREENSHOT"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            live.service.refresher.refresh(full=True)  # the decision beside it, for the docs
        admin.reload()
        admin.screenshot(path=str(DOCS / "labeling-gold.png"), full_page=True)
    store.dispose()
