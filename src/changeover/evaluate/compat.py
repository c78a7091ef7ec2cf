"""Request compatibility: before a run spends anything, one request per distinct parameter set to each model.

A newer model often refuses what the old one took (``max_tokens`` instead of
``max_completion_tokens``, a ``temperature`` other than the default, tools,
``response_format``). ``check_requests`` groups the run's first requests per
arm by their parameters and tool definitions, sends one of each group, and
reports each as accepted, rejected (the refused parameter, with the
endpoint's suggestion and the ``param_map`` entry that fixes it) or failed
(any other error). Accepted calls go into the call cache: the run reuses them.
Each LLM judge sends one request too (its rubric and parameters, e.g. a
structured ``response_format``, on a stand-in response; not cached).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from changeover.config import MigrationSpec
from changeover.evaluate.requests import Planned, plan_requests
from changeover.evaluate.run import RunPlan, calling, plan_run
from changeover.judges import Ask, Case, build_judges
from changeover.prompts import Interaction
from changeover.providers import CachedCaller, ChatRequest, Completion, ModelClient, build_clients
from changeover.providers.rejection import Rejection
from changeover.store import Store


@dataclass
class ParamCheck:
    """One distinct parameter set of one arm, and what the endpoint said to it."""

    arm: str
    model: str
    params: dict[str, Any]
    tools: list[str]
    items: int  # how many of the run's requests share this parameter set
    example_item: str
    status: str = "pending"  # accepted | rejected | failed
    rejection: Rejection | None = None
    error: str | None = None

    @property
    def fix(self) -> str | None:
        """The ``param_map`` entry that would make the request acceptable, when the rejection says."""
        if self.rejection is None:
            return None
        target = self.rejection.suggest or "null"
        return f"models.{self.model}.param_map: {{{self.rejection.param}: {target}}}"

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if v is not None}
        if self.rejection is not None:
            out["rejection"] = self.rejection.to_dict()
            out["fix"] = self.fix
        return out


@dataclass
class CompatReport:
    """Every parameter set checked; ``ok`` when no model refused any and none failed."""

    checks: list[ParamCheck] = field(default_factory=list)
    not_checked: dict[str, int] = field(default_factory=dict)  # arm -> parameter sets over the limit

    @property
    def ok(self) -> bool:
        return all(c.status == "accepted" for c in self.checks)

    @property
    def rejected(self) -> list[ParamCheck]:
        return [c for c in self.checks if c.status == "rejected"]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [c.to_dict() for c in self.checks],
            "rejected": len(self.rejected),
            "failed": sum(c.status == "failed" for c in self.checks),
            "not_checked": self.not_checked,
        }


def _shape(planned: Planned) -> str:
    """What makes two requests the same for compatibility: their parameters and tool definitions."""
    blob = json.dumps([planned.request.params, planned.request.tools], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def check_requests(
    spec: MigrationSpec,
    interactions: list[Interaction],
    *,
    store: Store | None = None,
    clients: dict[str, ModelClient] | None = None,
    sample: int | None = None,
    prompt_ab: bool | None = None,
    seed: int | None = None,
    limit: int = 20,
) -> CompatReport:
    """Send one request per distinct parameter set (at most ``limit`` per arm) to each arm's model."""
    plan = plan_run(spec, interactions, sample=sample, prompt_ab=prompt_ab, seed=seed)
    own_clients = clients is None
    clients = clients if clients is not None else build_clients(spec, plan.models())
    report = CompatReport()
    groups: dict[tuple[str, str], tuple[ParamCheck, Planned]] = {}
    for row in plan_requests(plan.sampled, plan.arms, plan.registry, plan.cfg.params).values():
        for planned in row:
            key = (planned.arm.name, _shape(planned))
            if key in groups:
                groups[key][0].items += 1
                continue
            if sum(arm == planned.arm.name for arm, _ in groups) >= limit:
                report.not_checked[planned.arm.name] = report.not_checked.get(planned.arm.name, 0) + 1
                continue
            client = clients[planned.arm.model]
            sent = client.prepare(planned.request)
            check = ParamCheck(
                planned.arm.name,
                planned.arm.model,
                sent.params,
                sorted(t.get("function", t).get("name", "?") for t in sent.tools or []),
                1,
                planned.request.item or "",
            )
            groups[key] = (check, planned)
    judged: list[ParamCheck] = []
    asyncio.run(_send(plan, store, clients, own_clients, list(groups.values()), judged))
    report.checks = [check for check, _ in groups.values()] + judged
    return report


async def _send(
    plan: RunPlan,
    store: Store | None,
    clients: dict[str, ModelClient],
    close_clients: bool,
    groups: list[tuple[ParamCheck, Planned]],
    judged: list[ParamCheck],
) -> None:
    async with calling(plan, store, clients, close_clients) as caller:
        await asyncio.gather(
            *(_one(caller, clients, check, planned) for check, planned in groups),
            *(_judge_check(plan, clients, signal, judged) for signal, cfg in plan.judges.items() if cfg.kind == "llm"),
        )


async def _judge_check(plan: RunPlan, clients: dict[str, ModelClient], signal: str, out: list[ParamCheck]) -> None:
    """One request of an LLM judge, with its real rubric and parameters, on a stand-in response.

    Not cached (the response is not a model's); a re-ask after an unreadable answer is not sent.
    """
    cfg = plan.judges[signal]
    assert cfg.model is not None
    client = clients[cfg.model]
    first = plan.sampled[0].interaction
    check = ParamCheck(f"judge:{signal}", cfg.model, {}, [], len(plan.sampled) * len(plan.arms), first.item)

    def ask_for(_signal: str, _model: str) -> Ask:
        async def ask(request: ChatRequest) -> Completion:
            if check.status != "pending":  # the judge re-asking: the check has its answer
                return Completion(text=None, error="compatibility check: not re-asked")
            check.params = client.prepare(request).params
            completion = await client.complete(request)
            _settle(check, completion)
            return completion

        return ask

    judge = build_judges(plan.spec, {signal: cfg}, ask_for)[signal]
    text = "This is a compatibility check of the judge's request."
    await judge.score(Case(first.item, plan.arms[-1].name, first.prompt_text, text, incumbent_response=text))
    out.append(check)


async def _one(caller: CachedCaller, clients: dict[str, ModelClient], check: ParamCheck, planned: Planned) -> None:
    client = clients[planned.arm.model]
    completion, _cached = await caller.call(
        client, "response", planned.request.item or "", planned.version, planned.request
    )
    _settle(check, completion)


def _settle(check: ParamCheck, completion: Completion) -> None:
    if completion.rejection is not None:
        check.status, check.rejection = "rejected", completion.rejection
    elif not completion.ok:
        check.status, check.error = "failed", completion.error
    else:
        check.status = "accepted"
