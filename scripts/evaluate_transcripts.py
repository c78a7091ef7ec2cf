"""Regenerate the transcripts of docs/evaluate.md: real `changeover` runs against the fake OpenAI server.

The fake server (tests/support/fake_openai.py) speaks the real wire protocol on
loopback; its models are scripted as in tests/evaluate (a candidate that refuses
``max_tokens`` like a newer API, a two-tool agent and a candidate that drops a
call). Prints each command and its output, paths relative to a scratch folder.

    python scripts/evaluate_transcripts.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.evaluate.agents import AGENT_JUDGES, agent_rows, setup_agents  # noqa: E402
from tests.evaluate.helpers import setup_fake, spec_dict, traffic_rows, write_traffic  # noqa: E402
from tests.support.fake_openai import UNSUPPORTED_MAX_TOKENS, FakeOpenAI  # noqa: E402


def changeover(workdir: Path, *args: str) -> None:
    print("$ changeover " + " ".join(args))
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"}
    proc = subprocess.run(
        [sys.executable, "-c", "from changeover.cli import main; main()", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    print("\n".join(line.rstrip() for line in (proc.stdout + proc.stderr).rstrip().splitlines()))
    print(f"$ echo $?\n{proc.returncode}\n")


def main() -> None:
    with FakeOpenAI() as fake, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        setup_fake(fake)
        fake.set("new-model", reject_params={"max_tokens": UNSUPPORTED_MAX_TOKENS})
        raw = spec_dict(fake.base_url)
        (work / "migration.yaml").write_text(yaml.safe_dump(raw))
        write_traffic(work / "traffic.jsonl", traffic_rows(40))
        print("--- request compatibility")
        changeover(work, "doctor", "--spec", "migration.yaml", "--prompts", "traffic.jsonl")
        raw["models"]["new-model"]["param_map"] = {"max_tokens": "max_completion_tokens"}
        (work / "migration.yaml").write_text(yaml.safe_dump(raw))
        changeover(work, "evaluate", "--check", "--spec", "migration.yaml", "--prompts", "traffic.jsonl")

        print("--- agent replay")
        setup_agents(fake)
        agent = spec_dict(fake.base_url)
        agent["dimensions"] = {"tool_use": {"margin": 0.05}, "tool_order": {"margin": 0.05}}
        agent["judges"] = {k: v for k, v in AGENT_JUDGES.items() if k != "no_extra_calls"}
        (work / "agent.yaml").write_text(yaml.safe_dump(agent))
        write_traffic(work / "agent.jsonl", agent_rows(*range(40, 52), 7, 9))
        changeover(
            work, "evaluate", "--spec", "agent.yaml", "--prompts", "agent.jsonl", "--no-progress", "--out", "out"
        )
        keep = ("item", "model", "response", "signals", "tool_status", "tool_calls", "tool_divergence", "check_notes")
        print("--- two records of the candidate (out/records.jsonl, selected fields)")
        for line in (work / "out" / "records.jsonl").read_text().splitlines():
            rec = json.loads(line)
            if rec["model"] == "new-model" and rec["item"] in ("a42", "a7"):
                print("\n".join(f"{k}: {json.dumps(rec[k], ensure_ascii=False)}" for k in keep if k in rec) + "\n")


if __name__ == "__main__":
    main()
