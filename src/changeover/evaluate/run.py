"""``evaluate``: sample, run every arm, judge, pick what to label - the entry point of the feature.

``plan_run`` decides what a run does (sample, arms, prompts, judges) without
calling anything; ``calling`` opens the call cache and the model clients for
one event loop and closes them after. The compatibility check (compat.py)
shares both.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from changeover.config import MigrationSpec
from changeover.evaluate.config import EvaluateConfig
from changeover.evaluate.engine import Evaluation
from changeover.evaluate.labels import label_rows, pick_labels
from changeover.evaluate.progress import ProgressCallback
from changeover.evaluate.results import ArmStats, EvaluationResult
from changeover.judges import Ask, JudgeConfig, build_judges, judge_configs, judge_models
from changeover.prompts import Arm, Interaction, Registry, load_registry, plan_arms, spec_for_arms
from changeover.prompts.sampling import Sampled, check_segments, sample_interactions
from changeover.providers import CachedCaller, CallCache, ChatRequest, Completion, ModelClient, build_clients
from changeover.store import Store


@dataclass
class RunPlan:
    """What a run will do: the sample, the arms, the prompts and the judges' settings."""

    spec: MigrationSpec
    cfg: EvaluateConfig
    seed: int
    sampled: list[Sampled]
    arms: list[Arm]
    registry: Registry
    judges: dict[str, JudgeConfig]

    def models(self) -> list[str]:
        """Every model the run calls: the arms' models, then the judges'."""
        return list(dict.fromkeys([a.model for a in self.arms] + judge_models(self.judges)))


def plan_run(
    spec: MigrationSpec,
    interactions: list[Interaction],
    *,
    sample: int | None = None,
    prompt_ab: bool | None = None,
    registry: Registry | None = None,
    seed: int | None = None,
) -> RunPlan:
    """Sample and plan (arguments override the spec's ``evaluate:`` section); nothing is called."""
    cfg = spec.section("evaluate", EvaluateConfig) or EvaluateConfig.model_validate({})
    seed = spec.seed if seed is None else seed
    check_segments(interactions, spec.segment_by)
    sampled = sample_interactions(interactions, spec.segment_by, sample or cfg.sample, seed, cfg.min_per_segment)
    arms = plan_arms(spec, cfg.prompt_ab if prompt_ab is None else prompt_ab)
    return RunPlan(
        spec,
        cfg,
        seed,
        sampled,
        arms,
        registry if registry is not None else load_registry(spec),
        judge_configs(spec),
    )


@asynccontextmanager
async def calling(
    plan: RunPlan, store: Store | None, clients: dict[str, ModelClient], close_clients: bool
) -> AsyncIterator[CachedCaller]:
    """A cached caller for one event loop (cached completions of the sample preloaded); closes after."""
    cache = CallCache(store) if store is not None else None
    caller = CachedCaller(cache)
    caller.preload([s.interaction.item for s in plan.sampled])
    try:
        yield caller
    finally:
        if cache is not None:
            await cache.close()
        if close_clients:
            await asyncio.gather(*(c.aclose() for c in clients.values()))


def evaluate(
    spec: MigrationSpec,
    interactions: list[Interaction],
    *,
    store: Store | None = None,
    sample: int | None = None,
    labels_budget: int | None = None,
    prompt_ab: bool | None = None,
    registry: Registry | None = None,
    clients: dict[str, ModelClient] | None = None,
    seed: int | None = None,
    progress: ProgressCallback | None = None,
    label_fit: dict[str, int] | None = None,
    samples: int | None = None,
) -> EvaluationResult:
    """Sample, run every arm, judge, and pick what to label. Arguments override ``evaluate:``.

    ``progress``: called as ``progress(task, completed, total)`` (silent when None; the CLI
    passes ``RichProgress``). ``label_fit``: sampler settings (draws, warmup, chains) for
    ranking the labels to get next. ``samples``: answers drawn per (item, model), each a call of
    its own (cached apart); with more than one, every record carries ``extra["sample"]`` (0-based).
    """
    plan = plan_run(spec, interactions, sample=sample, prompt_ab=prompt_ab, registry=registry, seed=seed)
    own_clients = clients is None
    clients = clients if clients is not None else build_clients(spec, plan.models())
    budget = plan.cfg.labels_budget if labels_budget is None else labels_budget
    draws = plan.cfg.samples if samples is None else samples
    records, evaluation = asyncio.run(_run(plan, store, clients, own_clients, progress, draws))
    assess_spec = spec_for_arms(spec, plan.arms)
    to_label, source = pick_labels(assess_spec, records, budget, plan.seed, label_fit)
    return EvaluationResult(
        records,
        plan.arms,
        assess_spec,
        evaluation.arm_stats,
        evaluation.judge_stats,
        label_rows(to_label, records),
        source,
        evaluation.judge_calls,
    )


async def _run(
    plan: RunPlan,
    store: Store | None,
    clients: dict[str, ModelClient],
    close_clients: bool,
    progress: ProgressCallback | None,
    samples: int = 1,
) -> tuple[list[Any], Evaluation]:
    async with calling(plan, store, clients, close_clients) as caller:
        judge_calls: dict[str, ArmStats] = {}

        def ask_for(signal: str, model: str) -> Ask:
            stats = judge_calls.setdefault(signal, ArmStats())

            async def ask(request: ChatRequest) -> Completion:
                completion, cached = await caller.call(
                    clients[model], f"judge:{signal}"[:32], request.item or "", "judge", request
                )
                stats.add(completion, cached)
                return completion

            return ask

        judges = build_judges(plan.spec, plan.judges, ask_for)
        evaluation = Evaluation(
            plan.spec,
            plan.sampled,
            plan.arms,
            plan.registry,
            clients,
            judges,
            caller,
            plan.cfg.params,
            judge_calls,
            plan.cfg.max_tool_rounds,
            samples,
        )
        records = await evaluation.run(progress)
    return records, evaluation
