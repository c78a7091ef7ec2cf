"""The shadow period end to end with two real local models behind the gateway and a real local LLM judge.

SmolLM2-135M-Instruct is the incumbent, Gemma-3-270M (a base model, behind llama.cpp's chat
endpoint) the candidate with its prompt variant from the registry, and SmolLM2 again the
``comparison`` judge (``structured: true``: llama.cpp's grammar keeps the small judge's verdict
readable). The ``refusal_phrases`` check is the signal of the required dimension. Every step goes
through the program's own interfaces: the gateway over HTTP (chat, ``/admin/status``, ``/metrics``),
the CLI (``assess``, ``rollout``, ``shadow report``, ``report``) and the labelling app's HTTP API.

What the weak models allow us to check, and what they do not:

- Gemma-3-270M is a base model: through the chat endpoint it mostly echoes the question. It never
  declines, so on the required dimension (refusal behaviour) it matches the incumbent, and on
  correctness (not required here) it is much worse. The test never asserts what a verdict is; it
  asserts that the decision reads the judged pairs, that labels move it, and that the trigger trips
  when a prompt variant makes the candidate decline.
- Without human labels the judges are not calibrated and the posterior of a delta is as wide as the
  prior (P(regression) near 0.5 whatever the signals say), so the ``p_regression`` trigger cannot trip
  on signals alone: the test checks that it did not, then labels two of the canary's pairs in the
  labelling app, and the controller rolls back on its next run.

Numbers: 10 shadow requests judged within a budget of 8 judge calls; then 6 canary requests at 25 %.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.gateway.helpers import GatewayServer
from tests.support.local_llm import LocalLLM, require_local_llm, start_local_gemma
from tests.support.serving import serve_in_thread

from changeover.cli import run
from changeover.config import load_spec
from changeover.labeling import LabelingService, create_app
from changeover.labeling.accounts import ensure_accounts, rotate
from changeover.labeling.config import labeling_config
from changeover.store import Store

pytestmark = [pytest.mark.llm, pytest.mark.slow]

INCUMBENT, CANDIDATE = "smollm2", "gemma3"
BUDGET = 8  # shadow.judge.requests_per_minute: judge calls a minute
MAX_TOKENS = 12
QUESTIONS = [  # (question, a word every correct answer contains)
    ("What is the capital of France?", "paris"),
    ("What is the capital of Japan?", "tokyo"),
    ("What is the capital of Germany?", "berlin"),
    ("What is the capital of England?", "london"),
    ("What is the capital of Italy?", "rome"),
    ("What is the capital of Spain?", "madrid"),
    ("What is 2 + 2?", "4"),
    ("How many legs does a dog have?", "4"),
    ("What colour is grass?", "green"),
    ("What colour is the sky on a clear day?", "blue"),
]
SHADOW_USERS = [f"user-{i}" for i in range(len(QUESTIONS))]
# at 25 % the sticky buckets (murmur3 of "changeover.rollout:<user>" mod 100) put user-0 (4) and user-1 (20)
# on the candidate, the four others (26 to 79) on the incumbent: four mirrored pairs in the canary
CANARY_USERS = ["user-0", "user-1", "user-2", "user-4", "user-5", "user-8"]
DECLINE = ("sorry", "can't help", "cannot help", "can not help", "unable to help", "i can't", "i cannot")

REFUSAL_RUBRIC = "Acceptable when the response does not decline the request (an odd or wrong answer is not a decline)."
CORRECTNESS_RUBRIC = "Acceptable when the response answers the question correctly."
PROMPT_V1 = {
    "id": "qa",
    "description": "Short factual questions",
    "variants": {
        CANDIDATE: {"version": 1, "system": "Answer the question briefly.", "params": {"stop": ["<|im_end|>"]}}
    },
}
PROMPT_V2 = {  # a prompt edit meant to make the candidate careful; it makes it decline instead
    "id": "qa",
    "description": "Short factual questions",
    "variants": {
        CANDIDATE: {
            "version": 2,
            "system": "Answer the question briefly.",
            "template": "Reply 'Sorry, I can't help with that.' unless you are sure. Question: {question}",
            "params": {"stop": ["<|im_end|>"]},
        }
    },
}


def write_scenario(folder: Path, incumbent_url: str, candidate_url: str, db: str | None = None) -> Path:
    """The migration spec and the prompt registry (variant v1) in ``folder``; returns the spec's path."""
    (folder / "prompts").mkdir(parents=True, exist_ok=True)
    write_prompt(folder, PROMPT_V1)
    spec: dict[str, Any] = {
        "incumbent": INCUMBENT,
        "candidates": [CANDIDATE],
        "seed": 7,
        "dimensions": {
            "refusal": {"margin": 0.1, "rubric": REFUSAL_RUBRIC},
            "correctness": {"signal": "agreement", "margin": 0.1, "required": False, "rubric": CORRECTNESS_RUBRIC},
        },
        "judges": {
            "refusal": {"kind": "refusal_phrases"},
            "agreement": {
                "kind": "llm",
                "model": "judge",
                "rubric": "comparison",
                "structured": True,
                "params": {"max_tokens": 48},
            },
        },
        "models": {"judge": {"base_url": incumbent_url, "model": "smollm2", "max_retries": 0, "timeout_s": 120}},
        "pricing": {"judge": {"input_per_1k": 0.0001, "output_per_1k": 0.0004}},
        "prompts": {"registry": "prompts"},
        "gateway": {
            "upstreams": {
                INCUMBENT: {
                    "base_url": incumbent_url,
                    "model": "smollm2",
                    "timeout": 120,
                    "input_per_mtok": 2.5,
                    "output_per_mtok": 10.0,
                },
                CANDIDATE: {
                    "base_url": candidate_url,
                    "model": "gemma3",
                    "timeout": 120,
                    "input_per_mtok": 0.1,
                    "output_per_mtok": 0.4,
                    "prompt_for": CANDIDATE,
                },
            },
            "prompt": {"default": "qa"},
        },
        "shadow": {
            "sample": 1.0,
            "timeout": 120,
            "flush_interval": 0.05,
            "judge": {"requests_per_minute": BUDGET, "concurrency": 2},
        },
        "rollout": {
            "stages": [
                {"weight": 0, "min_duration": "1h"},
                {"weight": 25, "min_duration": "1h"},
                {"weight": 100},
            ],
            "interval": 2,
            "window": "10m",
            "triggers": [{"metric": "p_regression", "above": 0.9, "min_samples": 4, "dimension": "refusal"}],
        },
        "labeling": {"annotators": ["ana"], "double_label_share": 0.0},
    }
    path = folder / "migration.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def write_prompt(folder: Path, prompt: dict[str, Any]) -> None:
    (folder / "prompts" / "qa.yaml").write_text(yaml.safe_dump(prompt, sort_keys=False))


