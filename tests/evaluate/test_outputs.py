"""The files an evaluation leaves are written all or nothing: a failure midway keeps the previous run's set."""

from __future__ import annotations

import errno

import pytest

from changeover.errors import ChangeoverError
from changeover.evaluate import evaluate, write_outputs
from changeover.evaluate.results import EvaluationResult
from changeover.prompts import read_interactions

from .helpers import make_spec, setup_fake, traffic_rows, write_traffic


def test_a_failure_midway_leaves_the_previous_outputs_whole(fake, tmp_path, monkeypatch):
    setup_fake(fake)
    spec, _ = make_spec(tmp_path, fake.base_url)
    first = evaluate(spec, read_interactions(write_traffic(tmp_path / "a.jsonl", traffic_rows(4))))
    second = evaluate(spec, read_interactions(write_traffic(tmp_path / "b.jsonl", traffic_rows(6))))
    out = tmp_path / "out"
    paths = write_outputs(first, out)
    before = {name: path.read_text() for name, path in paths.items()}
    assert before["records"].count("\n") == 8

    def disk_full(self: EvaluationResult) -> dict:
        raise OSError(errno.ENOSPC, "No space left on device")

    # records.jsonl and to_label.jsonl are written, then the summary fails
    monkeypatch.setattr(EvaluationResult, "summary", disk_full)
    with pytest.raises(ChangeoverError, match="No space left on device.*nothing there was changed"):
        write_outputs(second, out)
    assert {name: path.read_text() for name, path in paths.items()} == before
    assert sorted(p.name for p in out.iterdir()) == ["records.jsonl", "summary.json", "to_label.jsonl"]  # no temp

    monkeypatch.undo()
    write_outputs(second, out)
    assert paths["records"].read_text().count("\n") == 12
