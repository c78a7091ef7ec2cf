"""Stratified sampling of logged traffic by segment, each row keeping the weight it stands for."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass

from changeover.errors import RecordsError
from changeover.prompts.traffic import Interaction


@dataclass(frozen=True, slots=True)
class Sampled:
    """A sampled interaction and how many production interactions it stands for."""

    interaction: Interaction
    weight: float


def stratum(interaction: Interaction, segment_by: list[str]) -> str:
    """The segment key of an interaction ("emea/billing"; "all" without segment_by)."""
    return "/".join(interaction.segment.get(k, "") for k in segment_by) or "all"


def check_segments(interactions: list[Interaction], segment_by: list[str]) -> None:
    """Every interaction must carry the fields the spec splits by (RecordsError naming the line)."""
    for inter in interactions:
        missing = [k for k in segment_by if not inter.segment.get(k)]
        if missing:
            raise RecordsError(
                f"{inter.source}: field 'segment.{missing[0]}' is missing; the spec splits "
                f"by {segment_by} (segment_by), so every interaction needs them"
            )


def sample_interactions(
    interactions: list[Interaction], segment_by: list[str], n: int | None, seed: int, min_per_segment: int = 5
) -> list[Sampled]:
    """Stratified sample by segment: square-root allocation with a floor per segment.

    Proportional allocation would drown rare segments (a 1% segment gets 20 of
    2000); equal allocation wastes the budget on them. Square-root allocation
    sits between, the floor keeps every segment estimable, and each row's
    weight N_h / n_h (times its own logged weight) lets ``assess`` re-weight to
    real traffic.
    """
    strata: dict[str, list[Interaction]] = defaultdict(list)
    for inter in interactions:
        strata[stratum(inter, segment_by)].append(inter)
    total = len(interactions)
    if n is None or n >= total:
        take = {h: len(rows) for h, rows in strata.items()}
    else:
        roots = {h: math.sqrt(len(rows)) for h, rows in strata.items()}
        scale = n / sum(roots.values())
        ideal = {h: roots[h] * scale for h in strata}
        take = {h: min(len(strata[h]), max(min_per_segment, round(ideal[h]))) for h in strata}
        _fit_to(
            take,
            n,
            ideal,
            floor={h: min(len(strata[h]), min_per_segment) for h in strata},
            cap={h: len(strata[h]) for h in strata},
        )
    rng = random.Random(seed)
    out: list[Sampled] = []
    for h in sorted(strata):
        rows = strata[h]
        chosen = rows if take[h] >= len(rows) else rng.sample(rows, take[h])
        w = len(rows) / max(1, take[h])
        out.extend(Sampled(inter, w * (inter.weight or 1.0)) for inter in chosen)
    return out


def _fit_to(take: dict[str, int], n: int, ideal: dict[str, float], floor: dict[str, int], cap: dict[str, int]) -> None:
    """Bring the allocation's sum to ``n`` (rounding and floors move it either way)."""
    while sum(take.values()) > n:
        h = max((h for h in take if take[h] > floor[h]), key=lambda h: take[h] - ideal[h], default=None)
        if h is None:
            return
        take[h] -= 1
    while sum(take.values()) < n:
        h = max((h for h in take if take[h] < cap[h]), key=lambda h: ideal[h] - take[h], default=None)
        if h is None:
            return
        take[h] += 1
