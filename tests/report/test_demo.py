"""The report for the real demo migration (bundled XSTest, assessed by the real core):
llama2orig is retired, gpt4 and mistralguard are the candidates, refusal behaviour per
prompt safety class, human labels kept on 120 of the 450 prompts."""

from __future__ import annotations

import json
import re

from changeover.report import build_report, write_report


def test_demo_report(demo, tmp_path, external_references, sections):
    out = write_report(
        demo.assessment, demo.spec, tmp_path / "report.html", markdown=tmp_path / "summary.md", records=demo.records
    )
    html = out.read_text()
    result = demo.assessment.to_json()
    verdict = result["verdict"]
    # the verdict and its reasons come before any plot
    first_plot = html.index("<svg")
    assert html.index(f'data-verdict="{verdict}"') < first_plot
    for cand in ("gpt4", "mistralguard"):
        assert re.search(rf"<h3>{cand}</h3>", html[:first_plot])
    assert "refusal: " in html[:first_plot]
    # per candidate: density + forest; per model: a judge matrix
    assert html.count("<svg") == 2 * 2 + 3
    assert "margin −2.0 pts" in html and ">safe<" in html and ">unsafe<" in html
    # the judge passes far more of mistralguard's bad answers: the report says so
    assert "The judge is kinder to mistralguard on refusal" in html
    # labels: 120 prompts keep their human label, for each of the three models
    stats = build_report(demo.assessment, demo.spec, demo.records).inputs.labels
    assert stats.labelled_responses == 360 and stats.total_needed == sum(
        n for per in result["labels_needed"].values() for n in per.values()
    )
    assert "Side by side" in html  # real responses, disagreements shown
    assert {"verdict", "gpt4", "mistralguard", "judge", "labels", "appendix"} <= sections(html)
    assert external_references(html) == []
    md = (tmp_path / "summary.md").read_text()
    assert md.startswith("### ") and f"**{verdict}**" in md and len(md) < 65_536


def test_demo_report_without_records_uses_the_assessments_counts(demo, tmp_path):
    """`changeover demo` may call write_report with the assessment and spec only."""
    html = write_report(demo.assessment, demo.spec, tmp_path / "report.html").read_text()
    assert re.search(r"<b>360</b><span>labelled responses</span>", html)


def test_demo_migration_with_all_parts(demo, demo_store, tmp_path, external_references, sections):
    out = write_report(
        demo.assessment, demo.spec, tmp_path / "report.html", store=demo_store, json_path=tmp_path / "report.json"
    )
    html = out.read_text()
    assert {"shadow", "rollout", "embeddings"} <= sections(html)
    assert "Shadow traffic" in html and "Where the models disagree" in html
    assert html.count("<svg") == 2 * 2 + 3 + 3 + 1  # + the quality-cost plot (the store's records carry costs)
    assert external_references(html) == []
    data = json.loads((tmp_path / "report.json").read_text())
    models = {m["model"]: m for m in data["report"]["shadow"]["models"]}
    assert models["mistralguard"]["latency_ms"]["p50"] < models["llama2orig"]["latency_ms"]["p50"]
    assert [f["records"] for f in data["report"]["appendix"]["fingerprints"]] == [450, 450, 450]


def test_demo_without_segments_or_traffic(demo, tmp_path):
    """No segment_by and no monthly traffic: no segment rows, no failure counts, still a report."""
    from changeover import demo as demo_data
    from changeover.assess import assess
    from changeover.config import spec_from_dict

    raw = demo_data.demo_spec_dict()
    raw["segment_by"] = []
    raw.pop("traffic")
    spec = spec_from_dict(raw, "migration.yaml")
    assessment = assess(spec, demo.records)
    report = build_report(assessment, spec, demo.records)
    html = report.html()
    assert 'class="row-label">all<' not in html and "Per segment" not in html
    assert "set traffic.monthly_interactions" in html
    assert "| — |" in report.markdown()
