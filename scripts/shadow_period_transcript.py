"""Regenerate docs/gateway.md's shadow-period transcript from what the program really prints.

The scenario of tests/gateway/test_shadow_period_real_models.py (SmolLM2-135M as the incumbent,
Gemma-3-270M as the candidate, SmolLM2 as the comparison judge, all on llama.cpp via xllamacpp on
loopback), run through the real programs: ``changeover serve`` and ``changeover label serve`` as
processes, the CLI as processes, the traffic and the annotator's clicks as HTTP requests from this
script. Every ``$`` line is followed by what that program printed (login tokens elided).
The block between the ``shadow-period-transcript`` markers in docs/gateway.md is replaced.

    .venv/bin/python scripts/shadow_period_transcript.py            # ~3 min on a busy 2-core machine
    .venv/bin/python scripts/shadow_period_transcript.py --print    # print it, leave the docs alone
    .venv/bin/python scripts/shadow_period_transcript.py --verbose  # also show each step as it runs
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.gateway.test_shadow_period_real_models import (  # noqa: E402
    CANARY_USERS,
    CANDIDATE,
    INCUMBENT,
    PROMPT_V2,
    QUESTIONS,
    SHADOW_USERS,
    chat,
    oracle,
    write_prompt,
    write_scenario,
)

from changeover.providers.llamacpp import LlamaCppServer, gemma3_gguf  # noqa: E402

DOC = ROOT / "docs" / "gateway.md"
BEGIN, END = "<!-- shadow-period-transcript -->", "<!-- /shadow-period-transcript -->"
TOKEN = "demo-token"
DB = "sqlite:///shadow.db"
EXE = str(Path(sys.executable).parent / "changeover")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait(what: str, predicate: Callable[[], Any], timeout: float = 300.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


class Session:
    """Runs commands in the scenario's folder and keeps the transcript."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1", "CHANGEOVER_ADMIN_TOKEN": TOKEN}
        self.lines: list[str] = []
        self.echo = "--verbose" in sys.argv

    def say(self, *lines: str) -> None:
        self.lines += [line.rstrip() for line in lines]
        if self.echo:  # progress, as it happens
            print(*(line.rstrip() for line in lines), sep="\n", file=sys.stderr, flush=True)

    def cli(self, *args: str, shown: str | None = None, keep: Callable[[str], bool] | None = None) -> str:
        """``changeover ARGS`` as a process; its output in the transcript (``keep``: only those lines)."""
        done = subprocess.run([EXE, *args], cwd=self.folder, env=self.env, capture_output=True, text=True)
        out = done.stdout + done.stderr
        self.say("$ " + (shown or "changeover " + shlex.join(args)))
        self.say(*[line for line in out.splitlines() if keep is None or keep(line)])
        if done.returncode != 0:
            self.say(f"exit {done.returncode}")
        return out

    def start(self, args: list[str], shown: str, ready: str, first_lines: int = 1) -> subprocess.Popen:
        """A server process (``changeover serve`` / ``label serve``) and the first lines it printed."""
        proc = subprocess.Popen(
            [EXE, *args], cwd=self.folder, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        wait(shown, lambda: httpx.get(ready, timeout=2).status_code in (200, 401) or proc.poll() is not None, 120)
        if proc.poll() is not None:
            raise RuntimeError(f"{shown} exited: {proc.stdout.read() if proc.stdout else ''}")
        self.say("$ " + shown)
        assert proc.stdout is not None
        self.say(*[proc.stdout.readline() for _ in range(first_lines)])
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen) -> None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def send(url: str, questions: list[str], users: list[str]) -> list[httpx.Response]:
    def one(question: str, user: str) -> httpx.Response:
        r = client.post(url + "/v1/chat/completions", json=chat(question), headers={"x-changeover-user": user})
        r.raise_for_status()
        return r

    with httpx.Client(timeout=300) as client, ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, questions, users))


def judge_status(url: str) -> dict[str, Any]:
    r = httpx.get(url + "/admin/status", headers={"authorization": f"Bearer {TOKEN}"}, timeout=30)
    if r.status_code != 200:
        raise RuntimeError(f"/admin/status answered {r.status_code}: {r.text[:2000]}")
    return r.json()


def settled(url: str, pairs: int) -> bool:
    j = judge_status(url)["judge"]
    return j["judged"] + j["waiting"] + j["errors"] + j["dropped"] >= pairs and j["queued"] == 0


def metrics(s: Session, url: str, port: int, pattern: str) -> None:
    text = httpx.get(url + "/metrics", timeout=30).text
    s.say(f'$ curl -s localhost:{port}/metrics | grep -E "{pattern}"')
    s.say(*[line for line in text.splitlines() if re.search(pattern, line)])


