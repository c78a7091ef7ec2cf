"""Build the model clients a spec names, from its ``models:`` and ``pricing:`` sections."""

from __future__ import annotations

from changeover.config import MigrationSpec
from changeover.errors import SpecError
from changeover.providers.anthropic import AnthropicProvider
from changeover.providers.base import Provider
from changeover.providers.client import ModelClient
from changeover.providers.config import ModelConfig, ModelsSection, Price, PricingSection
from changeover.providers.openai_compat import OpenAIProvider
from changeover.providers.replay import ReplayProvider


def build_provider(name: str, config: ModelConfig, spec: MigrationSpec | None = None) -> Provider:
    """The provider for one ``models:`` entry (API key read from the environment here)."""
    model_id = config.model or name
    if config.provider == "replay":
        path = spec.resolve(config.records) if spec is not None else config.records
        return ReplayProvider(config.records_model or model_id, path)
    if config.provider == "anthropic":
        return AnthropicProvider(
            model_id,
            base_url=config.base_url,
            api_key=config.api_key(name),
            concurrency=config.concurrency,
            timeout_s=config.timeout_s,
        )
    return OpenAIProvider(
        model_id,
        base_url=config.base_url,
        api_key=config.api_key(name),
        concurrency=config.concurrency,
        timeout_s=config.timeout_s,
        api=config.api,
        stream=config.stream,
    )


def model_configs(spec: MigrationSpec) -> dict[str, ModelConfig]:
    section = spec.section("models", ModelsSection)
    return dict(section.root) if section is not None else {}


def model_prices(spec: MigrationSpec) -> dict[str, Price]:
    """The spec's ``pricing:`` table by model name (empty when the spec has none)."""
    section = spec.section("pricing", PricingSection)
    return dict(section.root) if section is not None else {}


def build_clients(spec: MigrationSpec, names: list[str]) -> dict[str, ModelClient]:
    """A client for each name; a name missing from ``models:`` is a SpecError naming it."""
    configs = model_configs(spec)
    prices = model_prices(spec)
    missing = [n for n in names if n not in configs]
    if missing:
        raise SpecError(
            f"{spec.path or 'spec'}: field 'models' has no entry for "
            f"{', '.join(repr(m) for m in missing)}; add one per model, e.g. "
            f"models: {{{missing[0]}: {{provider: openai, base_url: http://localhost:8000/v1}}}}"
        )
    return {
        n: ModelClient(n, build_provider(n, configs[n], spec), configs[n], prices.get(n), seed=i)
        for i, n in enumerate(dict.fromkeys(names))
    }
