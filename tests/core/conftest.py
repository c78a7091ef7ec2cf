"""Fixtures for the core tests: records of simulated migrations with known truth."""

import json

import numpy as np
import pytest

from changeover.stats.simulate import Scenario


def scenario_records(
    sc: Scenario, seed: int, incumbent="legacy", candidate="cand", segment_field="region"
) -> list[dict]:
    """Per-item records (incumbent + candidate) drawn from a scenario."""
    rng = np.random.default_rng(seed)
    pi = sc.cell_probs()
    names = sc.segment_names or [f"r{i}" for i in range(sc.n_segments)]
    rows = []
    for s, name in enumerate(names):
        cells = rng.choice(4, size=sc.items_per_segment, p=pi[s] / pi[s].sum())
        labelled = {m: set(rng.choice(sc.items_per_segment, sc.labels_per_segment, replace=False)) for m in (0, 1)}
        for i, c in enumerate(cells):
            z = (c // 2, c % 2)
            for m, model in enumerate((incumbent, candidate)):
                p_pass = sc.sensitivity[m] if z[m] else 1 - sc.specificity[m]
                row = {
                    "item": f"{name}-{i}",
                    "model": model,
                    "segment": {segment_field: name},
                    "signals": {"correctness": int(rng.random() < p_pass)},
                }
                if i in labelled[m]:
                    row["labels"] = {"correctness": int(z[m])}
                rows.append(row)
    return rows


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


SPEC = """
incumbent: legacy
candidates: [cand]
segment_by: [region]
traffic: {monthly_interactions: 1000000}
confidence: 0.95
dimensions:
  correctness: {signal: correctness, margin: 0.02}
"""


@pytest.fixture
def spec_path(tmp_path):
    p = tmp_path / "migration.yaml"
    p.write_text(SPEC)
    return p
