"""Prompts: logged traffic and its sampling, the per-model prompt registry, its audit, prompt A/B arms."""

from changeover.prompts.ab import Arm, plan_arms, spec_for_arms
from changeover.prompts.audit import audit_registry, count_tokens
from changeover.prompts.registry import PromptsConfig, Registry, Rendered, load_registry
from changeover.prompts.sampling import Sampled, sample_interactions
from changeover.prompts.traffic import Interaction, read_interactions

__all__ = [
    "Arm",
    "Interaction",
    "PromptsConfig",
    "Registry",
    "Rendered",
    "audit_registry",
    "count_tokens",
    "load_registry",
    "plan_arms",
    "read_interactions",
    "sample_interactions",
    "spec_for_arms",
    "Sampled",
]
