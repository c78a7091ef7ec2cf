"""The prompt registry applied live: an upstream naming ``prompt_for`` gets that model's prompt variant.

Evaluate renders each interaction for an arm with ``Registry.render(interaction,
prompt_for)``; the gateway calls the same function on the live request (its
messages, tools and the prompt id / variables it names), so the candidate that
is shadowed and rolled out is the one evaluate measured: same system message,
same template, same variant parameters (which override the request's own, as in
evaluate). A request naming no prompt, or one the registry does not hold, goes
as sent; a variant that cannot be rendered for it (a template variable missing)
goes as sent too, counted in ``failed``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

from changeover.config import MigrationSpec
from changeover.errors import ChangeoverError, SpecError
from changeover.prompts import Interaction, Registry, load_registry
from changeover.shadow.config import GatewayConfig, PromptSource
from changeover.shadow.limits import MAX_REQUEST_TYPE, too_long
from changeover.shadowlog.requests import get_field

log = logging.getLogger("changeover.gateway")


class LivePrompts:
    def __init__(self, registry: Registry, source: PromptSource):
        self.registry = registry
        self.header = source.header.lower() if source.header else None
        self.field = source.field
        self.variables_field = source.variables_field
        self.default = source.default
        self.failed: Counter[str] = Counter()  # prompt id -> requests its variant could not be rendered for

    @classmethod
    def for_spec(cls, spec: MigrationSpec, gateway: GatewayConfig) -> LivePrompts:
        """The spec's registry, loaded only when an upstream names ``prompt_for``."""
        named = {m: u.prompt_for for m, u in gateway.upstreams.items() if u.prompt_for}
        if not named:
            return cls(Registry.empty(), gateway.prompt)
        registry = load_registry(spec)
        if not registry.prompts:
            model = next(iter(named))
            raise SpecError(
                f"{spec.path or 'spec'}: field 'gateway.upstreams.{model}.prompt_for' needs a prompt registry; "
                "add a 'prompts: {registry: <folder>}' section with the prompts' YAML files"
            )
        return cls(registry, gateway.prompt)

    @property
    def active(self) -> bool:
        return bool(self.registry.prompts)

    def prompt_id(self, payload: dict[str, Any] | None, headers: Mapping[str, str]) -> str | None:
        """The registry prompt the request is (None: no variant applies)."""
        if not self.active:
            return None
        value: Any = headers.get(self.header) if self.header else None
        if not value and self.field:
            value = get_field(payload, self.field)
        if not isinstance(value, str) or not value or too_long(value, MAX_REQUEST_TYPE):
            value = self.default
        return value if value in self.registry.prompts else None

    def apply(
        self, payload: dict[str, Any], prompt_id: str | None, prompt_for: str | None
    ) -> tuple[dict[str, Any], str | None]:
        """The request as sent to a model answering with ``prompt_for``'s variant, and the variant's
        version (``prompt@variant:vN``); unchanged with None when no variant applies."""
        if prompt_for is None or prompt_id is None or not isinstance(payload.get("messages"), list):
            return payload, None
        variables = get_field(payload, self.variables_field) if self.variables_field else None
        interaction = Interaction(
            item="live",
            messages=[m for m in payload["messages"] if isinstance(m, dict)],
            tools=payload.get("tools"),
            prompt_id=prompt_id,
            variables=variables if isinstance(variables, dict) else {},
            source="a live request",
        )
        try:
            rendered = self.registry.render(interaction, prompt_for)
        except ChangeoverError as exc:  # the request goes as sent; counted, never a failed answer
            self.failed[prompt_id] += 1
            log.warning("prompt %s: variant for %s not applied: %s", prompt_id, prompt_for, exc)
            return payload, None
        out = {**payload, "messages": rendered.messages, **rendered.params}
        if rendered.tools is not None:
            out["tools"] = rendered.tools
        return out, rendered.version
