"""The judging worker: the spec's ``judges:`` on a sample of mirrored pairs, written as records in the store.

Never on the request path: the mirror hands a finished pair (the incumbent's
served answer and the candidate's mirrored one) to ``offer``, which only puts
it on a bounded queue (full: dropped, counted). One background thread with its
own event loop judges the pairs through the same functions evaluate uses
(``judges.build_judges`` and ``Judge.score`` on a ``Case``) and the same call
cache (``providers.CachedCaller`` over ``CallCache``), so a pair judged before
- by this gateway before a restart, or by evaluate - is not judged again.

A budget bounds the judge models' spend: calls per minute and USD per UTC day.
A pair reserves its base calls (one per LLM judge and answer, none where the
rubric or the pre-filter spares it) and gives back those it did not make (cache
hits); a re-ask after an unreadable reply takes one more call from the budget
when it is made, and a re-ask that does not fit is not made: that judgement
fails (unscorable, counted in ``reasks_refused``), never a pass. So the calls
made in any minute never exceed ``requests_per_minute``, and a spec whose one
pair needs more base calls than that is refused at start-up (``for_spec``). A
pair whose base calls do not fit is paused (counted once in ``paused`` by
reason) and put back in a bounded waiting line (``waiting``; full: dropped,
counted); the worker takes it again as soon as the minute (or the UTC day)
frees enough of the budget (``requeued``). Word similarity is the
pre-filter: a candidate answer identical in words to the incumbent's (or equal
JSON) takes the incumbent's verdicts without a judge call (``prefiltered``).

With a ``comparison`` judge among the spec's judges (``judges.comparison``), each
pair where both models answered gets a class - equivalent, better, worse or
different, from the candidate's side - stored with the candidate's record
(``extra.comparison``: class, and ``by``: judge or prefilter); a reply the judge
could not make readable is a failed comparison (class None, counted in
``compared["failed"]``), never "equivalent".

Each judged pair becomes two records (incumbent, candidate) in the store's
``responses`` (``store.responses.add_records``): item = request id, segment =
request type and time of week (UTC ``Tue 09h``), signals = the judges'
verdicts, so ``changeover assess --spec S`` decides on them as they are.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import queue
import threading
import time
import zlib
from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from changeover.config import MigrationSpec
from changeover.errors import SpecError
from changeover.judges import Ask, Case, build_judges, judge_configs, judge_models
from changeover.judges.base import Judge, Verdict
from changeover.judges.comparison import Comparison, comparison_signal
from changeover.judges.llm import REMINDER
from changeover.providers import CachedCaller, CallCache, ChatRequest, Completion, build_clients, model_configs
from changeover.records import Record
from changeover.shadow.config import JudgeSettings
from changeover.shadow.context import ExpectRefusal
from changeover.shadow.exchange import Exchange
from changeover.shadow.rows import RowMaker
from changeover.shadow.shared_budget import SharedBudget
from changeover.shadowlog.answers import Answer as LoggedAnswer
from changeover.shadowlog.answers import Pair, load_answers, pairs, reverse_pairs
from changeover.shadowlog.checks import is_refusal, similarity
from changeover.shadowlog.export import JUDGED_SOURCE
from changeover.shadowlog.requests import last_user_message
from changeover.store import Store
from changeover.store.lease import NamedLease
from changeover.store.responses import add_records, load_records_counted

log = logging.getLogger("changeover.gateway")

SOURCE = JUDGED_SOURCE  # the records' source in the store: the p_regression trigger reads them by it
REFRESH_CALLER_EVERY = 1000  # pairs
NO_CALL_FOR_INCUMBENT = ("equivalence", "pairwise", "comparison")  # rubrics comparing with the incumbent's answer
_STOP = object()
BUDGET_WINDOW_S = 60.0  # requests_per_minute's window
RESUME_LEASE, RESUME_LEASE_TTL = "judge-resume", 30.0  # held from its resume to its close by one process


def time_of_week(at: datetime) -> str:
    """The segment a user reads the shadow period's coverage by: weekday and hour, UTC (``Tue 09h``)."""
    return f"{at:%a %H}h"


