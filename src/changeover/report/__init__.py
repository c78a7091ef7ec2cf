"""The migration report: one self-contained HTML page a decision-maker can read (verdict
and reasons first, then the evidence), a Markdown summary for a pull request, and JSON.

    write_report(assessment, spec, "report.html", markdown="summary.md", store=store)
"""

from changeover.report.build import Report, build_report
from changeover.report.embeddings import EmbeddingStats
from changeover.report.inputs import ReportInputs
from changeover.report.labels import LabelStats
from changeover.report.rollout import RolloutTimeline
from changeover.report.shadow import ShadowStats
from changeover.report.write import ReportError, write_report

__all__ = [
    "EmbeddingStats",
    "LabelStats",
    "Report",
    "ReportError",
    "ReportInputs",
    "RolloutTimeline",
    "ShadowStats",
    "build_report",
    "write_report",
]
