"""The appendix: what it takes to reproduce the decision — the spec as run, fingerprints
of the data (sha256 of the records), software versions, and the seeds and sampler settings.

The spec is shown as written except for credentials inside URLs (``user:password@``
and secret query parameters such as ``?api_key=``, ``&client_secret=``), which are
masked: a report is meant to be passed around. A ``/`` inside a password must be
written ``%2F`` (as URLs require anyway), or the URL cannot be told apart from a path.
"""

from __future__ import annotations

import hashlib
import platform
import re
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from changeover import __version__
from changeover.assessment.result import Decision
from changeover.config import MigrationSpec
from changeover.records import Record

PACKAGES = ("numpy", "scipy", "pydantic", "sqlalchemy", "jinja2")
_URL_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s]*@")  # up to the last @ before the path
_URL_SECRET = re.compile(
    r"([?&#][^=&#\s]*(?:key|token|secret|password|passwd|pwd|sig|signature|auth|credential)=)[^&#\s'\"]+",
    re.IGNORECASE,
)


def masked(text: str) -> str:
    """``text`` with credentials in URLs replaced by ``***``."""
    return _URL_SECRET.sub(r"\1***", _URL_USERINFO.sub(r"\1***@", text))


@dataclass(slots=True)
class Appendix:
    spec_text: str
    fingerprints: list[dict[str, Any]]
    records_sha256: str
    files: list[dict[str, str]] = field(default_factory=list)
    versions: list[tuple[str, str]] = field(default_factory=list)
    seeds: list[tuple[str, str]] = field(default_factory=list)


def spec_text(spec: MigrationSpec) -> str:
    """The spec file as written (credentials in URLs masked), or the validated spec as YAML
    when there is no file."""
    if spec.path is not None and Path(spec.path).is_file():
        return masked(Path(spec.path).read_text(encoding="utf-8"))
    data = spec.model_dump(mode="json", exclude_none=True)
    data.update(spec.model_extra or {})
    return masked(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def records_digest(records: list[Record]) -> tuple[list[dict[str, Any]], str]:
    """Per model (count, sha256 of its sorted record fingerprints) and one digest of all.

    Sorting makes the digest independent of row order, so the same data imported in
    another order (or read back from the store) has the same fingerprint.
    """
    by_model: dict[str, list[str]] = {}
    labels: dict[str, int] = {}
    for r in records:
        by_model.setdefault(r.model, []).append(r.fingerprint())
        labels[r.model] = labels.get(r.model, 0) + sum(len(v) for v in r.labels.values())
    rows = []
    everything = hashlib.sha256()
    for model in sorted(by_model):
        digest = hashlib.sha256("\n".join(sorted(by_model[model])).encode()).hexdigest()
        everything.update(f"{model}:{digest}\n".encode())
        rows.append({"model": model, "records": len(by_model[model]), "labels": labels[model], "sha256": digest})
    return rows, everything.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def versions() -> list[tuple[str, str]]:
    out = [("changeover", __version__), ("python", sys.version.split()[0]), ("platform", platform.platform())]
    for name in PACKAGES:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return out


def seeds(spec: MigrationSpec, decision: Decision) -> list[tuple[str, str]]:
    """The spec's seed and the sampler settings and diagnostics the assessment reports."""
    d = decision.diagnostics
    s = d.sampling
    out = [("spec seed", str(spec.seed)), ("confidence", f"{spec.confidence:g}")]
    out += [("assessment seed", str(s.seed)), ("assessment chains", str(s.chains))]
    out.append(
        (
            "assessment sampler",
            s.sampler + ("" if list(s.samplers) == [s.sampler] else f" ({', '.join(s.samplers)} in the final fits)"),
        )
    )
    out += [("assessment draws", str(s.draws)), ("assessment warmup", str(s.warmup))]
    if s.rounds > 1:
        out.append(
            ("sampling rounds", f"{s.rounds} (asked for {s.requested_draws} draws, {s.requested_warmup} warm-up)")
        )
    out += [("rhat max", f"{d.rhat_max:.4g}"), ("ess min", f"{min(d.ess_bulk_min, d.ess_tail_min):.4g}")]
    out.append(("divergences", str(d.divergences)))
    return out


def appendix(
    spec: MigrationSpec,
    records: list[Record],
    decision: Decision,
    files: list[Path] | None = None,
) -> Appendix:
    rows, digest = records_digest(records)
    return Appendix(
        spec_text(spec),
        rows,
        digest,
        [{"path": str(p), "sha256": file_sha256(p)} for p in (files or []) if p.is_file()],
        versions(),
        seeds(spec, decision),
    )
