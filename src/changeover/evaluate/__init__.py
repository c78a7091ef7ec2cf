"""Offline evaluation: sample logged traffic -> run incumbent and candidates -> judge -> records.

The records it writes are what ``assess`` decides on: one per (item, arm),
with a signal per judge, the segment and sampling weight of the logged
interaction, tokens, latency, cost, error, the prompt version, and each
signal's judge identity (``extra["judges"]``). Every model and judge call
goes through the call cache, so a rerun, or a resumed run after a crash,
calls nothing twice. One model failing (500s, timeouts) leaves its records
with ``error`` set and the others' results intact.

Modules: ``config`` (the ``evaluate:`` section), ``run`` (the entry point),
``requests`` and ``conversation`` (what each model is sent; tool calls answered
from the recording), ``engine`` (calls and judging), ``results``, ``labels``
(what to label next), ``outputs`` (the files), ``compat`` (request
compatibility check), ``progress`` (callback and rich bars), ``live_demo``.
"""

from changeover.evaluate.compat import CompatReport, check_requests
from changeover.evaluate.config import EvaluateConfig
from changeover.evaluate.conversation import Replay, Turn, replay_turn, split_turn
from changeover.evaluate.engine import Evaluation
from changeover.evaluate.labels import LABEL_FIT, label_rows, pick_labels
from changeover.evaluate.live_demo import (
    LIVE_CANDIDATE,
    LIVE_INCUMBENT,
    LIVE_JUDGE,
    LIVE_PROMPT,
    live_demo,
    live_demo_inputs,
    run_live_demo,
)
from changeover.evaluate.outputs import check_out_folder, write_outputs
from changeover.evaluate.progress import ProgressCallback, RichProgress
from changeover.evaluate.results import ArmStats, EvaluationResult
from changeover.evaluate.run import RunPlan, evaluate, plan_run
from changeover.prompts.sampling import sample_interactions

__all__ = [
    "LABEL_FIT",
    "LIVE_CANDIDATE",
    "LIVE_INCUMBENT",
    "LIVE_JUDGE",
    "LIVE_PROMPT",
    "ArmStats",
    "CompatReport",
    "EvaluateConfig",
    "Evaluation",
    "EvaluationResult",
    "ProgressCallback",
    "Replay",
    "RichProgress",
    "RunPlan",
    "Turn",
    "check_out_folder",
    "check_requests",
    "evaluate",
    "label_rows",
    "live_demo",
    "live_demo_inputs",
    "pick_labels",
    "plan_run",
    "replay_turn",
    "run_live_demo",
    "sample_interactions",
    "split_turn",
    "write_outputs",
]
