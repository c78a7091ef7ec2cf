"""``changeover prompts adapt``: search for a prompt variant that makes a candidate non-inferior.

Part of the evaluation feature (it runs models and judges them); the prompt registry it writes to sits below.

From the candidate's failures and disagreements with the incumbent on a
stratified sample of logged traffic (judged by the spec's judges and checks),
a proposer model (any model of the spec's ``models:``) writes prompt variants,
ONE adaptation pattern per proposal (``patterns.py``); ``rules`` as the proposer
applies each pattern as a fixed rewrite instead (``adapt_rules.py``, no call). Each variant is run on
the same sample through the evaluate machinery (call cache: the incumbent and
anything asked before is never called again) and assessed with the calibrated
model against the incumbent. The search stops at the first variant that is
non-inferior on every required dimension, or when the budget is spent: every
call (response, judge, proposal) is admitted only if it fits the budget in
calls and USD (an upper-bound estimate from the price table and max_tokens is
reserved before the call), so a budget is never overspent.

The winner (or the best so far) is registered in the prompt registry with its
lineage and evidence, and the 2x2 A/B of its prompt (``ab.py``) separates the
prompt's effect from the model's.

The calibrated decision needs human labels on the variant's responses (a judge's
confusion on new answers is not known without them): the evaluated records are
added to the store, so the labelling app serves them, and the store's labels
are merged before every assessment; a rerun after labelling calls nothing
again (the proposer's calls are cached too, so it proposes the same variants).
``labeller`` (Python API) labels records in process instead, for simulations.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from changeover.assess import Assessment, ConvergenceWarning, assess
from changeover.config import MigrationSpec
from changeover.errors import ChangeoverError, SpecError
from changeover.evaluate import adapt_rules
from changeover.evaluate.results import ArmStats
from changeover.evaluate.run import RunPlan, _run, plan_run
from changeover.prompts.ab import Arm, arm_name
from changeover.prompts.patterns import PATTERNS, Failure, parse_proposal, proposer_request, rank_patterns
from changeover.prompts.registry import PromptVariant, Registry, register_variant
from changeover.prompts.traffic import Interaction
from changeover.providers import (
    CachedCaller,
    CallCache,
    ChatRequest,
    Completion,
    ModelClient,
    build_clients,
    model_configs,
)
from changeover.records import Record
from changeover.stats.decision import PASSING
from changeover.store import Store
from changeover.store.responses import add_records, merge_store_labels

Labeller = Callable[[list[Record]], None]
"""Adds human verdicts to records in place (``record.labels[dimension] = [0|1]``)."""

PROPOSE_KIND = "adapt:propose"


class BudgetSpent(Exception):
    """A call of an evaluation did not fit the budget (it was not made; the others finished and are cached)."""


@dataclass
class Budget:
    """Calls and USD that adapt may spend (None: no limit); cached answers cost nothing."""

    calls: int | None = None
    usd: float | None = None
    made: int = 0
    spent_usd: float = 0.0
    reserved_usd: float = 0.0
    refused: int = 0
    spent_by_model: dict[str, float] = field(default_factory=dict)

    def admit(self, estimate_usd: float) -> bool:
        """Reserve one call costing at most ``estimate_usd``; False (nothing reserved) if it does not fit."""
        over_calls = self.calls is not None and self.made + 1 > self.calls
        over_usd = self.usd is not None and self.spent_usd + self.reserved_usd + estimate_usd > self.usd
        if over_calls or over_usd:
            self.refused += 1
            return False
        self.made += 1
        self.reserved_usd += estimate_usd
        return True

    def settle(self, model: str, estimate_usd: float, cost_usd: float | None) -> None:
        self.reserved_usd -= estimate_usd
        self.spent_usd += cost_usd or 0.0
        self.spent_by_model[model] = self.spent_by_model.get(model, 0.0) + (cost_usd or 0.0)

    def fits(self, calls: int, usd: float) -> bool:
        """Would ``calls`` more calls costing about ``usd`` fit?"""
        ok_calls = self.calls is None or self.made + calls <= self.calls
        return ok_calls and (self.usd is None or self.spent_usd + self.reserved_usd + usd <= self.usd)

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "usd": self.usd,
            "calls_made": self.made,
            "usd_spent": round(self.spent_usd, 6),
            "calls_refused": self.refused,
        }


class BudgetedClient:
    """A ``ModelClient`` whose every call must first fit the budget (cache hits never reach it)."""

    def __init__(self, client: ModelClient, budget: Budget):
        self.client = client
        self.budget = budget
        self.name = client.name

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.client, attr)

    def prepare(self, request: ChatRequest) -> ChatRequest:
        return self.client.prepare(request)

    def estimate_usd(self, request: ChatRequest) -> float:
        """An upper-ish bound of the call's cost: 4 characters a token in, max_tokens (or 256) out."""
        if self.client.price is None:
            return 0.0
        prepared = self.client.prepare(request)
        out = int(prepared.params.get("max_tokens") or prepared.params.get("max_completion_tokens") or 256)
        return self.client.price.cost(prepared.estimated_tokens() - out, out)

    async def complete(self, request: ChatRequest, keep: Any = None) -> Completion:
        estimate = self.estimate_usd(request)
        if not self.budget.admit(estimate):  # an error answer (never cached); the calls in flight still finish
            return Completion(text=None, error=f"{self.name}: not called, the budget is spent", attempts=0)
        cost = None
        try:
            result = await self.client.complete(request, keep=keep)
            cost = result.cost_usd
            return result
        finally:
            self.budget.settle(self.name, estimate, cost)

    async def aclose(self) -> None:
        await self.client.aclose()


