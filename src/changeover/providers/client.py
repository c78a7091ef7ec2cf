"""A model as evaluation uses it: concurrency limit, rate limits, timeouts, retries, cost.

``ModelClient.complete`` never raises for a failed call: after the retries it
returns a ``Completion`` whose ``error`` says what went wrong. Retries back off
exponentially with jitter and honour ``Retry-After``. After ``breaker``
consecutive failures the model is considered down and calls fail fast (before
taking any rate budget), so a dead endpoint costs seconds, not hours, and the
other models carry on; after ``breaker_cooldown_s`` ONE call goes through as a
probe while the others keep failing fast: its success closes the breaker, its
failure opens it for another cool-down. ``keep`` runs on a successful
result while the call still holds its concurrency slot: the call cache stores
it there, so a crash loses at most ``concurrency`` calls per model.
``prepare`` puts the model's default ``params`` under the request's and applies
its ``param_map`` (rename/drop); a 400 that names a refused parameter comes
back with ``Completion.rejection`` set (rejection.py), is not retried and does
not count towards the breaker: the endpoint is up, the request needs mapping.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

from changeover.providers.base import CallFailed, ChatRequest, Completion, Provider
from changeover.providers.config import ModelConfig, Price
from changeover.providers.limits import RateLimits
from changeover.providers.params import apply_param_map
from changeover.providers.rejection import Rejection, classify_rejection


class ModelClient:
    """Wraps one provider with the limits and policies of its ``ModelConfig``."""

    def __init__(
        self,
        name: str,
        provider: Provider,
        config: ModelConfig | None = None,
        price: Price | None = None,
        seed: int = 0,
    ):
        self.name = name
        self.provider = provider
        self.config = config or ModelConfig()
        self.price = price
        self.limits = RateLimits(self.config.rpm, self.config.tpm)
        self._slots = asyncio.Semaphore(self.config.concurrency)
        self._rng = random.Random(seed)
        self.consecutive_failures = 0
        self._opened_at = 0.0
        self._probing = False

    def _down(self, attempts: int) -> Completion | None:
        """The fail-fast answer while the breaker is open or its probe is under way, else None."""
        if self.consecutive_failures < self.config.breaker:
            return None
        if time.monotonic() - self._opened_at >= self.config.breaker_cooldown_s and not self._probing:
            return None
        return Completion(
            text=None,
            error=f"{self.name}: endpoint down after {self.consecutive_failures} "
            "consecutive failures; call not attempted",
            attempts=attempts,
        )

    def _failed(self) -> None:
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.config.breaker:
            self._opened_at = time.monotonic()

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Delay before retry ``attempt`` (0-based): Retry-After if given, else jittered doubling."""
        if retry_after is not None:
            return min(retry_after, self.config.backoff_max_s)
        base = self.config.backoff_s * (2**attempt)
        return min(self.config.backoff_max_s, base * (0.5 + self._rng.random()))

    def prepare(self, request: ChatRequest) -> ChatRequest:
        """The request as this model is sent it: its default ``params`` under the request's, then ``param_map``."""
        if not self.config.params and not self.config.param_map:
            return request
        params = apply_param_map({**self.config.params, **request.params}, self.config.param_map)
        tools = request.tools
        if "tools" in self.config.param_map and self.config.param_map["tools"] is None:
            tools = None
        return ChatRequest(request.messages, params, tools, request.item)

    def rejection(self, failure: CallFailed, request: ChatRequest) -> Rejection | None:
        """The refused parameter of a failed call (a 400 naming one), else None."""
        sent = [*request.params, *(["tools"] if request.tools else [])]
        found = classify_rejection(failure.status, failure.body, sent)
        # the redacted message, never the raw body
        return found.with_message(f"{self.name}: {failure}") if found is not None else None

    async def complete(
        self, request: ChatRequest, keep: Callable[[Completion], Awaitable[None]] | None = None
    ) -> Completion:
        """Call the model (``request`` as the caller wrote it; ``prepare`` is applied here)."""
        request = self.prepare(request)
        attempts = 0
        while True:
            if (down := self._down(attempts)) is not None:
                return down
            await self.limits.acquire(request.estimated_tokens())
            async with self._slots:
                if (down := self._down(attempts)) is not None:
                    return down
                probe = self.consecutive_failures >= self.config.breaker  # half-open: the one probe
                if probe:
                    self._probing = True
                attempts += 1
                failure: CallFailed | None = None
                try:
                    async with asyncio.timeout(self.config.timeout_s):  # no extra task, unlike wait_for
                        result = await self.provider.complete(request)
                except CallFailed as exc:
                    failure = exc
                except TimeoutError:
                    failure = CallFailed(f"timed out after {self.config.timeout_s:g} s", retryable=True)
                finally:
                    if probe:
                        self._probing = False
                if failure is None:
                    self.consecutive_failures = 0
                    result.attempts = attempts
                    if self.price is not None and result.error is None:
                        result.cost_usd = self.price.cost(result.tokens_in, result.tokens_out)
                    if keep is not None and result.ok:
                        await keep(result)  # outside the retry handling: a paid call is never made again
                    return result
                rejection = None if failure.retryable else self.rejection(failure, request)
                if rejection is None:  # a refused parameter says the endpoint is up: not a breaker failure
                    self._failed()
            if rejection is not None or not failure.retryable or attempts > self.config.max_retries:
                return Completion(text=None, error=f"{self.name}: {failure}", attempts=attempts, rejection=rejection)
            await asyncio.sleep(self.backoff(attempts - 1, failure.retry_after))

    async def aclose(self) -> None:
        await self.provider.aclose()
