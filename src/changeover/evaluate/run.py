"""``evaluate``: sample, run every arm, judge, pick what to label - the entry point of the feature.

``plan_run`` decides what a run does (sample, arms, prompts, judges) without
calling anything; ``calling`` opens the call cache and the model clients for
one event loop and closes them after. The compatibility check (compat.py)
shares both.

A run is a list of batches (``RunPlan.batches``: ``evaluate.batch`` sampled
interactions each, in sample order). The local engine runs them all in one
event loop at once (one process gains nothing from running them apart); the
Ray engine (``engine=Engine("ray")``) runs each as a task (``evaluate_batch``)
that opens the store, its own clients and call cache, and returns its records;
the driver concatenates them in batch order and picks what to label, so both
engines store and write the same results. A model's rpm/tpm budgets are held
once for the whole job by the session's pacer actor, and its ``concurrency``
is split between the workers (at least one call each).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, fields, replace
from typing import Any

from changeover.config import MigrationSpec
from changeover.engines import Engine
from changeover.evaluate.config import EvaluateConfig
from changeover.evaluate.engine import Evaluation
from changeover.evaluate.labels import label_rows, pick_labels
from changeover.evaluate.progress import ProgressCallback
from changeover.evaluate.results import ArmStats, EvaluationResult
from changeover.judges import Ask, JudgeConfig, build_judges, judge_configs, judge_models
from changeover.prompts import Arm, Interaction, Registry, load_registry, plan_arms, spec_for_arms
from changeover.prompts.sampling import Sampled, check_segments, sample_interactions
from changeover.providers import CachedCaller, CallCache, ChatRequest, Completion, ModelClient, build_clients
from changeover.providers.factory import model_configs
from changeover.records import Record
from changeover.store import Store, open_store


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

    def batches(self, size: int | None = None) -> list[RunPlan]:
        """The run as batches of ``size`` (default ``evaluate.batch``) sampled interactions, in order."""
        size = size or self.cfg.batch
        return [replace(self, sampled=self.sampled[i : i + size]) for i in range(0, len(self.sampled), size)]


@dataclass
class Outcome:
    """What running (part of) a plan gave: its records in order and the call and judge statistics."""

    records: list[Record] = field(default_factory=list)
    arm_stats: dict[str, ArmStats] = field(default_factory=dict)
    judge_stats: dict[str, Counter[str]] = field(default_factory=dict)
    judge_calls: dict[str, ArmStats] = field(default_factory=dict)

    def add(self, other: Outcome) -> None:
        """Append a later batch's records and add up its statistics."""
        self.records += other.records
        for mine, theirs in ((self.arm_stats, other.arm_stats), (self.judge_calls, other.judge_calls)):
            for name, stats in theirs.items():
                total = mine.setdefault(name, ArmStats())
                for f in fields(ArmStats):
                    setattr(total, f.name, getattr(total, f.name) + getattr(stats, f.name))
        for signal, counts in other.judge_stats.items():
            self.judge_stats.setdefault(signal, Counter()).update(counts)


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
    engine: Engine | None = None,
) -> EvaluationResult:
    """Sample, run every arm, judge, and pick what to label. Arguments override ``evaluate:``.

    ``progress``: called as ``progress(task, completed, total)`` (silent when None; the CLI
    passes ``RichProgress``). ``label_fit``: sampler settings (draws, warmup, chains) for
    ranking the labels to get next. ``samples``: answers drawn per (item, model), each a call of
    its own (cached apart); with more than one, every record carries ``extra["sample"]`` (0-based).
    ``engine``: ``Engine("ray", address)`` runs the batches on Ray (``clients`` must then be None:
    every worker builds its own from the spec).
    """
    plan = plan_run(spec, interactions, sample=sample, prompt_ab=prompt_ab, registry=registry, seed=seed)
    budget = plan.cfg.labels_budget if labels_budget is None else labels_budget
    draws = plan.cfg.samples if samples is None else samples
    if engine is not None and engine.is_ray:
        if clients is not None:
            raise ValueError("the Ray engine builds its clients in the workers; pass clients=None")
        outcome = _run_on_ray(plan, store, engine, progress, draws)
    else:
        own_clients = clients is None
        clients = clients if clients is not None else build_clients(spec, plan.models())
        outcome = asyncio.run(_outcome(plan, store, clients, own_clients, progress, draws))
    records = outcome.records
    assess_spec = spec_for_arms(spec, plan.arms)
    to_label, source = pick_labels(assess_spec, records, budget, plan.seed, label_fit)
    return EvaluationResult(
        records,
        plan.arms,
        assess_spec,
        outcome.arm_stats,
        outcome.judge_stats,
        label_rows(to_label, records),
        source,
        outcome.judge_calls,
    )


