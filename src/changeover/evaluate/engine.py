"""The run: every arm answers every sampled interaction (replaying tool calls), every judge scores it.

One ``Evaluation`` turns sampled interactions into records: one per (item,
arm), with a signal per judge. Calls go through the call cache; a failed call
leaves its record with ``error`` set (a refused request parameter with
``extra.rejected`` instead), and the other arms' results are intact.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import replace
from typing import Any

from changeover.config import MigrationSpec
from changeover.evaluate.conversation import Replay, replay_turn
from changeover.evaluate.progress import ProgressCallback
from changeover.evaluate.requests import Planned, plan_requests
from changeover.evaluate.results import ArmStats
from changeover.judges import Case, Judge, Verdict
from changeover.prompts import Arm, Registry
from changeover.prompts.sampling import Sampled
from changeover.providers import CachedCaller, ChatRequest, Completion, ModelClient
from changeover.records import Record


class Evaluation:
    """One evaluation run over sampled interactions, arms and judges (use ``run``)."""

    def __init__(
        self,
        spec: MigrationSpec,
        sampled: list[Sampled],
        arms: list[Arm],
        registry: Registry,
        clients: dict[str, ModelClient],
        judges: dict[str, Judge],
        caller: CachedCaller,
        params: dict[str, Any] | None = None,
        judge_calls: dict[str, ArmStats] | None = None,
        max_tool_rounds: int = 8,
        samples: int = 1,
    ):
        self.spec = spec
        self.sampled = sampled
        self.arms = arms
        self.registry = registry
        self.clients = clients
        self.judges = judges
        self.caller = caller
        self.params = params or {}
        self.max_tool_rounds = max_tool_rounds
        self.samples = samples
        self.arm_stats = {a.name: ArmStats() for a in arms}
        self.judge_stats: dict[str, Counter[str]] = {s: Counter() for s in judges}
        self.judge_calls = judge_calls if judge_calls is not None else {}  # per LLM-judged signal
        self._planned: dict[str, list[Planned]] = {}
        self._progress: ProgressCallback | None = None
        self._done: Counter[str] = Counter()
        self._totals: dict[str, int] = {}

    async def run(self, progress: ProgressCallback | None = None) -> list[Record]:
        self.render_all()
        self._progress = progress
        n = len(self.sampled) * len(self.arms) * self.samples
        self._totals = {"responses": n, "judgements": n * len(self.judges)}
        per_item = await asyncio.gather(*(self._item(s, k) for s in self.sampled for k in range(self.samples)))
        return [rec for recs in per_item for rec in recs]

    def _advance(self, task: str) -> None:
        self._done[task] += 1
        if self._progress is not None:
            self._progress(task, self._done[task], self._totals[task])

    def render_all(self) -> None:
        """Render every (interaction, arm) before any call: a bad template fails the run up front."""
        self._planned = plan_requests(self.sampled, self.arms, self.registry, self.params)

    async def _item(self, sampled: Sampled, sample: int) -> list[Record]:
        """Every arm's answer to one interaction (its ``sample``-th draw), judged."""
        planned = self._planned[sampled.interaction.item]
        replays = await asyncio.gather(*(self._respond(p, sample) for p in planned))
        incumbent = replays[0]
        recorded = planned[0].turn
        reference_calls = recorded.recorded_calls if recorded.has_recording else incumbent.calls
        return list(
            await asyncio.gather(
                *(
                    self._judge(p, sampled, replay, incumbent.completion.text, reference_calls, sample)
                    for p, replay in zip(planned, replays, strict=True)
                )
            )
        )

    async def _respond(self, planned: Planned, sample: int = 0) -> Replay:
        arm, stats = planned.arm, self.arm_stats[planned.arm.name]
        kind = "response" if sample == 0 else f"response#{sample}"  # each draw its own cached call

        async def call(request: ChatRequest) -> Completion:
            client = self.clients[arm.model]
            completion, cached = await self.caller.call(client, kind, request.item or "", planned.version, request)
            stats.add(completion, cached)
            return completion

        replay = await replay_turn(call, planned.request, planned.turn, self.max_tool_rounds)
        completion = replay.completion
        if not completion.text and completion.tool_calls:  # a copy: the cached completion stays as called
            replay.completion = replace(completion, text=json.dumps(completion.tool_calls, ensure_ascii=False))
        self._advance("responses")
        return replay

    async def _judge(
        self,
        planned: Planned,
        sampled: Sampled,
        replay: Replay,
        incumbent_text: str | None,
        reference_calls: list[Any],
        sample: int = 0,
    ) -> Record:
        inter, arm, answer = sampled.interaction, planned.arm, replay.completion
        rejected = answer.rejection
        response = None if rejected else answer.text
        # an answered call with no text and no tool call (content null: a content filter, a reasoning
        # model that spent max_completion_tokens thinking) gave the user nothing: an empty response,
        # which assess counts as a failure - None would read as "no text recorded" and drop it
        empty = response is None and answer.ok and not rejected
        case = Case(
            item=inter.item,
            model=arm.name,
            prompt=inter.prompt_text,
            response=response,
            messages=planned.request.messages,
            reference=inter.reference,
            incumbent_response=incumbent_text,
            is_incumbent=arm.name == self.spec.incumbent,
            expect_refusal=inter.expect_refusal,
            tools=planned.request.tools,
            tool_calls=replay.calls,
            incumbent_tool_calls=reference_calls,
        )
        names = list(self.judges)
        verdicts = await asyncio.gather(*(self._score(self.judges[s], case) for s in names))
        notes = {s: v.note for s, v in zip(names, verdicts, strict=True) if v.value is None and v.note}
        failed_checks = {  # why a deterministic check said no (e.g. which tool was not called)
            s: v.note
            for s, v in zip(names, verdicts, strict=True)
            if v.value == 0 and v.note and self.judges[s].identity["judge"].startswith("check:")
        }
        extra: dict[str, Any] = {
            "prompt_version": planned.version,
            "judges": {s: self.judges[s].identity for s in names},
        }
        if self.samples > 1:
            extra["sample"] = sample
        if answer.finish_reason:
            extra["finish_reason"] = answer.finish_reason
        if answer.ttft_ms is not None:
            extra["ttft_ms"] = round(answer.ttft_ms, 3)
        if planned.request.tools or replay.calls:
            extra["tool_status"] = replay.status
            extra["tool_calls"] = [c.to_dict() for c in replay.calls]
            extra["tool_rounds"] = replay.rounds
            if replay.divergence:
                extra["tool_divergence"] = replay.divergence.to_dict()
        if rejected:
            extra["rejected"] = rejected.to_dict()
        if empty:
            extra["empty_answer"] = answer.finish_reason or "no content"
        if notes:
            extra["unscorable"] = notes
        if failed_checks:
            extra["check_notes"] = failed_checks
        return Record(
            item=inter.item,
            model=arm.name,
            segment=dict(inter.segment),
            signals={s: v.value for s, v in zip(names, verdicts, strict=True)},
            prompt=inter.prompt_text,
            response="" if empty else response,
            reference=inter.reference,
            latency_ms=_round(answer.latency_ms),
            tokens_in=_num(answer.tokens_in),
            tokens_out=_num(answer.tokens_out),
            cost_usd=answer.cost_usd,
            error=None if rejected else answer.error,
            weight=round(sampled.weight, 6),
            extra=extra,
        )

    async def _score(self, judge: Judge, case: Case) -> Verdict:
        verdict = await judge.score(case)
        self.judge_stats[judge.signal]["unscorable" if verdict.value is None else "scored"] += 1
        self._advance("judgements")
        return verdict


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _num(x: int | None) -> float | None:
    return None if x is None else float(x)