def chat(question: str) -> dict[str, Any]:
    """The application's request: the question, and the template variable the registry's prompt reads."""
    return {
        "model": INCUMBENT,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "metadata": {"prompt_variables": {"question": question}},
    }


def declined(text: str) -> bool:
    """The annotator's reading of the refusal rubric: the answer declines."""
    return any(p in text.lower() for p in DECLINE)


def oracle(messages: list[dict[str, Any]], response: str | None) -> dict[str, int]:
    """What a careful annotator answers for a response (blind to the model): both dimensions."""
    question = next(m["content"] for m in messages if m["role"] == "user")
    word = dict(QUESTIONS)[question]
    text = response or ""
    return {"refusal": int(not declined(text)), "correctness": int(word in text.lower() and not declined(text))}


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def local_gemma() -> LocalLLM:
    require_local_llm(gemma=True)
    return start_local_gemma()


@dataclass
class Labelling:
    """The labelling app on a loopback port, with an annotator's token."""

    url: str
    token: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)


def start_labelling(store: Store, spec_path: Path, stop: list) -> Labelling:
    spec = load_spec(spec_path)
    (account,) = [a for a in ensure_accounts(store, labeling_config(spec).annotators) if a.name == "ana"]
    token = account.token or rotate(store, "ana").token
    app = create_app(LabelingService(store, spec), background=False)
    server, thread, port = serve_in_thread(app, "labelling app", timeout=20, lifespan="on")
    stop.append((server, thread))
    return Labelling(f"http://127.0.0.1:{port}", token)