def labelling_app(s: Session, token: str | None = None) -> tuple[subprocess.Popen, str, str]:
    """``changeover label serve`` as a process: its URL and the annotator ana's token (from its login link, printed
    on the first start only)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["label", "serve", "--spec", "migration.yaml", "--db", DB, "--port", str(port)]
    proc = subprocess.Popen(
        [EXE, *args], cwd=s.folder, env=s.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    printed: list[str] = []
    while not printed or "serving on" not in printed[-1]:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("label serve exited: " + "".join(printed))
        printed.append(line)
        found = re.search(r"^\s+ana\s.*token=([A-Za-z0-9_\-]+)", line)
        token = found.group(1) if found else token
    if token is None:
        raise RuntimeError("no login link for ana: " + "".join(printed))
    wait("the labelling app", lambda: httpx.get(url + "/api/next", timeout=2).status_code == 401, 120)
    s.say(f"$ changeover label serve --spec migration.yaml --db {DB} --port {port} &")
    s.say(*[re.sub(r"token=[A-Za-z0-9_\-]+", "token=<elided>", line) for line in printed])
    return proc, url, token


def post_label(url: str, token: str, target: dict[str, str], messages: list[dict[str, Any]], response: str) -> dict:
    verdicts = oracle(messages, response)
    body = {"client_id": uuid.uuid4().hex, "verdicts": verdicts, **target}
    r = httpx.post(url + "/api/labels", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    r.raise_for_status()
    return verdicts


def clip(text: str | None, n: int = 60) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def scenario(s: Session, smol: LlamaCppServer, gemma: LlamaCppServer) -> None:
    folder = s.folder
    write_scenario(folder, smol.base_url, gemma.base_url)
    s.say(f"# SmolLM2-135M (incumbent, and the judge) on {smol.base_url}, Gemma-3-270M (candidate) on {gemma.base_url}")
    s.say("$ cat migration.yaml", *(folder / "migration.yaml").read_text().splitlines())
    s.say("$ cat prompts/qa.yaml", *(folder / "prompts" / "qa.yaml").read_text().splitlines())

    # the shadow stage
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = ["serve", "--spec", "migration.yaml", "--db", DB, "--port", str(port), "--no-controller"]
    gw = s.start(serve, f"CHANGEOVER_ADMIN_TOKEN={TOKEN} changeover {' '.join(serve)} &", url + "/healthz")
    questions = [q for q, _ in QUESTIONS]
    first = send(url, questions[:1], SHADOW_USERS[:1])[0]
    s.say(
        f"$ curl -s localhost:{port}/v1/chat/completions -H 'x-changeover-user: {SHADOW_USERS[0]}' "
        f"-d '{json.dumps(chat(questions[0]))}'",
        first.text,
    )
    rest = send(url, questions[1:], SHADOW_USERS[1:])
    served = [first, *rest]
    s.say(
        f"$ python traffic.py   # {len(rest)} more questions from {len(rest)} more users, 4 at a time",
        f"sent {len(served)} requests: {sum(r.headers['x-changeover-model'] == INCUMBENT for r in served)} "
        f"answered by {INCUMBENT}",
    )
    wait("the judging worker", lambda: settled(url, len(served)))
    metrics(s, url, port, r"^changeover_(mirror_sent|judge_(pairs|calls|compared|prefiltered))")
    s.say("$ kill -TERM %1   # the pairs still waiting for the budget are dropped, counted; the next start resumes")
    s.stop(gw)

    # not shown: one fit first, so numba's compiled sampler is in its cache (a first fit on a machine compiles it,
    # ~20 s of CPU) and the times printed below are those of a fit
    subprocess.run([EXE, "assess", "--spec", "migration.yaml", "--db", DB], cwd=folder, env=s.env, capture_output=True)
    s.cli("assess", "--spec", "migration.yaml", "--db", DB, "--json", "before.json")
    app, app_url, token = labelling_app(s)
    s.say("$ python annotate.py   # an annotator takes 6 responses from the queue (GET /api/next) and labels them")
    for _ in range(6):
        task = httpx.get(app_url + "/api/next", headers={"Authorization": f"Bearer {token}"}, timeout=30).json()
        verdicts = post_label(app_url, token, {"task": task["task"]}, task["messages"], task["response"])
        s.say(f"{task['item'][:8]}  {clip(task['response'])!r:64} -> {json.dumps(verdicts)}")
    s.stop(app)
    s.cli("assess", "--spec", "migration.yaml", "--db", DB, "--json", "after.json")

    # the canary: 25 %, and a prompt edit
    s.cli("rollout", "advance", "--spec", "migration.yaml", "--db", DB, "--reason", "shadow: refusal behaviour on par")
    write_prompt(folder, PROMPT_V2)
    s.say("$ vi prompts/qa.yaml   # variant v2: meant to make the candidate careful", "$ cat prompts/qa.yaml")
    s.say(*(folder / "prompts" / "qa.yaml").read_text().splitlines())
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = ["serve", "--spec", "migration.yaml", "--db", DB, "--port", str(port)]
    gw = s.start(serve, f"CHANGEOVER_ADMIN_TOKEN={TOKEN} changeover {' '.join(serve)} &", url + "/healthz")
    canary = send(url, questions[: len(CANARY_USERS)], CANARY_USERS)
    by_model = {m: sum(r.headers["x-changeover-model"] == m for r in canary) for m in (INCUMBENT, CANDIDATE)}
    s.say(
        f"$ python traffic.py   # {len(canary)} questions from {len(canary)} users",
        f"sent {len(canary)} requests: {by_model[INCUMBENT]} answered by {INCUMBENT} (mirrored), "
        f"{by_model[CANDIDATE]} by {CANDIDATE}",
    )
    mirrored = [r.headers["x-changeover-request-id"] for r in canary if r.headers["x-changeover-model"] == INCUMBENT]
    resumed = judge_status(url)["judge"]["resumed"]
    wait("the canary's pairs judged", lambda: settled(url, resumed + len(mirrored)))

    def p_regression_measured() -> bool:
        last = judge_status(url)["last_analysis"]
        return bool(last) and any(
            m["metric"] == "p_regression" and m["phase"] != "pending" for m in last["measurements"]
        )

    wait("p_regression measured", p_regression_measured)
    metrics(s, url, port, r"^changeover_judge_(pairs_judged|calls)|^changeover_trigger_value")
    s.cli("rollout", "status", "--spec", "migration.yaml", "--db", DB, "--events", "1")
    s.cli(
        "shadow", "report", "--spec", "migration.yaml", "--db", DB, "--since", "1h", "--examples", "1",
        "--export", "pairs.jsonl",
    )  # fmt: skip
    answers = {(r["item"], r["model"]): r for r in map(json.loads, (folder / "pairs.jsonl").read_text().splitlines())}
    app, app_url, token = labelling_app(s, token)
    s.say(
        "$ python annotate.py   # a reviewer labels both answers of two canary pairs (POST /api/labels by item, model)"
    )
    for rid in mirrored[:2]:
        for model in (INCUMBENT, CANDIDATE):
            rec = answers[(rid, model)]
            messages = [{"role": "user", "content": rec["prompt"]}]
            verdicts = post_label(app_url, token, {"item": rid, "model": model}, messages, rec["response"])
            s.say(f"{rid[:8]}  {model:8} {clip(rec['response'])!r:64} -> {json.dumps(verdicts)}")
    s.stop(app)
    wait("the rollback", lambda: judge_status(url)["rollout"]["status"] == "rolled_back", 180)
    s.cli("rollout", "status", "--spec", "migration.yaml", "--db", DB, "--events", "3")
    s.say("$ kill -TERM %1")
    s.stop(gw)
    s.cli("report", "--spec", "migration.yaml", "--db", DB, "--out", "report.html", "--markdown", "report.md")
    md = (folder / "report.md").read_text().splitlines()
    start = next(i for i, line in enumerate(md) if line.startswith("Shadow traffic:"))
    s.say("$ grep -A3 '^Shadow traffic' report.md", *md[start : start + 4])


def main() -> int:
    smol = LlamaCppServer().start()
    gemma = LlamaCppServer(gguf=gemma3_gguf(), model="gemma3").start()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        s = Session(Path(tmp))
        scenario(s, smol, gemma)
    text = "\n".join(s.lines) + "\n"
    took = time.monotonic() - started
    if "--print" in sys.argv:
        sys.stdout.write(text)
        print(f"({took:.0f} s)", file=sys.stderr)
        return 0
    doc = DOC.read_text(encoding="utf-8")
    block = re.compile(re.escape(BEGIN) + r"\n```text\n.*?```\n" + re.escape(END), re.S)
    if not block.search(doc):
        sys.stderr.write(f"{DOC} has no block between {BEGIN} and {END}\n")
        return 1
    DOC.write_text(block.sub(lambda _: f"{BEGIN}\n```text\n{text}```\n{END}", doc, count=1), encoding="utf-8")
    print(f"{DOC.name}: shadow-period transcript regenerated ({len(s.lines)} lines, {took:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
