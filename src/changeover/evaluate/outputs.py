"""The files an evaluation leaves: records.jsonl, to_label.jsonl, summary.json and (A/B) assess-spec.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from changeover.errors import ChangeoverError
from changeover.evaluate.results import EvaluationResult
from changeover.records import write_records


def check_out_folder(out: Path) -> None:
    """Create the output folder, or say why it cannot be (a ChangeoverError naming it)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ChangeoverError(
            f"--out {out}: cannot create the output folder ({exc.strerror or exc}); choose another folder"
        ) from None


def write_outputs(result: EvaluationResult, out: Path) -> dict[str, Path]:
    """records.jsonl, to_label.jsonl, summary.json and (A/B) assess-spec.yaml under ``out``.

    Every file is written beside its target first and renamed only when all are written, so a
    failure (disk full, a read-only folder) leaves the previous run's files as they were, never a
    new records.jsonl beside an old to_label.jsonl.
    """
    check_out_folder(out)
    staged: dict[Path, Path] = {}
    try:
        paths = _write_outputs(result, out, staged)
        for tmp, final in staged.items():
            tmp.replace(final)
        return paths
    except OSError as exc:
        raise ChangeoverError(
            f"--out {out}: cannot write the results ({exc.strerror or exc}); nothing there was changed, and the "
            "calls are cached, so rerunning with another --out costs nothing"
        ) from None
    finally:
        for tmp in staged:
            tmp.unlink(missing_ok=True)


def _write_outputs(result: EvaluationResult, out: Path, staged: dict[Path, Path]) -> dict[str, Path]:
    paths = {"records": out / "records.jsonl", "to_label": out / "to_label.jsonl", "summary": out / "summary.json"}

    def temp(name: str) -> Path:
        tmp = paths[name].with_name(f".{paths[name].name}.tmp")
        staged[tmp] = paths[name]
        return tmp

    write_records(result.records, temp("records"))
    with temp("to_label").open("w", encoding="utf-8") as fh:
        for row in result.to_label:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    temp("summary").write_text(json.dumps(result.summary(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if any(arm.name != arm.model for arm in result.arms):  # prompt A/B: assess the arms
        raw = result.spec_for_assess.model_dump(mode="json", exclude_none=True)
        raw.update(result.spec_for_assess.model_extra or {})
        paths["assess_spec"] = out / "assess-spec.yaml"
        temp("assess_spec").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return paths
