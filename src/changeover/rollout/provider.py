"""changeover's OpenFeature provider: the rollout flag as an OpenFeature string flag.

``client.get_string_value(flag, incumbent, EvaluationContext(targeting_key=user))``
returns the model that serves this user. Teams on Unleash or flagd can swap in
their provider; the gateway only talks to the OpenFeature client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider import AbstractProvider, Metadata

from changeover.rollout.routing import bucket, serves_candidate
from changeover.rollout.watch import FlagWatcher


@dataclass
class ChangeoverMetadata(Metadata):
    name: str = "changeover"


class ChangeoverProvider(AbstractProvider):
    """Resolves the rollout flag from the store (through a ``FlagWatcher``) to a model name."""

    def __init__(self, watcher: FlagWatcher, incumbent: str):
        super().__init__()
        self.watcher = watcher
        self.incumbent = incumbent

    def get_metadata(self) -> Metadata:
        return ChangeoverMetadata()

    def shutdown(self) -> None:
        self.watcher.stop()

    def _unknown(self, flag_key: str, default: Any) -> FlagResolutionDetails[Any]:
        return FlagResolutionDetails(
            value=default,
            reason=Reason.ERROR,
            error_code=ErrorCode.FLAG_NOT_FOUND,
            error_message=f"changeover serves only the flag '{self.watcher.config.flag}', not '{flag_key}'",
        )

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        if flag_key != self.watcher.config.flag:
            return self._unknown(flag_key, default_value)
        state = self.watcher.state
        key = evaluation_context.targeting_key if evaluation_context else None
        on_candidate = serves_candidate(flag_key, key, state.weight)
        meta = {
            "stage": state.stage,
            "weight": state.weight,
            "status": state.status,
            "version": state.version,
        }
        if key is not None:
            meta["bucket"] = bucket(flag_key, key)
        return FlagResolutionDetails(
            value=state.candidate if on_candidate else self.incumbent,
            variant="candidate" if on_candidate else "incumbent",
            reason=Reason.SPLIT if 0 < state.weight < 100 else Reason.STATIC,
            flag_metadata=meta,
        )

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[Any] | Mapping[str, Any],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Any]:
        if flag_key != self.watcher.config.flag:
            return self._unknown(flag_key, default_value)
        return FlagResolutionDetails(value=self.watcher.state.to_json(), reason=Reason.STATIC)

    def _not_typed(self, flag_key: str, default: Any) -> FlagResolutionDetails[Any]:
        return FlagResolutionDetails(
            value=default,
            reason=Reason.ERROR,
            error_code=ErrorCode.TYPE_MISMATCH,
            error_message=f"'{flag_key}' is a string flag (the serving model)",
        )

    def resolve_boolean_details(self, flag_key, default_value, evaluation_context=None):
        return self._not_typed(flag_key, default_value)

    def resolve_integer_details(self, flag_key, default_value, evaluation_context=None):
        return self._not_typed(flag_key, default_value)

    def resolve_float_details(self, flag_key, default_value, evaluation_context=None):
        return self._not_typed(flag_key, default_value)