@dataclass(frozen=True, slots=True)
class MirroredPair:
    """What the judges need of one mirrored request: both answers as exchanged, and the request context.
    ``rows``: the answers already parsed (a pair read back from the shadow log after a restart)."""

    incumbent: Exchange
    candidate: Exchange
    expect_refusal: bool | None = None
    rows: tuple[dict[str, Any], dict[str, Any]] | None = None


def logged_pair(pair: Pair, expect_refusal: bool | None) -> MirroredPair:
    """A pair from the shadow log (the request redacted as logged), for judging after a restart."""

    def exchange(a: LoggedAnswer) -> Exchange:
        return Exchange(
            request_id=a.request_id,
            at=a.at,
            model=a.model,
            role=a.role,
            request_type=a.request_type,
            subject=a.subject,
            stage=a.stage,
            weight=0,
            stream=False,
            payload=a.request,
            body=None,
            status=a.status,
            error=a.error,
            latency_ms=a.latency_ms or 0.0,
            prompt=a.prompt_version,
        )

    def row(a: LoggedAnswer) -> dict[str, Any]:
        return {
            "model": a.model,
            "role": a.role,
            "response_text": a.text,
            "error": a.error,
            "refusal": a.refusal,
            "tokens_estimated": a.tokens_estimated,
            "prompt_version": a.prompt_version,
            "latency_ms": a.latency_ms,
            "tokens_in": a.tokens_in,
            "tokens_out": a.tokens_out,
            "cost_usd": a.cost_usd,
        }

    return MirroredPair(
        exchange(pair.incumbent), exchange(pair.candidate), expect_refusal, (row(pair.incumbent), row(pair.candidate))
    )


@dataclass(slots=True)
class _PairBudget:
    """One pair's share of the calls budget: its base calls reserved at ``at`` (in the shared ``period``),
    those made so far."""

    at: float
    period: str | None
    reserved: int
    made: int = 0


_PAIR_BUDGET: contextvars.ContextVar[_PairBudget | None] = contextvars.ContextVar("judge_budget_of_pair", default=None)


@dataclass(frozen=True, slots=True)
class _Paused:
    """A pair the budget could not take now: which budget, and the base calls it needs."""

    budget: str
    need: int


@dataclass(slots=True)
class _Waiting:
    """A paused pair in the waiting line, with the base calls it needs when it is taken again."""

    pair: MirroredPair
    need: int


@dataclass(slots=True)
class _Answer:
    """One side of a pair, parsed (in the worker, never on the request path)."""

    row: dict[str, Any]

    @property
    def text(self) -> str | None:
        return self.row["response_text"] if self.row["error"] is None else None