@dataclass
class Tried:
    """One row of the search: the baseline, or a proposal and (if it could be run) its assessment."""

    n: int
    arm: str
    parent: str
    pattern: str
    status: str  # baseline | evaluated | unparsed | invalid | budget spent
    variant: PromptVariant | None = None
    verdict: str | None = None
    calls: dict[str, str] = field(default_factory=dict)  # dimension -> call
    deltas: dict[str, dict[str, float]] = field(default_factory=dict)  # dimension -> mean, lower, upper
    labels_needed: int = 0
    calls_made: int = 0
    note: str = ""

    @property
    def noninferior(self) -> bool:
        return bool(self.calls) and all(c in PASSING for c in self.calls.values())

    def score(self) -> tuple[int, int, float]:
        """Best so far: most required dimensions passing, fewest regressions, largest deltas.

        The deltas count to 0.01: a posterior mean differing in the third decimal is sampler noise, and a
        variant that is only that much "better" must not become the parent of the next proposal.
        """
        passing = sum(c in PASSING for c in self.calls.values())
        regressions = sum(c == "regression" for c in self.calls.values())
        return passing, -regressions, round(sum(d["mean"] for d in self.deltas.values()), 2)

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "arm": self.arm,
            "parent": self.parent,
            "pattern": self.pattern,
            "status": self.status,
            "variant": self.variant.model_dump(mode="json", exclude_none=True) if self.variant else None,
            "verdict": self.verdict,
            "calls": self.calls,
            "deltas": self.deltas,
            "labels_needed": self.labels_needed,
            "calls_made": self.calls_made,
            "noninferior": self.noninferior,
            "note": self.note,
        }


@dataclass
class ABResult:
    """The 2x2 of {old prompt, adapted prompt} x {old model, new model}: each arm against the incumbent."""

    arms: dict[str, dict[str, dict[str, Any]]]  # arm -> dimension -> {call, mean, lower, upper}
    effects: dict[str, dict[str, float]]  # dimension -> {prompt_on_new_model, prompt_on_old_model, model, both}

    def to_json(self) -> dict[str, Any]:
        return {"arms": self.arms, "effects": self.effects}


