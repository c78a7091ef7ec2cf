"""One set of labels in force: `assess/report --records FILE` merge the store's labels (issue 10)."""

import csv
import json

from changeover.cli import run
from changeover.stats.simulate import Scenario

from .conftest import scenario_records, write_jsonl


def _project(tmp_path, store_url):
    """A records file with labels on a few responses; labels on 80 more per model live only in the store."""
    sc = Scenario("equal", [0.8, 0.8], [0.8, 0.8], items_per_segment=150, labels_per_segment=45)
    rows = scenario_records(sc, 21)
    moved, n_moved = [], {"legacy": 0, "cand": 0}
    for r in rows:
        if "labels" in r and n_moved[r["model"]] < 80:
            n_moved[r["model"]] += 1
            moved.append(
                {
                    "item": r["item"],
                    "model": r["model"],
                    "dimension": "correctness",
                    "value": r["labels"]["correctness"],
                }
            )
            del r["labels"]
    records = write_jsonl(tmp_path / "records.jsonl", rows)
    with (tmp_path / "labels.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, ["item", "model", "dimension", "value", "annotator"])
        w.writeheader()
        w.writerows({**m, "annotator": "ana"} for m in moved)
    assert run(["import", str(records), "--db", store_url]) == 0
    assert run(["label", "import", str(tmp_path / "labels.csv"), "--db", store_url]) == 0
    return records


def test_assess_with_records_merges_the_store_labels(tmp_path, spec_path, store_url, capsys):
    records = _project(tmp_path, store_url)
    capsys.readouterr()
    out = tmp_path / "with.json"
    base = ["assess", "--spec", str(spec_path), "--records", str(records), "--db", store_url]
    run([*base, "--json", str(out)])
    text = capsys.readouterr().out
    assert "merged 160 human label(s) from the store" in text
    merged = json.loads(out.read_text())
    assert merged["labels"] == {"from_records": 20 + 160, "from_store": 160}
    assert merged["candidates"]["cand"]["dimensions"]["correctness"]["labelled"] == {"legacy": 90, "cand": 90}

    out2 = tmp_path / "without.json"
    run([*base, "--no-store-labels", "--json", str(out2)])
    assert "merged" not in capsys.readouterr().out
    alone = json.loads(out2.read_text())
    assert alone["labels"] == {"from_records": 20, "from_store": None}
    assert alone["candidates"]["cand"]["dimensions"]["correctness"]["labelled"] == {"legacy": 10, "cand": 10}

    # the same labels, read from the store instead of the file: the same counts as the merge
    out3 = tmp_path / "store.json"
    run(["assess", "--spec", str(spec_path), "--db", store_url, "--json", str(out3)])
    from_store = json.loads(out3.read_text())
    assert from_store["candidates"]["cand"]["dimensions"]["correctness"]["labelled"] == {"legacy": 90, "cand": 90}
    assert from_store["labels"] == {"from_records": 180, "from_store": 160}


def test_report_with_records_merges_the_store_labels(tmp_path, spec_path, store_url, capsys):
    records = _project(tmp_path, store_url)
    capsys.readouterr()
    md = tmp_path / "summary.md"
    args = ["report", "--spec", str(spec_path), "--records", str(records), "--db", store_url]
    assert run([*args, "--out", str(tmp_path / "r.html"), "--markdown", str(md)]) == 0
    assert "merged 160 human label(s) from the store" in capsys.readouterr().out
    assert "Human labels: 180 verdicts on 180 responses" in md.read_text()
    assert run([*args, "--no-store-labels", "--out", str(tmp_path / "r2.html"), "--markdown", str(md)]) == 0
    assert "Human labels: 20 verdicts on 20 responses" in md.read_text()