class JudgeWorker:
    """Owns the pair queue, the budget and the thread; counters are plain ints read by /metrics."""

    def __init__(self, spec: MigrationSpec, store: Store, settings: JudgeSettings, rows: RowMaker):
        self.spec = spec
        self.store = store
        self.settings = settings
        self.rows = rows
        self.configs = judge_configs(spec)
        llm = [c for c in self.configs.values() if c.kind == "llm"]
        self.llm_judges = len(llm)  # judge calls for a candidate answer
        self.incumbent_calls = sum(1 for c in llm if c.rubric not in NO_CALL_FOR_INCUMBENT)  # ... for the incumbent's
        self.comparison = comparison_signal(self.configs)  # the comparison judge's signal (None: not declared)
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=settings.queue_size)
        self.offered = 0
        self.dropped = 0  # the queue was full
        self.judged = 0  # pairs written as records
        self.prefiltered = 0  # candidate answers that took the incumbent's verdicts (no judge call)
        self.compared: Counter[str] = Counter()  # pairs per comparison class; "failed": no readable verdict
        self.paused: Counter[str] = Counter()  # pairs set aside (once each), by the budget that was spent
        self.requeued = 0  # paused pairs taken again from the waiting line when the budget had room
        self.reasks_refused = 0  # re-asks not made (the budget was spent): failed judgements, never passes
        self.errors = 0  # pairs that failed (a judge's bug, the store refusing the records)
        self.resumed = 0  # pairs read back from the shadow log at start (not judged before a restart)
        self.judge_calls = 0  # judge model calls made (cache hits excluded)
        self.cache_hits = 0
        self.spent_usd: dict[str, float] = {}  # UTC day -> judge spend
        # the same budget counted in the store: every replica on it shares it (shadow.shared_budget)
        name = f"judge:{spec.incumbent}>{'+'.join(spec.candidates)}"
        self.shared = (  # only PostgreSQL is shared by several processes (--workers refuses SQLite)
            SharedBudget(store, name, settings.requests_per_minute, settings.usd_per_day)
            if store.dialect == "postgresql"
            else None
        )
        self._calls: deque[float] = deque()  # monotonic times of the last minute's judge calls (ascending)
        self.window_s = BUDGET_WINDOW_S  # requests_per_minute's window (tests shorten it)
        self._waiting: deque[_Waiting] = deque()  # paused pairs, oldest first (at most queue_size)
        self._thread: threading.Thread | None = None
        self._resume_lease = NamedLease(store, RESUME_LEASE, RESUME_LEASE_TTL)  # released at close
        self._pending = 0  # pairs queued or being judged
        self._settled = threading.Condition()

    @classmethod
    def for_spec(cls, spec: MigrationSpec, store: Store, settings: JudgeSettings, rows: RowMaker) -> JudgeWorker:
        """The worker for ``shadow.judge``; the spec's ``judges:`` section must be there."""
        if not judge_configs(spec):
            raise SpecError(
                f"{spec.path or 'spec'}: field 'shadow.judge' needs the spec's 'judges:' section (the judges "
                "evaluate runs), e.g. judges: {correctness: {kind: llm, model: <judge model>, rubric: correctness}}"
            )
        missing = [m for m in judge_models(judge_configs(spec)) if m not in model_configs(spec)]
        if missing:
            raise SpecError(
                f"{spec.path or 'spec'}: field 'models' has no entry for the judge model {missing[0]!r}; "
                f"add models: {{{missing[0]}: {{base_url: ...}}}}"
            )
        worker = cls(spec, store, settings, rows)
        if settings.requests_per_minute < worker.base_calls:
            raise SpecError(
                f"{spec.path or 'spec'}: field 'shadow.judge.requests_per_minute' is {settings.requests_per_minute}, "
                f"fewer than the {worker.base_calls} judge calls one pair needs ({worker.llm_judges} LLM judge(s) on "
                f"the candidate's answer, {worker.incumbent_calls} on the incumbent's): no pair could ever be "
                f"judged; set it to at least {worker.base_calls} or declare fewer LLM judges"
            )
        return worker

    @property
    def base_calls(self) -> int:
        """The most judge calls one pair makes without re-asks (both answers, no pre-filter)."""
        return self.incumbent_calls + self.llm_judges

    # ------------------------------------------------------------------ request side (never blocks)

    def wanted(self, request_id: str, request_type: str) -> bool:
        """Sampled by the request id's hash: the same answer on every replica and after a restart."""
        rate = self.settings.rate(request_type)
        return rate >= 1.0 or (rate > 0.0 and zlib.crc32(request_id.encode()) / 2**32 < rate)

    def offer(self, pair: MirroredPair) -> bool:
        """Queue a pair for judging if sampled; False when not sampled or dropped (counted)."""
        if not self.wanted(pair.incumbent.request_id, pair.incumbent.request_type):
            return False
        self.offered += 1
        with self._settled:
            try:
                self.queue.put_nowait(pair)
            except queue.Full:
                self.dropped += 1
                return False
            self._pending += 1
        return True

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> JudgeWorker:
        self._thread = threading.Thread(target=self._run, name="changeover-judge", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 30.0) -> None:
        """Stop after the pairs being judged; pairs still queued or waiting for the budget are dropped
        (counted; the next start resumes them from the shadow log)."""
        if self._thread is None:
            return
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                self.dropped += 1
                self._done(1)
        self.queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None
        self._resume_lease.release()
        self.dropped += len(self._waiting)
        self._waiting.clear()

    def wait_idle(self, timeout: float) -> bool:
        """Every queued pair judged or waiting for the budget (for tests and the benchmark); False on timeout."""
        with self._settled:
            return self._settled.wait_for(lambda: self._pending == 0, timeout)

    def _done(self, n: int) -> None:
        with self._settled:
            self._pending -= n
            self._settled.notify_all()

    def to_json(self) -> dict[str, Any]:
        return {
            "offered": self.offered,
            "resumed": self.resumed,
            "judged": self.judged,
            "dropped": self.dropped,
            "prefiltered": self.prefiltered,
            "compared": dict(self.compared),
            "paused": dict(self.paused),
            "waiting": len(self._waiting),
            "requeued": self.requeued,
            "reasks_refused": self.reasks_refused,
            "errors": self.errors,
            "shared_budget_errors": self.shared.errors if self.shared is not None else 0,
            "judge_calls": self.judge_calls,
            "cache_hits": self.cache_hits,
            "spent_usd_today": self.spent_usd.get(_today(), 0.0),
            "queued": self.queue.qsize(),
        }

    # ------------------------------------------------------------------ budget

    def _spent_here(self, need: int) -> str | None:
        """Which of this process's budgets ``need`` more judge calls would exceed now (None: they fit)."""
        if self.spent_usd.get(_today(), 0.0) >= self.settings.usd_per_day:
            return "usd_per_day"
        horizon = time.monotonic() - self.window_s
        while self._calls and self._calls[0] < horizon:
            self._calls.popleft()
        if len(self._calls) + need > self.settings.requests_per_minute:
            return "requests_per_minute"
        return None

    def _spent(self, need: int) -> str | None:
        """Which budget ``need`` more judge calls would exceed now (None: they fit); off the event loop."""
        spent = self._spent_here(need)
        if spent is None and self.shared is not None:
            spent = self.shared.spent(need, self.window_s)
        return spent

    async def _reserve(self, need: int, day: bool = True) -> tuple[str | None, float, str | None]:
        """Reserve ``need`` judge calls here and in the shared budget: (None: reserved, else the budget that is
        spent; the local reservation time; the shared window reserved in). ``_give_back`` returns unused ones."""
        at = time.monotonic()
        here = self._spent_here(need)
        if here == "requests_per_minute" or (day and here is not None):  # a re-ask (day=False): the minute only
            return here, at, None
        self._calls.extend([at] * need)  # taken before the store is asked: pairs reserving meanwhile see them
        period = None
        if need > 0 and self.shared is not None:
            shared, period = await asyncio.to_thread(self.shared.reserve, need, self.window_s, day)
            if shared is not None:
                self._forget(at, need)
                return shared, at, None
        return None, at, period

    def _refill_in(self, need: int) -> float:
        """Seconds until ``need`` calls fit again: the oldest reservations leave the minute (or the UTC day
        turns, the day's spend having passed ``usd_per_day``), or the shared budget has room again."""
        if self.shared is not None and (shared := self.shared.refill_in(need, self.window_s)) is not None:
            return shared
        if self.spent_usd.get(_today(), 0.0) >= self.settings.usd_per_day:
            return max(1.0, 86400.0 - time.time() % 86400.0)
        excess = len(self._calls) + need - self.settings.requests_per_minute
        if not self._calls:  # nothing to leave the minute (a pair needing more than it: for_spec refuses that)
            return self.window_s
        return max(0.01, self._calls[min(max(excess, 1), len(self._calls)) - 1] + self.window_s - time.monotonic())

    def _forget(self, at: float, unused: int) -> None:
        for _ in range(unused):
            if at not in self._calls:  # already past the minute
                return
            self._calls.remove(at)

    async def _give_back(self, at: float, period: str | None, unused: int) -> None:
        if unused <= 0:
            return
        self._forget(at, unused)
        if self.shared is not None and period is not None:
            await asyncio.to_thread(self.shared.give_back, period, unused, self.window_s)

    async def _count_call(self, completion: Completion, cached: bool) -> None:
        if cached:
            self.cache_hits += 1
            return
        self.judge_calls += 1
        if completion.cost_usd:
            day = _today()
            self.spent_usd[day] = self.spent_usd.get(day, 0.0) + completion.cost_usd
            if self.shared is not None:
                await asyncio.to_thread(self.shared.add_usd, completion.cost_usd)

    # ------------------------------------------------------------------ the worker thread

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:  # noqa: BLE001 - judging must never take the gateway down; logged
            log.exception("the judging worker stopped")

    async def _main(self) -> None:
        cache = CallCache(self.store)
        callers = [CachedCaller(cache)]  # replaced now and then: a caller keeps every answer it saw in memory
        clients = build_clients(self.spec, judge_models(self.configs))

        def ask_for(signal: str, model: str) -> Ask:
            async def ask(request: ChatRequest) -> Completion:
                budget = _PAIR_BUDGET.get()
                extra: tuple[float, str | None] | None = None  # a re-ask's own call, taken from the budget now
                if budget is not None and _is_reask(request):
                    spent, at, period = await self._reserve(1, day=False)
                    if spent is not None:
                        self.reasks_refused += 1
                        why = "shadow.judge.requests_per_minute" if spent == "requests_per_minute" else spent
                        return Completion(text=None, error=f"judging budget spent ({why}): re-ask not made")
                    extra = (at, period)
                try:
                    completion, cached = await callers[0].call(
                        clients[model], f"judge:{signal}"[:32], request.item or "", "judge", request
                    )
                except BaseException:
                    if extra is not None:  # the re-ask's call did not complete: its reservation goes back
                        await self._give_back(*extra, 1)
                    raise
                await self._count_call(completion, cached)
                if extra is not None and cached:
                    await self._give_back(*extra, 1)
                elif budget is not None and extra is None and not cached:
                    budget.made += 1
                return completion

            return ask

        judges = build_judges(self.spec, self.configs, ask_for)
        if self.settings.resume > 0:
            await asyncio.to_thread(self._resume)
        served = 0
        try:
            while True:
                batch = await asyncio.to_thread(self._take)
                if batch is None:
                    return
                records: list[Record] = []
                results = await asyncio.gather(*(self._judge(judges, p) for p, _ in batch))
                for (pair, again), result in zip(batch, results, strict=True):
                    if isinstance(result, _Paused):
                        self._wait(pair, result, again)
                    else:
                        records += result
                if records:
                    self._write(records)
                self._done(len(batch))
                served += len(batch)
                if served >= REFRESH_CALLER_EVERY:
                    callers[0], served = CachedCaller(cache), 0  # the store keeps the cache; memory stays bounded
        finally:
            await cache.close()
            await asyncio.gather(*(c.aclose() for c in clients.values()))

    def _resume(self) -> None:
        """Queue the sampled pairs of the last ``resume`` seconds the store has no judged records of:
        those still queued or in flight when the gateway stopped (the cache spares what was judged)."""
        started = datetime.now(UTC)  # pairs logged from now on come through offer()
        since = started - timedelta(seconds=self.settings.resume)
        try:
            # processes starting together (replicas, serve --workers): one of them resumes, not each
            if not self._resume_lease.hold():
                log.info("another gateway process resumes the unjudged pairs")
                return
            answers = load_answers(self.store, since=since, models=self.spec.models, with_request=True)
            done = {
                (r.item, r.model) for r in load_records_counted(self.store, self.spec.models, JUDGED_SOURCE, since)[0]
            }
        except Exception:  # noqa: BLE001 - the store away at start-up: nothing resumed, logged
            log.exception("cannot read the shadow log to resume judging")
            return
        refusal = ExpectRefusal(self.settings)
        for candidate in self.spec.candidates:
            # forward (the incumbent served, the candidate mirrored) and, from the hold, reverse (the candidate
            # served, the incumbent reverse-mirrored): the sides as the mirror hands them to offer()
            forward = [(p, p.incumbent) for p in pairs(answers, self.spec.incumbent, candidate)]
            reverse = [(p, p.candidate) for p in reverse_pairs(answers, self.spec.incumbent, candidate)]
            for pair, served in forward + reverse:
                rid, kind = pair.incumbent.request_id, pair.incumbent.request_type
                if served.at >= started or (rid, candidate) in done or not self.wanted(rid, kind):
                    continue
                with self._settled:
                    try:
                        self.queue.put_nowait(logged_pair(pair, refusal(kind, {})))
                    except queue.Full:
                        return
                    self._pending += 1
                self.resumed += 1

    def _wait(self, pair: MirroredPair, paused: _Paused, again: bool) -> None:
        """Put a paused pair in the waiting line (full: dropped, counted); counted in ``paused`` once."""
        if not again:
            self.paused[paused.budget] += 1
        if len(self._waiting) >= self.settings.queue_size:
            self.dropped += 1
            return
        self._waiting.append(_Waiting(pair, paused.need))

    def _ready(self) -> list[tuple[MirroredPair, bool]]:
        """The waiting pairs the budget has room for now, oldest first (up to ``concurrency``)."""
        out: list[tuple[MirroredPair, bool]] = []
        need = 0
        while self._waiting and len(out) < self.settings.concurrency:
            head = self._waiting[0]
            if self._spent(need + head.need) is not None:
                break
            need += head.need
            out.append((self._waiting.popleft().pair, True))
        if out:
            self.requeued += len(out)
            with self._settled:
                self._pending += len(out)
        return out

    def _take(self) -> list[tuple[MirroredPair, bool]] | None:
        """Up to ``concurrency`` pairs - paused ones first once the budget has room for them, then new ones
        (waiting for the first, or until the budget refills); each with whether it was paused before.
        None to stop."""
        while True:
            batch = self._ready()
            if not batch:
                timeout = self._refill_in(self._waiting[0].need) if self._waiting else None
                try:
                    first = self.queue.get(timeout=timeout)
                except queue.Empty:
                    continue  # the budget has refilled: the waiting pairs go first
                if first is _STOP:
                    return None
                batch = [(first, False)]
            while len(batch) < self.settings.concurrency:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    self.queue.put(_STOP)  # seen after this batch
                    break
                batch.append((item, False))
            return batch

    async def _judge(self, judges: dict[str, Judge], pair: MirroredPair) -> list[Record] | _Paused:
        try:
            inc_row, cand_row = pair.rows or (self.rows(pair.incumbent)[0], self.rows(pair.candidate)[0])
            inc, cand = _Answer(inc_row), _Answer(cand_row)
            same = inc.text is not None and cand.text is not None and self._same(inc.text, cand.text)
            need = self.incumbent_calls + (0 if same else self.llm_judges)  # re-asks: from the budget when made
            spent, at, period = await self._reserve(need)
            if spent is not None:
                return _Paused(spent, need)
            budget = _PairBudget(at, period, need)  # the ask functions count its base calls (cache hits excluded)
            token = _PAIR_BUDGET.set(budget)
            try:
                payload = pair.incumbent.payload or {}
                inc_case = self._case(pair, inc, inc, payload, is_incumbent=True)
                inc_verdicts = await _score(judges, inc_case)
                if same:
                    self.prefiltered += 1
                    cand_verdicts = inc_verdicts
                else:
                    cand_verdicts = await _score(judges, self._case(pair, cand, inc, payload, is_incumbent=False))
            finally:
                _PAIR_BUDGET.reset(token)
                await self._give_back(at, period, budget.reserved - budget.made)
            compared = self._compared(inc, cand, cand_verdicts, same)
            return [
                self._record(pair, inc, inc_verdicts, judges),
                self._record(pair, cand, cand_verdicts, judges, compared),
            ]
        except Exception:  # noqa: BLE001 - one pair's failure must not stop the worker; counted
            self.errors += 1
            log.exception("judging request %s failed", pair.incumbent.request_id)
            return []

    def _compared(self, inc: _Answer, cand: _Answer, verdicts: dict[str, Verdict], same: bool) -> dict[str, Any] | None:
        """The pair's comparison class and how it was reached; None without a comparison judge or when
        a model gave no answer (the error rate covers those)."""
        if self.comparison is None or inc.text is None or cand.text is None:
            return None
        label: str | None
        if same:
            label, by = "equivalent", "prefilter"
        else:
            verdict = verdicts.get(self.comparison)
            label, by = (verdict.label if isinstance(verdict, Comparison) else None), "judge"
        self.compared[label or "failed"] += 1
        return {"signal": self.comparison, "class": label, "by": by}

    def _same(self, a: str, b: str) -> bool:
        return is_refusal(a) == is_refusal(b) and similarity(a, b) >= self.settings.prefilter_similarity

    def _case(
        self, pair: MirroredPair, answer: _Answer, incumbent: _Answer, payload: dict[str, Any], is_incumbent: bool
    ) -> Case:
        messages = payload.get("messages")
        return Case(
            item=pair.incumbent.request_id,
            model=answer.row["model"],
            prompt=last_user_message(payload),
            response=answer.text,
            messages=messages if isinstance(messages, list) else [],
            incumbent_response=incumbent.text,
            is_incumbent=is_incumbent,
            expect_refusal=pair.expect_refusal,
            tools=payload.get("tools") if isinstance(payload.get("tools"), list) else None,
        )

    def _record(
        self,
        pair: MirroredPair,
        answer: _Answer,
        verdicts: dict[str, Verdict],
        judges: dict[str, Judge],
        compared: dict[str, Any] | None = None,
    ) -> Record:
        row = answer.row
        notes = {s: v.note for s, v in verdicts.items() if v.value is None and v.note}
        extra: dict[str, Any] = {
            "source": SOURCE,
            "role": row["role"],
            "prompt_version": row["prompt_version"],
            "judges": {s: judges[s].identity for s in verdicts},
            "refused": bool(row["refusal"]),
            "tokens_estimated": bool(row["tokens_estimated"]),
        }
        if pair.expect_refusal is not None:
            extra["expect_refusal"] = pair.expect_refusal
        if notes:
            extra["unscorable"] = notes
        if compared is not None:
            extra["comparison"] = compared
        return Record(
            item=pair.incumbent.request_id,
            model=row["model"],
            segment={"request_type": pair.incumbent.request_type, "time_of_week": time_of_week(pair.incumbent.at)},
            signals={s: v.value for s, v in verdicts.items()},
            prompt=last_user_message(pair.incumbent.payload) or None,
            response=row["response_text"],
            latency_ms=row["latency_ms"],
            tokens_in=None if row["tokens_in"] is None else float(row["tokens_in"]),
            tokens_out=None if row["tokens_out"] is None else float(row["tokens_out"]),
            cost_usd=row["cost_usd"],
            error=row["error"],
            extra=extra,
        )

    def _write(self, records: list[Record]) -> None:
        try:
            add_records(self.store, records, source=SOURCE)
            self.judged += len(records) // 2
        except Exception:  # noqa: BLE001 - the store refused or is away: these pairs are lost, counted
            self.errors += len(records) // 2
            log.exception("cannot store %d judged shadow records", len(records))


async def _score(judges: dict[str, Judge], case: Case) -> dict[str, Verdict]:
    names = list(judges)
    verdicts = await asyncio.gather(*(judges[s].score(case) for s in names))
    return dict(zip(names, verdicts, strict=True))


def _is_reask(request: ChatRequest) -> bool:
    """The LLM judge's re-ask after an unreadable reply (its last message is the format reminder)."""
    last = request.messages[-1] if request.messages else None
    return isinstance(last, dict) and last.get("content") == REMINDER


def _today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())
