"""The spec's ``models:`` and ``pricing:`` sections: which endpoint serves each named model.

API keys never appear in the spec: ``api_key_env`` names the environment
variable holding the key, read when the client is built.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from changeover.errors import ProviderError


class ModelConfig(BaseModel):
    """One named model: its provider, endpoint and limits."""

    model_config = ConfigDict(extra="forbid")

    provider: Literal["openai", "anthropic", "replay"] = "openai"
    api: Literal["chat", "completions"] = Field(
        "chat", description="openai: chat/completions, or the legacy text completions endpoint for base models"
    )
    stream: bool = Field(False, description="openai chat: stream (SSE) and record time to first token")
    base_url: str | None = Field(None, description="endpoint root, e.g. http://localhost:8000/v1")
    model: str | None = Field(None, description="the provider's model id; default: this entry's name")
    api_key_env: str | None = Field(None, description="environment variable holding the API key")
    rpm: float | None = Field(None, gt=0, description="requests per minute")
    tpm: float | None = Field(None, gt=0, description="tokens per minute (estimated before the call)")
    concurrency: int = Field(8, ge=1, le=4096)
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(4, ge=0, le=20)
    backoff_s: float = Field(0.5, ge=0, description="first retry delay; doubles each retry, jittered")
    backoff_max_s: float = Field(30.0, ge=0)
    breaker: int = Field(25, ge=1, description="consecutive failures after which calls fail fast")
    breaker_cooldown_s: float = Field(60.0, ge=0, description="then, seconds before one call probes again")
    params: dict[str, Any] = Field(default_factory=dict, description="default generation parameters")
    param_map: dict[str, str | None] = Field(
        default_factory=dict,
        description="rename (new name) or drop (null) request parameters this endpoint refuses, "
        "e.g. {max_tokens: max_completion_tokens, temperature: null}; applied to every request",
    )
    records: str | None = Field(None, description="replay: records file holding the responses")
    records_model: str | None = Field(None, description="replay: the model name in that file")

    @model_validator(mode="before")
    @classmethod
    def _no_keys_in_spec(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for bad in ("api_key", "key", "token", "secret"):
                if bad in data:
                    raise ValueError(
                        f"'{bad}': API keys never go in the spec; put the key in an "
                        "environment variable and name it with api_key_env"
                    )
        return data

    @model_validator(mode="after")
    def _replay_needs_records(self) -> ModelConfig:
        if self.provider == "replay" and not self.records:
            raise ValueError("a replay model needs 'records' (the records file holding its responses)")
        return self

    def api_key(self, name: str) -> str | None:
        """The key from the environment; a named but unset variable is a ProviderError."""
        if not self.api_key_env:
            return None
        value = os.environ.get(self.api_key_env)
        if not value:
            raise ProviderError(
                f"field 'models.{name}.api_key_env': environment variable "
                f"{self.api_key_env} is not set; export it before running"
            )
        return value


class ModelsSection(RootModel[dict[str, ModelConfig]]):
    """``models:`` maps a model name (as used by incumbent/candidates/judges) to its endpoint."""


class Price(BaseModel):
    """USD per 1,000 tokens."""

    model_config = ConfigDict(extra="forbid")

    input_per_1k: float = Field(0.0, ge=0)
    output_per_1k: float = Field(0.0, ge=0)

    def cost(self, tokens_in: float | None, tokens_out: float | None) -> float:
        return ((tokens_in or 0) * self.input_per_1k + (tokens_out or 0) * self.output_per_1k) / 1000.0


class PricingSection(RootModel[dict[str, Price]]):
    """``pricing:`` maps a model name to its price per 1,000 tokens."""
