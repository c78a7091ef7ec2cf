"""Automated signals: LLM-judge rubrics, deterministic checks; each verdict 1/0, a level, a score or None.

Judges call models only through ``providers``. ``build_judges`` turns the
spec's ``judges:`` section into one judge per signal.
"""

from changeover.judges.base import Ask, Case, Judge, Verdict
from changeover.judges.config import JudgeConfig, JudgesSection, build_judges, judge_configs, judge_models
from changeover.judges.parse import Scale, parse_verdict

__all__ = [
    "Ask",
    "Case",
    "Judge",
    "JudgeConfig",
    "JudgesSection",
    "Scale",
    "Verdict",
    "build_judges",
    "judge_configs",
    "judge_models",
    "parse_verdict",
]
