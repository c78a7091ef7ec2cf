"""Rendering the report: a realistic assessment alone, and a migration with every part present
(shadow traffic, rollout events, embedding results, annotators in the store)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import insert

from changeover.config import load_spec
from changeover.report import EmbeddingStats, ReportError, ReportInputs, build_report, write_report
from changeover.store.schema import labels as labels_table


def test_realistic_assessment_opens_with_the_verdict(spec, assessment, records, sections):
    html = build_report(assessment, spec, records).html()
    first_plot = html.index("<svg")
    assert html.index("NEED-LABELS: the evidence is not yet strong enough") < first_plot
    assert html.index("correctness: regression in apac") < first_plot
    assert {"verdict", "cand-a", "cand-b", "judge", "labels", "appendix"} <= sections(html)
    assert not {"rollout", "embeddings"} & sections(html)
    assert "Shadow traffic" not in html and "Side by side" in html  # responses but no traffic metrics
    # densities + forest per candidate x dimension, one heatmap per model x dimension
    assert html.count("<svg") == 2 * 2 * 3 + 3 * 3
    assert "margin −2.0 pts" in html and "P(non-inferior)" in html
    assert re.search(r">~[\d,]+ fewer<", html) and re.search(r">~[\d,]+ extra<", html)
    assert "The judge is kinder to cand-b on correctness" in html


def test_report_is_self_contained(spec, assessment, records, full_store, external_references):
    html = build_report(assessment, spec, records, store=full_store).html()
    assert external_references(html) == []
    assert "http" not in html.lower()  # not even an SVG namespace URL
    assert "<link" not in html and "<script" not in html
    assert external_references('<img src="https://cdn.example.com/x.png">')  # the check itself works


def test_migration_with_all_parts(spec, assessment, full_store, tmp_path, external_references, sections):
    with full_store.engine.begin() as conn:
        conn.execute(
            insert(labels_table),
            [
                {
                    "item": f"q-{i:04d}",
                    "model": "cand-a",
                    "dimension": "correctness",
                    "value": 1,
                    "annotator": name,
                    "created_at": datetime.now(UTC),
                    "status": "label",
                    "source": "app",
                }
                for i, name in [(1, "alice"), (1, "bob"), (2, "alice")]
            ],
        )
    out = write_report(
        assessment,
        spec,
        tmp_path / "out" / "report.html",
        markdown=tmp_path / "summary.md",
        store=full_store,
        json_path=tmp_path / "report.json",
    )
    html = out.read_text()
    assert {"shadow", "rollout", "embeddings", "labels", "judge"} <= sections(html)
    assert "Shadow traffic" in html and "format drift" in html.lower()
    assert "trigger refusal_rate failed" in html and "rollback" in html
    assert "preserves retrieval" in html and "multilingual-e5-small" in html and "nDCG@10" in html
    assert re.search(r"<td>alice</td><td class=\"num\">2</td>", html)
    assert html.count("<svg") == 2 * 2 * 3 + 3 * 3 + 3 + 3  # + latency, timeline, overlap histogram, quality-cost x3
    assert external_references(html) == []

    md = (tmp_path / "summary.md").read_text()
    assert md.startswith("### 🟡 changeover: **NEED-LABELS**") and "report.html" in md
    assert "| cand-b | correctness | overall | regression |" in md
    assert len(md) < 65_536 and "<svg" not in md

    data = json.loads((tmp_path / "report.json").read_text())
    assert data["verdict"] == "NEED-LABELS" and set(data["candidates"]) == {"cand-a", "cand-b"}
    rows = data["report"]["rollout"]["rows"]
    assert [r["kind"] for r in rows].count("rollout.rollback") == 1
    assert data["report"]["rollout"]["trigger_checks"] == 2
    assert data["report"]["shadow"]["models"][0]["latency_ms"]["p50"] > 0
    assert len(data["report"]["appendix"]["records_sha256"]) == 64


def test_sections_given_explicitly_win(spec, assessment, records):
    given = EmbeddingStats(np.array([0.2, 0.4, 0.5]), k=5, old_model="old", new_model="new")
    html = build_report(assessment, spec, records, inputs=ReportInputs(embeddings=given)).html()
    assert "mean top-5 overlap" in html and "investigate" in html


def test_go_report_and_markdown_segments(spec, assessment, records):
    result = assessment.to_json()
    result.update(verdict="GO", labels_needed={})
    spec.report = {"title": "Retiring legacy-model", "markdown_segments": True}
    report = build_report(assessment, spec, records)
    assert "<title>Retiring legacy-model — GO</title>" in report.html()
    md = report.markdown()
    assert "🟢" in md and re.search(r"\|\s+\|\s+\| apac \|", md)


def test_bad_report_section_names_the_field(spec, assessment, records):
    from changeover.errors import SpecError

    spec.report = {"max_exampels": 3}
    with pytest.raises(SpecError, match=r"field 'report.max_exampels' is not a known key"):
        build_report(assessment, spec, records)


def test_unwritable_output_is_a_user_error(spec, assessment, records, tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ReportError, match="cannot write the HTML report"):
        write_report(assessment, spec, blocker / "report.html", records=records)


def test_assessment_without_draws_still_renders(spec, assessment, records):
    assessment.pairs = {}
    html = build_report(assessment, spec, records).html()
    # forest plots from the JSON summaries, judge matrices from diagnostics.judge; no densities
    assert html.count("<svg") == 2 * 3 + 3 * 3
    assert "Posterior of the true pass rate" not in html
    assert "The judge is kinder to cand-b on correctness" in html


def test_the_appendix_masks_credentials_in_urls(tmp_path, assessment, records):
    path = tmp_path / "migration.yaml"
    path.write_text(
        "incumbent: legacy-model\ncandidates: [cand-a, cand-b]\nsegment_by: [region]\n"
        "dimensions: {correctness: {margin: 0.02}, refusal: {margin: 0.005}, style: {margin: 0.03, levels: 5}}\n"
        "gateway:\n  upstreams:\n"
        "    old: {base_url: 'https://bob:hun@ter2@llm.internal.example/v1'}\n"
        "    new: {base_url: 'https://llm.example.com/v1?api_key=sk-live-42&region=eu&client_secret=cs-7'}\n"
    )
    html = build_report(assessment, load_spec(path), records).html()
    assert "bob:hun" not in html and "ter2@llm" not in html and "sk-live-42" not in html and "cs-7" not in html
    assert "https://***@llm.internal.example/v1" in html
    assert "api_key=***&amp;region=eu&amp;client_secret=***" in html