@dataclass
class AdaptResult:
    """What ``adapt`` did: every variant tried, why it stopped, what it called, what it registered."""

    prompt_id: str
    candidate: str
    proposer: str
    sample_size: int
    tried: list[Tried]
    stop: str
    budget: Budget
    calls: dict[str, dict[str, float]]  # model -> {made, cached, cost_usd of the calls made}
    proposals: Counter[str]
    winner: Tried | None = None
    best: Tried | None = None
    registered: dict[str, Any] | None = None
    ab: ABResult | None = None
    ab_note: str = ""
    stored: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt_id,
            "candidate": self.candidate,
            "proposer": self.proposer,
            "sample": self.sample_size,
            "stop": self.stop,
            "winner": self.winner.arm if self.winner else None,
            "best": self.best.arm if self.best else None,
            "tried": [t.to_json() for t in self.tried],
            "budget": self.budget.to_json(),
            "calls": self.calls,
            "proposals": dict(self.proposals),
            "registered": self.registered,
            "ab": self.ab.to_json() if self.ab else None,
            "ab_note": self.ab_note,
            "stored_records": self.stored,
        }


def variant_key(candidate: str, variant: PromptVariant) -> str:
    """A variant's arm name, from its content: the same proposal gets the same name (and labels) on a rerun."""
    blob = json.dumps(variant.model_dump(mode="json", exclude={"version"}), sort_keys=True)
    return f"{candidate}~{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


def with_variant(registry: Registry, prompt_id: str, key: str, variant: PromptVariant) -> Registry:
    """A copy of the registry where prompt ``prompt_id`` also has variant ``key`` (files untouched)."""
    prompt = registry.prompts[prompt_id]
    updated = prompt.model_copy(update={"variants": {**prompt.variants, key: variant}})
    return Registry({**registry.prompts, prompt_id: updated}, registry.folder)


def failures_of(
    spec: MigrationSpec, records: list[Record], candidate_arm: str, interactions: dict[str, Interaction]
) -> list[Failure]:
    """Where the candidate fails a required dimension (a 0, a human 0, an error) or scores below the incumbent."""
    incumbent = {r.item: r for r in records if r.model == spec.incumbent}
    out: list[Failure] = []
    for rec in (r for r in records if r.model == candidate_arm):
        inc = incumbent.get(rec.item)
        for name, dim in spec.dimensions.items():
            if not dim.required:
                continue
            why = _failure_reason(rec, inc, name, dim.signal_names)
            if why:
                request = interactions[rec.item].prompt_text if rec.item in interactions else rec.prompt or ""
                out.append(
                    Failure(rec.item, name, request, rec.response or "", (inc.response or "") if inc else "", why)
                )
    return out


def _failure_reason(rec: Record, inc: Record | None, dimension: str, signals: list[str]) -> str | None:
    if rec.error:
        return f"error: {rec.error}"
    for sig in signals:
        value = rec.signals.get(sig)
        if value is None:
            continue
        theirs = inc.signals.get(sig) if inc else None
        note = (rec.extra.get("check_notes") or {}).get(sig)
        if value == 0:
            return note or f"{sig} = 0"
        if theirs is not None and value < theirs:
            return note or f"{sig} = {value}, the incumbent {theirs}"
    if 0 in (rec.labels.get(dimension) or []):  # after the signals: labels arriving keep the same examples
        return "a human said it is not acceptable"
    return None


def _variables(template: str | None) -> set[str]:
    return set(re.findall(r"(?<!\{)\{(\w+)\}(?!\})", template or ""))


def _carry_labels(records: list[Record], known: dict[tuple[str, str], dict[str, list[int]]]) -> None:
    """A label judges a response to an item: the same (item, response) seen before keeps its labels."""
    for rec in records:
        for dim, verdicts in known.get((rec.item, rec.response or ""), {}).items():
            rec.labels.setdefault(dim, list(verdicts))


def _dimension_evidence(assessment: Assessment, arm: str) -> tuple[dict[str, str], dict[str, dict[str, float]], int]:
    cand = assessment.decision.candidates[arm]
    calls, deltas = {}, {}
    for name, dim in cand.dimensions.items():
        if not dim.required:
            continue
        calls[name] = str(dim.call)
        d = dim.overall.delta
        deltas[name] = {"mean": round(d.mean, 4), "lower": round(d.lower, 4), "upper": round(d.upper, 4)}
    needed = sum(assessment.labels_needed.get(arm, {}).values())
    return calls, deltas, needed


