"""Gold items: responses with a settled answer, slipped blind into annotators' queues to check them.

Where the answers come from (``labeling.gold.answers`` in the spec):

* a file of ``(item, model, dimension, value)`` rows -- any file ``changeover
  label import`` reads (CSV long or wide form, JSONL), path relative to the
  spec -- one answer per response and dimension;
* ``settled``: the responses the admin settled on the review page (their
  ``source`` 'review' verdicts in force), so every settled disagreement becomes
  a check for the annotators who have not seen it.

A gold response is never a regular task: it has its answer. Every
``labeling.gold.share`` of an annotator's requests (decided by a hash of
annotator and how many responses they have handled, so reproducible) the
queue offers one gold response this annotator has never handled, if one is
left; nothing on the page or in the API marks it. The verdict is stored with
``status`` 'gold' (one row per dimension, as any label): ``in_force`` counts
only 'label' rows, so a gold verdict is **not** a label of the decision -- the
answer is known already, and the verdict measures the annotator, not the
response -- nor does it enter the kappa. The assessment reads it beside the
settled answer (``store.responses.current_verdicts``): the answer, exact, is the
response's label, and the verdict measures the annotator's noise; every reader
of the store's labels (the app's live fit, ``changeover assess`` / ``report``,
the rollout's ``p_regression``) passes the gold file's answers
(``spec_answers``), and a gold verdict whose answer is not beside it is left
out. The annotator's own pages (counters, history, corrections) show it as any
other label.

Per annotator this module measures agreement with gold (their gold verdicts
against the answers) and with the consensus (each of their verdicts against
the majority of the other annotators on the same response and dimension, ties
left out), as shown on the progress page and written by ``label export
--quality``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from changeover.errors import SpecError
from changeover.labeling.tasks import Catalogue, TaskKey, unit_hash
from changeover.store.responses import GOLD, LABEL, REVIEW, in_force

LOW_GOLD = 0.7  # below this share of gold answers matched, the progress page marks an annotator
SETTLED = "settled"
Answers = dict[TaskKey, dict[str, int]]  # (item, model) -> dimension -> the settled verdict


class GoldConfig(BaseModel):
    """``labeling.gold``: where the answers come from and how often one is slipped in."""

    model_config = ConfigDict(extra="forbid")

    answers: str = Field(..., description="'settled' (the admin's settlements) or a label file, relative to the spec")
    share: float = Field(0.1, gt=0.0, le=1.0, description="share of an annotator's responses that are gold")


def read_answers(cfg: GoldConfig, spec_path: Path | None, dimensions: list[str]) -> Answers:
    """The answers of a gold file (empty for 'settled': those are read from the store as they come)."""
    if cfg.answers == SETTLED:
        return {}
    from changeover.labeling.importing import read_labels

    base = spec_path.parent if spec_path else Path.cwd()
    path = Path(cfg.answers) if Path(cfg.answers).is_absolute() else base / cfg.answers
    if not path.exists():
        raise SpecError(
            f"{spec_path or 'spec'}: field 'labeling.gold.answers': no file {path}; give a label file "
            f"(item, model, dimension, value) or '{SETTLED}'"
        )
    out: Answers = {}
    for row in read_labels(path, "auto", GOLD, dimensions):
        if row.value is None or row.status != LABEL:
            continue
        if row.dimension not in dimensions:
            raise SpecError(f"{row.loc}: field 'dimension': {row.dimension!r} is not labelled here")
        known = out.setdefault((row.item, row.model), {})
        if known.get(row.dimension, row.value) != row.value:
            raise SpecError(f"{row.loc}: a second, different gold answer for {row.item!r}/{row.dimension}")
        known[row.dimension] = row.value
    return out


def spec_answers(spec: Any) -> Answers:
    """The gold file's answers of a spec's ``labeling.gold`` (empty without one, or with 'settled', whose
    answers are the admin's resolutions, in the store already): what every reader of the store's labels
    passes to ``store.responses.current_verdicts``, so the gold verdicts stand beside their answers."""
    from changeover.labeling.config import labeled_dimensions, labeling_config

    cfg = labeling_config(spec)
    return read_answers(cfg.gold, spec.path, labeled_dimensions(spec, cfg)) if cfg.gold is not None else {}


def settled_answers(rows: Iterable[Any]) -> Answers:
    """The admin's settlements in force (``source`` 'review'), as gold answers."""
    out: Answers = {}
    for (item, model, dim, _who), row in in_force(r for r in rows if r.source == REVIEW).items():
        out.setdefault((item, model), {})[dim] = int(row.value)
    return out


def check_answers(answers: Answers, catalogue: Catalogue, where: str) -> None:
    """Every gold answer must name a stored response of the spec's models."""
    for item, model in answers:
        if (item, model) not in catalogue.by_key:
            raise SpecError(
                f"{where}: gold answer for item {item!r}, model {model!r}: no such stored response; "
                "import the responses first or remove the row"
            )


def gold_verdicts(rows: Iterable[Any]) -> dict[tuple[str, str, str, str], Any]:
    """Annotators' gold verdicts in force (latest, not superseded), by (item, model, dimension, annotator)."""
    return in_force(rows, status=GOLD)


def wants_gold(share: float, seed: object, annotator: str, handled: int) -> bool:
    """Is the annotator's next response a gold one? Reproducible: a hash of who and how many so far."""
    return unit_hash(GOLD, seed, annotator, handled) < share


def gold_order(keys: Iterable[TaskKey], annotator: str) -> list[TaskKey]:
    """Gold responses in an order of their own per annotator."""
    return sorted(keys, key=lambda k: unit_hash(GOLD, annotator, *k))


@dataclass(frozen=True, slots=True)
class Quality:
    """One annotator's agreement with gold and with the consensus of the others."""

    gold_checks: int = 0  # response x dimension verdicts on gold responses
    gold_agree: int = 0
    consensus_checks: int = 0  # verdicts where the others' majority is not a tie
    consensus_agree: int = 0

    @property
    def gold(self) -> float | None:
        return self.gold_agree / self.gold_checks if self.gold_checks else None

    @property
    def consensus(self) -> float | None:
        return self.consensus_agree / self.consensus_checks if self.consensus_checks else None

    def to_json(self) -> dict[str, Any]:
        return {
            "gold": self.gold,
            "gold_checks": self.gold_checks,
            "consensus": self.consensus,
            "consensus_checks": self.consensus_checks,
            "low": self.gold is not None and self.gold < LOW_GOLD,
        }


def quality(
    answers: Answers,
    golds: dict[tuple[str, str, str, str], Any],
    verdicts: dict[tuple[str, str, str, str], int],
) -> dict[str, Quality]:
    """Per annotator: gold verdicts (``golds``, rows) against ``answers``; every verdict (``verdicts``:
    the annotators' own, regular and gold) against the majority of the other annotators."""
    gold_n: Counter[str] = Counter()
    gold_ok: Counter[str] = Counter()
    for (item, model, dim, who), row in golds.items():
        answer = answers.get((item, model), {}).get(dim)
        if answer is not None:
            gold_n[who] += 1
            gold_ok[who] += int(int(row.value) == answer)
    units: dict[tuple[str, str, str], dict[str, int]] = defaultdict(dict)
    for (item, model, dim, who), value in verdicts.items():
        units[(item, model, dim)][who] = int(value)
    cons_n: Counter[str] = Counter()
    cons_ok: Counter[str] = Counter()
    for by in units.values():
        for who, value in by.items():
            others = Counter(v for w, v in by.items() if w != who)
            if not others or others[0] == others[1]:
                continue
            majority = int(others[1] > others[0])
            cons_n[who] += 1
            cons_ok[who] += int(value == majority)
    names = sorted(set(gold_n) | set(cons_n))
    return {a: Quality(gold_n[a], gold_ok[a], cons_n[a], cons_ok[a]) for a in names}
