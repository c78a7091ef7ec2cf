"""Assemble a report: the assessment's numbers and plots, the plain-words verdict, judge
calibration, and whichever optional sections the migration has. ``Report`` holds it all
and renders to HTML, Markdown and JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from changeover.assessment.jsonout import decision_json
from changeover.assessment.result import Decision
from changeover.config import MigrationSpec
from changeover.records import Record
from changeover.report import plots
from changeover.report.appendix import Appendix, appendix
from changeover.report.choosing import ChoosingSection, choosing_section
from changeover.report.config import ReportConfig
from changeover.report.inputs import ReportInputs, collect_inputs, vars_of
from changeover.report.judge import JudgeDimension, judge_sections
from changeover.report.markdown import summary_markdown
from changeover.report.render import render_html
from changeover.report.results import AssessmentLike, CandidateView, candidate_views, decision_of
from changeover.report.tools import tool_section
from changeover.report.verdict import VerdictText, verdict_text
from changeover.store import Store


@dataclass(slots=True)
class Report:
    """A built report; ``html()``, ``markdown()`` and ``to_json()`` give its three forms."""

    spec: MigrationSpec
    config: ReportConfig
    title: str
    decision: Decision
    verdict: VerdictText
    candidates: list[CandidateView]
    judges: list[JudgeDimension]
    inputs: ReportInputs
    appendix: Appendix
    colours: dict[str, str]
    generated_at: str
    tools: list[dict[str, Any]] = field(default_factory=list)  # tool-call agreement (report.tools)
    choosing: ChoosingSection | None = None  # pick's ranking and the quality-cost plot (report.choosing)

    def html(self) -> str:
        return render_html(self)

    def markdown(self, report_name: str | None = None) -> str:
        return summary_markdown(
            self.decision,
            self.spec,
            self.verdict,
            self.inputs.labels,
            report_name,
            self.config.markdown_segments,
            choosing=self.choosing,
            shadow=self.inputs.shadow,
        )

    def to_json(self) -> dict[str, Any]:
        """The decision JSON plus what the report adds (reasons, labels, optional sections, appendix)."""
        sections = {name: _plain(value) for name, value in vars_of(self.inputs).items()}
        return {
            **decision_json(self.decision),
            "report": {
                "title": self.title,
                "generated_at": self.generated_at,
                "headline": self.verdict.headline,
                "reasons": {c.name: {"summary": c.summary, "reasons": c.reasons} for c in self.verdict.candidates},
                "judge": {
                    j.dimension: {
                        m.model: {
                            "passes_bad": m.passes_bad,
                            "fails_good": m.fails_good,
                            "confusion": m.confusion.tolist(),
                            "labelled": m.labelled,
                        }
                        for m in j.models
                    }
                    for j in self.judges
                },
                **sections,
                "tools": self.tools,
                "choosing": self.choosing.to_json() if self.choosing is not None else None,
                "appendix": _plain(self.appendix),
            },
        }


def _plain(value: Any) -> Any:
    """JSON-ready: dataclasses to dicts, arrays summarised, markup dropped."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if dataclasses.is_dataclass(value):
        return {
            f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if not f.name.endswith("_svg")
        }
    if isinstance(value, np.ndarray):
        if value.size == 0:
            return None
        q = np.percentile(value, [5, 50, 95, 99])
        return {
            "n": int(value.size),
            "mean": float(value.mean()),
            "p5": float(q[0]),
            "p50": float(q[1]),
            "p95": float(q[2]),
            "p99": float(q[3]),
        }
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def build_report(
    assessment: AssessmentLike,
    spec: MigrationSpec,
    records: list[Record] | None = None,
    *,
    store: Store | None = None,
    inputs: ReportInputs | None = None,
    files: list[Path] | None = None,
) -> Report:
    """Everything the report shows, computed once. ``records`` default to the assessment's
    own (``assessment.records``) or to the store's."""
    config = spec.section("report", ReportConfig) or ReportConfig()
    decision = decision_of(assessment)
    if records is None:
        records = getattr(assessment, "records", None)
    if records is None and store is not None:
        from changeover.store.responses import load_records

        records = load_records(store, spec.models)
    records = list(records or [])
    pairs = getattr(assessment, "pairs", None) or {}
    return Report(
        spec=spec,
        config=config,
        title=config.title or f"Replacing {spec.incumbent}",
        decision=decision,
        verdict=verdict_text(decision, spec),
        candidates=candidate_views(decision, assessment, spec),
        judges=judge_sections(decision, pairs, spec, records),
        inputs=collect_inputs(records, spec, decision, config, store, inputs),
        appendix=appendix(spec, records, decision, files),
        colours=plots.model_colours(spec.incumbent, spec.candidates),
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        tools=tool_section(records, spec.incumbent, spec.candidates),
        choosing=choosing_section(spec, decision, records),
    )