class Adapter:
    """One adaptation session: one event loop, one budget, the clients, the store; use ``run``."""

    def __init__(
        self,
        spec: MigrationSpec,
        plan: RunPlan,
        store: Store,
        candidate: str,
        proposer: str,
        prompt_id: str | None,
        budget: Budget,
        patterns: list[str] | None,
        max_variants: int | None,
        labeller: Labeller | None,
        fit: dict[str, Any],
        register: bool,
    ):
        self.spec, self.plan, self.store = spec, plan, store
        self.candidate, self.proposer, self.budget = candidate, proposer, budget
        self.requested_prompt = prompt_id
        self.patterns = patterns
        self.max_variants = max_variants
        self.labeller, self.fit, self.register = labeller, fit, register
        self.interactions = {s.interaction.item: s.interaction for s in plan.sampled}
        self.calls: dict[str, dict[str, float]] = {}
        self.proposals: Counter[str] = Counter()
        self.labels: dict[tuple[str, str], dict[str, list[int]]] = {}
        self.stored = 0
        self.clients: dict[str, BudgetedClient] = {}
        self.by_rules = proposer == adapt_rules.RULES and proposer not in model_configs(spec)

    # ------------------------------------------------------------------ calls

    def _tally(self, model: str, stats: ArmStats) -> None:
        row = self.calls.setdefault(model, {"made": 0, "cached": 0, "cost_usd": 0.0})
        row["made"] += stats.calls
        row["cached"] += stats.cached

    async def _evaluate(self, arms: list[Arm], registry: Registry) -> list[Record]:
        """Run ``arms`` on the sample (through the call cache), store the records, merge labels."""
        plan = replace(self.plan, arms=arms, registry=registry)
        refused = self.budget.refused
        records, evaluation = await _run(plan, self.store, self.clients, False, None)  # type: ignore[arg-type]
        for arm in arms:
            self._tally(arm.model, evaluation.arm_stats[arm.name])
        for signal, stats in evaluation.judge_calls.items():
            self._tally(plan.judges[signal].model or signal, stats)
        if self.budget.refused > refused:  # cut short: what was called is cached, the records are not kept
            raise BudgetSpent(f"{self.budget.refused - refused} call(s) refused by the budget")
        self.stored += add_records(self.store, records, source=f"adapt:{self.candidate}")[1]
        _carry_labels(records, self.labels)
        if self.labeller is not None:
            self.labeller(records)
        merge_store_labels(self.store, records)
        for rec in records:
            if rec.labels:
                self.labels[(rec.item, rec.response or "")] = {k: list(v) for k, v in rec.labels.items()}
        return records

    def _assess(self, arms: list[str], records: list[Record]) -> Assessment:
        spec = self.spec.model_copy(update={"candidates": arms})
        spec.path = self.spec.path
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return assess(spec, records, **self.fit)

    def _calls_per_variant(self) -> int:
        """An upper bound of the calls one variant costs: a response and each LLM judge, per sampled item."""
        return len(self.plan.sampled) * (1 + sum(1 for c in self.plan.judges.values() if c.kind == "llm"))

    def _mean_call_usd(self) -> float:
        return self.budget.spent_usd / self.budget.made if self.budget.made else 0.0

    # ------------------------------------------------------------------ search

    def prompt_id(self) -> str:
        ids = Counter(i.prompt_id for i in self.interactions.values() if i.prompt_id in self.plan.registry.prompts)
        if self.requested_prompt is not None:
            if self.requested_prompt not in self.plan.registry.prompts:
                raise SpecError(
                    f"--prompt-id {self.requested_prompt!r}: no such prompt in the registry "
                    f"{self.plan.registry.folder}; known: {', '.join(sorted(self.plan.registry.prompts)) or 'none'}"
                )
            if not ids.get(self.requested_prompt):
                raise SpecError(f"--prompt-id {self.requested_prompt!r}: no sampled interaction uses this prompt")
            return self.requested_prompt
        if not ids:
            raise SpecError(
                "adapt changes a prompt of the registry: the sampled traffic has no line with a 'prompt_id' "
                "of the spec's prompts: registry; add prompt_id + variables to the traffic, or a prompts: section"
            )
        if len(ids) > 1:
            raise SpecError(
                f"the sampled traffic uses {len(ids)} prompts ({', '.join(sorted(map(str, ids)))}); "
                "choose one with --prompt-id"
            )
        return str(next(iter(ids)))

    async def run(self) -> AdaptResult:
        proposers = [] if self.by_rules else [self.proposer]
        models = list(dict.fromkeys([*self.plan.models(), self.candidate, *proposers]))
        raw = build_clients(self.spec, models)
        self.clients = {m: BudgetedClient(c, self.budget) for m, c in raw.items()}
        proposal_cache = CallCache(self.store)
        caller = CachedCaller(proposal_cache)
        try:
            return await self._search(caller)
        finally:
            await proposal_cache.close()
            for client in self.clients.values():
                await client.aclose()

    async def _search(self, caller: CachedCaller) -> AdaptResult:
        pid = self.prompt_id()
        if not self.by_rules:
            caller.preload([f"adapt:{pid}"])  # the proposals asked before (a rerun proposes the same variants)
        registry = self.plan.registry
        inc, cand = self.spec.incumbent, self.candidate
        parent_key, parent = registry.prompts[pid].variant_for(cand)
        tried: list[Tried] = []
        result = AdaptResult(
            pid, cand, self.proposer, len(self.plan.sampled), tried, "", self.budget, self.calls, self.proposals
        )
        base_arm = Arm(cand, cand, cand)
        try:
            records = await self._evaluate([Arm(inc, inc, inc), base_arm], registry)
        except BudgetSpent:
            result.stop = "budget spent before the baseline was evaluated"
            return self._finish(result)
        baseline = self._row(0, cand, parent_key, "-", "baseline", parent, records, cand)
        tried.append(baseline)
        incumbent_records = [r for r in records if r.model == inc]
        if baseline.noninferior:
            result.stop = "the candidate is already non-inferior with its prompt; nothing to adapt"
            return self._finish(result)
        failures = failures_of(self.spec, records, cand, self.interactions)
        order = self.patterns or rank_patterns(failures)
        unknown = [p for p in order if p not in PATTERNS]
        if unknown:
            raise SpecError(f"--pattern {unknown[0]!r} is not a known pattern; use one of {', '.join(PATTERNS)}")
        best = baseline
        best_records = records
        variants = {cand: parent}  # by arm: the baseline arm is the candidate on its own variant
        limit = self.max_variants if self.max_variants is not None else len(order)
        stop = f"tried {limit} proposal(s), none non-inferior on every required dimension"
        for n in range(1, limit + 1):
            pattern = PATTERNS[order[(n - 1) % len(order)]]
            calls = self._calls_per_variant() + (0 if self.by_rules else 1)
            if not self.budget.fits(calls, calls * self._mean_call_usd()):
                what = "an evaluation needs" if self.by_rules else "a proposal and its evaluation need"
                stop = f"budget spent: {what} up to {calls} more calls"
                break
            from_arm = best.arm
            from_variant = variants[best.arm]
            failing = failures_for(best_records, self, best.arm)
            if self.by_rules:
                self.proposals["asked"] += 1
                variant, why = adapt_rules.propose(from_variant, pattern.name, failing)
                if variant is None:
                    self.proposals["unparsed"] += 1  # nothing to rewrite along this pattern
                    tried.append(Tried(n, "-", from_arm, pattern.name, "unparsed", note=why))
                    continue
            else:
                refused = self.budget.refused
                answer, cached = await caller.call(
                    self.clients[self.proposer],
                    PROPOSE_KIND,
                    f"adapt:{pid}",
                    f"{pattern.name}@{from_arm}",
                    ChatRequest(
                        proposer_request(from_variant, pattern, failing),
                        {"max_tokens": 600, "temperature": 0},
                        None,
                        f"adapt:{pid}",
                    ),
                )
                if self.budget.refused > refused:
                    stop = "budget spent before the next proposal"
                    break
                self._tally(self.proposer, _stats(answer, cached))
                self.proposals["asked"] += 1
                variant = parse_proposal(answer.text, from_variant) if answer.ok else None
                why = ""
                if variant is None:
                    self.proposals["unparsed" if answer.ok else "failed"] += 1
                    why = (answer.text or "").strip()[:160] if answer.ok else f"proposer failed: {answer.error}"
                    tried.append(Tried(n, "-", from_arm, pattern.name, "unparsed", note=why))
                    continue
            lost = _variables(from_variant.template) - _variables(variant.template)
            if lost:
                self.proposals["invalid"] += 1
                tried.append(
                    Tried(n, "-", from_arm, pattern.name, "invalid", variant, note=f"template drops {sorted(lost)}")
                )
                continue
            self.proposals["parsed"] += 1
            key = variant_key(cand, variant)
            variants[key] = variant
            trial = with_variant(registry, pid, key, variant)
            made_before = self.budget.made
            try:
                var_records = await self._evaluate([Arm(inc, inc, inc), Arm(key, cand, key)], trial)
            except BudgetSpent:
                tried.append(Tried(n, key, from_arm, pattern.name, "budget spent", variant, note="evaluation cut"))
                stop = "budget spent while evaluating a variant (its calls are cached for a rerun)"
                break
            except ChangeoverError as exc:
                self.proposals["invalid"] += 1
                tried.append(Tried(n, key, from_arm, pattern.name, "invalid", variant, note=str(exc)[:200]))
                continue
            var_records = [r for r in var_records if r.model == key]
            row = self._row(n, key, from_arm, pattern.name, "evaluated", variant, incumbent_records + var_records, key)
            row.calls_made = self.budget.made - made_before
            row.note = "; ".join(x for x in (why, row.note) if x)
            tried.append(row)
            if row.score() > best.score():
                best, best_records = row, incumbent_records + var_records
            if row.noninferior:
                result.winner = row
                stop = "non-inferior on every required dimension"
                break
        result.stop = stop
        result.best = best if best is not baseline else None
        chosen = result.winner or result.best
        if chosen is not None:
            await self._ab(result, pid, chosen, registry, variants)
            if self.register:
                result.registered = self._register(result, pid, chosen, variants, parent_key, tried)
        return self._finish(result)

    def _row(
        self,
        n: int,
        arm: str,
        parent: str,
        pattern: str,
        status: str,
        variant: PromptVariant,
        records: list[Record],
        assessed_arm: str,
    ) -> Tried:
        assessment = self._assess([assessed_arm], records)
        calls, deltas, needed = _dimension_evidence(assessment, assessed_arm)
        note = "; ".join(assessment.warnings)[:200]  # e.g. a posterior that did not converge
        return Tried(n, arm, parent, pattern, status, variant, str(assessment.verdict), calls, deltas, needed, 0, note)

    async def _ab(
        self, result: AdaptResult, pid: str, chosen: Tried, registry: Registry, variants: dict[str, PromptVariant]
    ) -> None:
        inc, cand, key = self.spec.incumbent, self.candidate, chosen.arm
        arms = [Arm(inc, inc, inc), Arm(arm_name(inc, key), inc, key), Arm(arm_name(cand, inc), cand, inc)]
        arms.append(Arm(key, cand, key))
        try:
            records = await self._evaluate(arms, with_variant(registry, pid, key, variants[key]))
        except BudgetSpent:
            result.ab_note = "A/B not run: budget spent"
            return
        names = [a.name for a in arms[1:]]
        assessment = self._assess(names, records)
        table: dict[str, dict[str, dict[str, Any]]] = {}
        for name in names:
            calls, deltas, _ = _dimension_evidence(assessment, name)
            table[name] = {d: {"call": calls[d], **deltas[d]} for d in calls}
        effects: dict[str, dict[str, float]] = {}
        for dim in table[key]:
            both, model = table[key][dim]["mean"], table[arms[2].name][dim]["mean"]
            effects[dim] = {
                "prompt_on_new_model": round(both - model, 4),
                "prompt_on_old_model": table[arms[1].name][dim]["mean"],
                "model": model,
                "both": both,
            }
        result.ab = ABResult(table, effects)

    def _register(
        self,
        result: AdaptResult,
        pid: str,
        chosen: Tried,
        variants: dict[str, PromptVariant],
        root: str,
        tried: list[Tried],
    ) -> dict[str, Any]:
        prompt = self.plan.registry.prompts[pid]
        name = self.candidate if result.winner is not None else f"{self.candidate}+adapted"
        old = prompt.variants.get(name)
        version: int | str = 1
        if old is not None:
            version = int(old.version) + 1 if str(old.version).isdigit() else f"{old.version}.1"
        variant = variants[chosen.arm].model_copy(update={"version": version})
        parent = chosen.parent  # the registry's variant (baseline), or an unregistered variant (see ancestry)
        parent_version = f"{pid}@{root}:v{variants[parent].version}" if parent == self.candidate else f"{pid}@{parent}"
        by_arm = {t.arm: t for t in tried}
        ancestry: list[dict[str, str]] = []
        step: Tried | None = chosen
        while step is not None and step.n > 0:
            ancestry.append({"arm": step.arm, "pattern": step.pattern, "parent": step.parent})
            step = by_arm.get(step.parent)
        lineage = {
            "winner": result.winner is not None,
            "arm": chosen.arm,
            "parent": parent_version,
            "root": f"{pid}@{root}",
            "pattern": chosen.pattern,
            "ancestry": list(reversed(ancestry)),
            "proposer": self.proposer,
            "candidate": self.candidate,
            "incumbent": self.spec.incumbent,
            "evidence": {
                "verdict": chosen.verdict,
                "calls": chosen.calls,
                "deltas": chosen.deltas,
                "sample": len(self.plan.sampled),
                "labels_needed": chosen.labels_needed,
            },
            "stop": result.stop,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        path, log = register_variant(self.plan.registry, pid, name, variant, lineage)
        return {"prompt": pid, "variant": name, "version": version, "file": str(path), "lineage": str(log)}

    def _finish(self, result: AdaptResult) -> AdaptResult:
        result.stored = self.stored
        for model, row in self.calls.items():  # what the calls made cost (cached answers cost nothing)
            row["cost_usd"] = round(self.budget.spent_by_model.get(model, 0.0), 6)
        return result


def failures_for(records: list[Record], adapter: Adapter, arm: str) -> list[Failure]:
    """The failures of ``arm`` in ``records`` (the proposer's examples for the next proposal)."""
    return failures_of(adapter.spec, records, arm, adapter.interactions)


def _stats(completion: Completion, cached: bool) -> ArmStats:
    stats = ArmStats()
    stats.add(completion, cached)
    return stats


def adapt(
    spec: MigrationSpec,
    interactions: list[Interaction],
    candidate: str,
    *,
    store: Store,
    proposer: str | None = None,
    prompt_id: str | None = None,
    sample: int | None = None,
    budget_calls: int | None = None,
    budget_usd: float | None = None,
    patterns: list[str] | None = None,
    max_variants: int | None = None,
    labeller: Labeller | None = None,
    fit: dict[str, Any] | None = None,
    registry: Registry | None = None,
    seed: int | None = None,
    register: bool = True,
) -> AdaptResult:
    """Search for a prompt variant of ``candidate`` that is non-inferior to the incumbent (see the module doc).

    ``store``: the call cache, the records (for labelling) and the labels. ``fit``: ``assess`` sampler
    settings (draws, warmup, chains). ``patterns``: the order to try them (default: ranked by the failures).
    """
    import asyncio

    configured = model_configs(spec)
    if candidate not in spec.candidates:
        raise SpecError(
            f"--candidate {candidate!r} is not a candidate of {spec.path or 'the spec'}; "
            f"its candidates: {', '.join(spec.candidates) or 'none'}"
        )
    proposer = proposer or candidate
    if proposer not in configured and proposer != adapt_rules.RULES:
        raise SpecError(
            f"--proposer {proposer!r} is not configured under models: in {spec.path or 'the spec'}; "
            f"known: {', '.join(sorted(configured)) or 'none'}, or {adapt_rules.RULES!r} (fixed rewrites, no calls)"
        )
    scoped = spec.model_copy(update={"candidates": [candidate]})
    scoped.path = spec.path
    plan = plan_run(scoped, interactions, sample=sample, prompt_ab=False, registry=registry, seed=seed)
    adapter = Adapter(
        scoped,
        plan,
        store,
        candidate,
        proposer,
        prompt_id,
        Budget(budget_calls, budget_usd),
        patterns,
        max_variants,
        labeller,
        fit or {},
        register,
    )
    return asyncio.run(adapter.run())
