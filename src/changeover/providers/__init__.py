"""The model interface: OpenAI-compatible endpoints, Anthropic, and replay of recorded responses.

Knows nothing of evaluation. ``build_clients(spec, names)`` gives one
``ModelClient`` per named model, with the limits, retries and prices the spec
sets; ``CachedCaller`` makes sure a call is made once across runs.
"""

from changeover.providers.base import CallFailed, ChatRequest, Completion, Provider
from changeover.providers.cache import CachedCaller, CallCache, call_key
from changeover.providers.client import ModelClient
from changeover.providers.config import ModelConfig, ModelsSection, Price, PricingSection
from changeover.providers.factory import build_clients, build_provider, model_configs

__all__ = [
    "CachedCaller",
    "CallCache",
    "CallFailed",
    "ChatRequest",
    "Completion",
    "ModelClient",
    "ModelConfig",
    "ModelsSection",
    "Price",
    "PricingSection",
    "Provider",
    "build_clients",
    "build_provider",
    "call_key",
    "model_configs",
]
