"""The ``p_regression`` trigger: the assessment core's posterior probability that the candidate regresses.

The window's mirrored pairs become records (``shadow.export``), human labels
already in the store are merged in, and ``changeover.assess.assess`` gives the
posterior of each required dimension's overall delta; the trigger's value is the
largest ``P(delta < -margin)``. When the core is missing or cannot assess these
records, the measurement is an ``error`` (Argo's own budget), never a pass.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from changeover.config import MigrationSpec
from changeover.rollout.config import Trigger
from changeover.rollout.measure import Window
from changeover.shadow.export import pair_records
from changeover.store import Store
from changeover.store.responses import current_labels


def regression_for(
    spec: MigrationSpec, store: Store, incumbent: str, candidate: str, draws: int = 400
) -> Callable[[Trigger, Window], tuple[float | None, int]]:
    def p_regression(trigger: Trigger, window: Window) -> tuple[float | None, int]:
        n = len(window.pairs)
        if n < trigger.min_samples:
            return None, n
        try:
            from changeover.assess import assess
        except ImportError as exc:
            raise RuntimeError(f"the assessment core is not available ({exc})") from None
        records = pair_records(window.pairs)
        labels = current_labels(store)
        for rec in records:
            for dim in spec.dimensions:
                verdicts = labels.get((rec.item, rec.model, dim))
                if verdicts:
                    rec.labels[dim] = list(verdicts)
        sub = spec.model_copy(update={"candidates": [candidate]})
        assessment = assess(sub, records, draws=draws, chains=2, seed=spec.seed)
        dims = [trigger.dimension] if trigger.dimension else [d for d, v in spec.dimensions.items() if v.required]
        p = max(
            float(np.mean(assessment.pairs[(candidate, d)].delta_overall < -spec.dimensions[d].margin)) for d in dims
        )
        return p, n

    return p_regression