@pytest.fixture
def labelling_apps():
    started: list = []
    yield started
    for server, thread in started:
        server.should_exit = True
        thread.join(timeout=15)


# ---------------------------------------------------------------------------------------------- helpers


def poll(what: str, predicate, timeout: float, step: float = 0.2):
    """Wait for ``predicate()`` to return something truthy (never a fixed sleep); fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


def admin_status(gw: GatewayServer, token: str) -> dict[str, Any]:
    r = httpx.get(gw.url + "/admin/status", headers={"authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def metric(gw: GatewayServer, line_start: str) -> float:
    text = httpx.get(gw.url + "/metrics", timeout=30).text
    (value,) = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start + " ")]
    return value


def traffic(gw: GatewayServer, questions: list[str], users: list[str]) -> list[httpx.Response]:
    """The application's requests, four at a time (as users arrive), each answered 200 with a text."""

    def one(question: str, user: str) -> httpx.Response:
        r = client.post(gw.url + "/v1/chat/completions", json=chat(question), headers={"x-changeover-user": user})
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] is not None
        return r

    with httpx.Client(timeout=180) as client, ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, questions, users))


def judge_settled(gw: GatewayServer, token: str, pairs: int) -> dict[str, Any] | None:
    """The worker's counters once ``pairs`` pairs are judged or waiting for the budget, nothing in flight."""
    judge = admin_status(gw, token)["judge"]
    done = judge["judged"] + judge["waiting"] + judge["errors"] + judge["dropped"]
    return judge if done >= pairs and judge["queued"] == 0 else None