def evaluate_batch(plan: RunPlan, store_url: str | None, samples: int, pacer: Any = None) -> Outcome:
    """Run one batch in this process (a Ray task): its own store connection, clients and call cache.

    ``pacer``: the job's ``engines.ray.Pacer`` actor; every client's rpm/tpm budgets are taken from it.
    """
    clients = build_clients(plan.spec, plan.models())
    if pacer is not None:
        from changeover.engines.ray import SharedLimits

        for name, client in clients.items():
            client.limits = SharedLimits(pacer, name, client.config.rpm, client.config.tpm)  # type: ignore[assignment]
    store = open_store(store_url) if store_url is not None else None
    try:
        return asyncio.run(_outcome(plan, store, clients, True, None, samples))
    finally:
        if store is not None:
            store.engine.dispose()


def _run_on_ray(
    plan: RunPlan, store: Store | None, engine: Engine, progress: ProgressCallback | None, samples: int
) -> Outcome:
    from changeover.engines.ray import ray_session, worker_url

    env = _worker_env(plan)
    with ray_session(engine) as session:
        batches = plan.batches()
        worker_plans = _share_concurrency(plan, min(session.workers, len(batches))).batches()
        totals = {"responses": len(plan.sampled) * len(plan.arms) * samples}
        totals["judgements"] = totals["responses"] * len(plan.judges)
        done: Counter[str] = Counter()

        def advance(_i: int, part: Outcome) -> None:
            done["responses"] += len(part.records)
            done["judgements"] += len(part.records) * len(plan.judges)
            if progress is not None:
                for task in ("responses", "judgements"):
                    progress(task, done[task], totals[task])

        url = worker_url(store.url) if store is not None else None
        parts = session.map(
            evaluate_batch,
            [(p, url, samples, session.pacer) for p in worker_plans],
            advance,
            what="evaluation batch",
            env=env,
        )
    outcome = Outcome()
    for part in parts:
        outcome.add(part)
    return outcome


def _share_concurrency(plan: RunPlan, workers: int) -> RunPlan:
    """The plan with each model's ``concurrency`` divided between ``workers`` (at least 1 each)."""
    if workers <= 1:
        return plan
    spec = plan.spec.model_copy(deep=True)
    raw = (spec.model_extra or {}).get("models") or {}
    for name, config in model_configs(plan.spec).items():
        if isinstance(raw.get(name), dict):
            raw[name]["concurrency"] = max(1, config.concurrency // workers)
    return replace(plan, spec=spec)


def _worker_env(plan: RunPlan) -> dict[str, str]:
    """The API-key variables the run's models name, from this environment, for the workers.

    Checked here, before any task starts: a model missing from ``models:`` is the SpecError the
    local engine gives, a named but unset variable its ProviderError.
    """
    configs = model_configs(plan.spec)
    if any(m not in configs for m in plan.models()):
        build_clients(plan.spec, plan.models())  # raises the SpecError naming them
    env: dict[str, str] = {}
    for m in plan.models():
        key, name = configs[m].api_key(m), configs[m].api_key_env
        if key is not None and name is not None:
            env[name] = key
    return env


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


async def _outcome(
    plan: RunPlan,
    store: Store | None,
    clients: dict[str, ModelClient],
    close_clients: bool,
    progress: ProgressCallback | None,
    samples: int,
) -> Outcome:
    records, evaluation = await _run(plan, store, clients, close_clients, progress, samples)
    return Outcome(records, evaluation.arm_stats, evaluation.judge_stats, evaluation.judge_calls)
