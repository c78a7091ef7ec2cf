"""Choose a candidate: among those that pass, the cheapest at the spec's traffic, with the saving and its uncertainty.

``pick(assessment, records)`` ranks every candidate (a model, or a model with a
prompt variant) by verdict, then by cost per month and p95 latency; the
command is ``changeover pick`` (docs/choosing.md).
"""

from changeover.pick.costs import CostEstimate, ModelCosts, model_costs
from changeover.pick.ranking import Choice, PickResult, pick

__all__ = ["Choice", "CostEstimate", "ModelCosts", "PickResult", "model_costs", "pick"]