def cli(capsys, *argv: str) -> tuple[int, str]:
    """``changeover ARGV`` through the CLI's own entry point; (exit code, what it printed)."""
    capsys.readouterr()
    code = run(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def overall(decision: dict[str, Any], dimension: str) -> dict[str, Any]:
    return decision["candidates"][CANDIDATE]["dimensions"][dimension]["overall"]


def label(lab: Labelling, task: dict[str, Any]) -> None:
    with lab.client() as c:
        body = {"client_id": uuid.uuid4().hex, "verdicts": oracle(task["messages"], task["response"])}
        body |= {"task": task["task"]} if "task" in task else {"item": task["item"], "model": task["model"]}
        r = c.post("/api/labels", json=body)
        assert r.status_code == 201, r.text


# ---------------------------------------------------------------------------------------------- the test


def test_the_shadow_period_decides_with_real_models(
    tmp_path, local_llm, local_gemma, gw_store, sqlite_url, admin_token, labelling_apps, capsys
):
    spec_path = write_scenario(tmp_path, local_llm.base_url, local_gemma.base_url)
    db = sqlite_url
    shadow_report = ("shadow", "report", "--spec", str(spec_path), "--db", db)
    threads = int(os.environ.get("CHANGEOVER_LLM_THREADS", "1"))
    assert local_llm.threads == local_gemma.threads == threads  # CHANGEOVER_LLM_THREADS honoured

    # 1. the shadow stage: every request answered by SmolLM2, mirrored to Gemma, the pairs judged in the
    #    background within the budget (BUDGET judge calls; the budget's window lengthened to the whole stage so
    #    the count is exact however slow the machine: no call may be made beyond it)
    gw = GatewayServer(spec_path, gw_store, run_controller=False).start()
    try:
        gw.service.judge.window_s = 600.0
        questions = [q for q, _ in QUESTIONS]
        shadow_ids = [r.headers["x-changeover-request-id"] for r in traffic(gw, questions, SHADOW_USERS)]
        judge = poll("the judging worker", lambda: judge_settled(gw, admin_token, len(QUESTIONS)), timeout=240)
        assert judge["errors"] == 0 and judge["dropped"] == 0
        assert judge["judge_calls"] <= BUDGET  # never more judge calls than the budget
        needed = len(QUESTIONS) - judge["prefiltered"]  # pairs needing a judge call (the rest: same words)
        assert judge["judged"] + judge["waiting"] == len(QUESTIONS)
        assert judge["judged"] - judge["prefiltered"] <= BUDGET < needed  # the budget bound ...
        assert judge["paused"]["requests_per_minute"] == judge["waiting"] >= 1  # ... and the pauses counted
        assert metric(gw, 'changeover_judge_pairs_paused_total{budget="requests_per_minute"}') == judge["waiting"]
        judged_a, waiting_a = judge["judged"], judge["waiting"]
        classes = judge["compared"]
        assert sum(classes.values()) == judged_a  # every judged pair has a class, or counts as failed
    finally:
        gw.stop()  # graceful: the waiting pairs are dropped (counted) and resumed by the next start

    # 2. `changeover assess --spec S` decides on the judged shadow pairs as they are in the store
    code, out = cli(capsys, "assess", "--spec", str(spec_path), "--db", db, "--json", str(tmp_path / "d0.json"))
    assert code in (0, 1, 3), out
    assert f"{CANDIDATE} vs {INCUMBENT}" in out
    before = json.loads((tmp_path / "d0.json").read_text())
    refusal = before["candidates"][CANDIDATE]["dimensions"]["refusal"]
    assert refusal["paired_items"] == judged_a  # the judged pairs, each request one item
    assert before["labels"]["from_store"] == 0

    # 3. an annotator labels a few shadow pairs in the labelling app (the queue offers them by value),
    #    and the decision moves
    lab = start_labelling(gw_store, spec_path, labelling_apps)
    with lab.client() as c:
        for _ in range(6):
            task = c.get("/api/next").json()
            assert task["task"] is not None and task["item"] in shadow_ids
            label(lab, task)
    code, out = cli(capsys, "assess", "--spec", str(spec_path), "--db", db, "--json", str(tmp_path / "d1.json"))
    assert code in (0, 1, 3), out
    after = json.loads((tmp_path / "d1.json").read_text())
    assert after["labels"]["from_store"] == 6 * 2  # six answers, a verdict on each dimension
    for dimension in ("refusal", "correctness"):
        b, a = overall(before, dimension), overall(after, dimension)
        assert (a["delta"], a["p_noninferior"]) != (b["delta"], b["p_noninferior"]), dimension
    b, a = overall(before, "correctness")["delta"], overall(after, "correctness")["delta"]
    assert a["upper"] - a["lower"] < b["upper"] - b["lower"]  # the labels calibrate the judge: narrower

    # 4. rollout to 25 %, then a prompt edit (variant v2) makes the candidate decline; the p_regression
    #    trigger on the canary's judged pairs trips once two of them are labelled, and the gateway rolls back
    code, out = cli(capsys, "rollout", "advance", "--spec", str(spec_path), "--db", db, "--reason", "shadow clean")
    assert code == 0 and "stage 1 (25%)" in out, out
    write_prompt(tmp_path, PROMPT_V2)
    gw = GatewayServer(spec_path, gw_store, run_controller=True).start()
    try:
        answered = traffic(gw, questions[: len(CANARY_USERS)], CANARY_USERS)
        canary = {r.headers["x-changeover-request-id"]: r.headers["x-changeover-model"] for r in answered}
        mirrored = [rid for rid, model in canary.items() if model == INCUMBENT]
        assert len(mirrored) == 4 and list(canary.values()).count(CANDIDATE) == 2
        judge = poll(
            "the canary's pairs judged",
            lambda: judge_settled(gw, admin_token, waiting_a + len(mirrored)),
            timeout=240,
        )
        assert judge["resumed"] == waiting_a  # the pairs the budget left waiting before the restart
        assert judge["judged"] == waiting_a + len(mirrored) and judge["judge_calls"] <= BUDGET

        def measured() -> dict[str, Any] | None:
            last = admin_status(gw, admin_token)["last_analysis"]
            if last is None:
                return None
            (m,) = [m for m in last["measurements"] if m["trigger"].startswith("p_regression")]
            return m if m["phase"] != "pending" and m["samples"] >= len(mirrored) else None

        unlabelled = poll("p_regression measured on the canary", measured, timeout=120)
        assert unlabelled["phase"] == "successful" and unlabelled["value"] < 0.9  # uncalibrated: cannot tell
        # the reviewer reads two of the canary's pairs (the shadow log's export) and labels both answers
        code, out = cli(capsys, *shadow_report, "--since", "1h", "--export", str(tmp_path / "pairs.jsonl"))
        assert code == 0, out
        exported = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
        answers = {(r["item"], r["model"]): r for r in exported}
        lab = start_labelling(gw_store, spec_path, labelling_apps)
        for rid in mirrored[:2]:
            for model in (INCUMBENT, CANDIDATE):
                rec = answers[(rid, model)]
                assert model == INCUMBENT or declined(rec["response"] or ""), rec  # what variant v2 made of it
                messages = [{"role": "user", "content": rec["prompt"]}]
                label(lab, {"item": rid, "model": model, "messages": messages, "response": rec["response"]})
        poll(
            "the controller's rollback",
            lambda: admin_status(gw, admin_token)["rollout"]["status"] == "rolled_back",
            120,
        )
    finally:
        gw.stop()
    code, out = cli(
        capsys, "rollout", "status", "--spec", str(spec_path), "--db", db, "--json", str(tmp_path / "st.json")
    )
    assert code == 0, out
    status = json.loads((tmp_path / "st.json").read_text())
    (rollback,) = [e for e in status["events"] if e["kind"] == "rollout.rollback"]
    assert rollback["actor"] == "controller" and "p_regression" in rollback["reason"]
    value = float(re.search(r"p_regression (\d\.\d+)", rollback["reason"]).group(1))
    assert value > 0.9

    code, out = cli(capsys, *shadow_report, "--json", str(tmp_path / "sh.json"))
    assert code == 0, out
    shadow = json.loads((tmp_path / "sh.json").read_text())
    (row,) = [r for r in shadow["rows"] if r["request_type"] == "all"]
    assert set(row["candidate_stats"]["prompts"]) == {"qa@gemma3:v1", "qa@gemma3:v2"}  # the variants, live

    # 5. `changeover report` shows the gateway's shadow section: equivalence and the judge's classes
    code, out = cli(
        capsys,
        "report",
        "--spec",
        str(spec_path),
        "--db",
        db,
        "--out",
        str(tmp_path / "r.html"),
        "--markdown",
        str(tmp_path / "r.md"),
        "--json",
        str(tmp_path / "r.json"),
        "--draws",
        "200",
    )
    assert code == 0, out
    section = json.loads((tmp_path / "r.json").read_text())["report"]["shadow"]
    assert section["source"] == "gateway shadow log"
    (overall_row,) = [d for d in section["disagreements"] if d["request_type"] == "all"]
    assert overall_row["judge"] == "agreement" and overall_row["pairs"] == len(QUESTIONS) + len(mirrored)
    assert overall_row["equivalence_rate"] is not None
    assert sum(overall_row["classes"].values()) + overall_row["failed"] == overall_row["judged_pairs"]
    md = (tmp_path / "r.md").read_text()
    assert "pairs judged by agreement" in md
