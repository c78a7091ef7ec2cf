"""Turn what a user types (a model alias, 'old'/'new', or a full ``name@version``) into a stored version."""

from __future__ import annotations

from collections.abc import Iterable

from changeover.providers.embedders import UnknownModelError, canonical_name


def resolve_version(name: str, known: Iterable[str], aliases: dict[str, str] | None = None) -> str:
    """A version key among ``known`` for ``name``; aliases map 'old'/'new' to model names."""
    name = (aliases or {}).get(name.lower(), name)
    known = sorted(set(known))
    if "@" in name:
        if name in known:
            return name
        raise UnknownModelError(f"no index for {name!r}; known indexes: {', '.join(known) or 'none'}")
    base = canonical_name(name)
    matches = [v for v in known if v.split("@", 1)[0] == base]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UnknownModelError(
            f"no index built with {base}; known indexes: {', '.join(known) or 'none'}; "
            f"run `changeover embeddings reembed --to {name}` first"
        )
    raise UnknownModelError(f"{name!r} matches several indexes ({', '.join(matches)}); give the full name@version")
