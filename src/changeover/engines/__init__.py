"""Where a batch job runs: in this process (``local``, the default) or on a Ray cluster (``ray``).

The batch jobs (``evaluate``, ``embeddings reembed``) split their work into
batches whose state lives in the store (the call cache, the vectors and the
job row), so either engine gives the same stored results. This package holds
what both jobs share: the choice (``Engine``), the pacing arithmetic both
engines use for rate limits (``pacing``), and the Ray plumbing (``ray``:
imported only when asked for, Ray being the optional extra ``changeover[ray]``).
"""

from __future__ import annotations

from dataclasses import dataclass

from changeover.errors import ChangeoverError

ENGINES = ("local", "ray")
RAY_EXTRA = "pip install 'changeover[ray]'  (or: pip install 'ray>=2.9,<3')"


class EngineUnavailable(ChangeoverError):
    """The engine asked for cannot be used here (its optional extra is not installed, its cluster is
    unreachable, a worker died): nothing stored is lost; fix it and run the same command again."""


@dataclass(frozen=True)
class Engine:
    """The engine a batch job runs on. ``address``: the Ray cluster (None: start a local Ray);
    ``retries``: how often a batch whose Ray worker died is run again before the job stops."""

    name: str = "local"
    address: str | None = None
    retries: int = 1

    @property
    def is_ray(self) -> bool:
        return self.name == "ray"


def choose_engine(name: str, address: str | None = None) -> Engine:
    """The engine of ``--engine NAME`` and ``--ray-address``; checks Ray is installed when asked for."""
    name = name.strip().lower()
    if name not in ENGINES:
        raise EngineUnavailable(f"--engine {name!r}: unknown engine; use one of {', '.join(ENGINES)}")
    if address is not None and name != "ray":
        raise EngineUnavailable("--ray-address is only used with --engine ray; add --engine ray or drop it")
    if name == "ray":
        from changeover.engines.ray import require_ray

        require_ray()
    return Engine(name, address)


__all__ = ["ENGINES", "RAY_EXTRA", "Engine", "EngineUnavailable", "choose_engine"]
