"""Deprecation notices in model API responses: ``Deprecation`` / ``Sunset`` headers and body warnings.

A provider can announce a retirement on the wire, not only on its docs page:

- ``Deprecation`` (RFC 9745): a structured-field date ``@<epoch seconds>`` (the
  moment the resource is or was deprecated); earlier drafts sent ``true`` or an
  HTTP-date, both still met in the wild and read here;
- ``Sunset`` (RFC 8594): the HTTP-date after which the resource may stop answering;
- ``Link: <url>; rel="deprecation"`` / ``rel="sunset"``: where the notice is explained;
- OpenAI-style body warnings: a top-level ``warning`` (or ``warnings``) string such as
  ``"This model version is deprecated. Migrate before January 4, 2024 to avoid
  disruption of service. Learn more https://platform.openai.com/docs/deprecations"``.

``read_notice(headers, body)`` is a pure function: no I/O, and malformed values are
ignored (they come from an upstream, not from the user), so it is safe on the
request path. It returns None when the response announces nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

__all__ = ["DeprecationNotice", "body_warning", "parse_deprecation", "parse_http_date", "parse_sunset", "read_notice"]

_MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
_PROSE_DATE = re.compile(rf"\b({_MONTHS})\s+(\d{{1,2}}),?\s+(\d{{4}})\b", re.IGNORECASE)
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_URL = re.compile(r"https?://[^\s\"'<>)]+")
_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")
_WARNS = re.compile(r"\b(deprecat\w*|sunset|retir\w*|shut\s*down|end[- ]of[- ]life|decommission\w*)\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class DeprecationNotice:
    """What one response announced. ``deprecated`` is True whenever any notice was present."""

    deprecated: bool
    deprecated_at: datetime | None = None  # from the Deprecation header
    sunset: datetime | None = None  # from the Sunset header, or the date a body warning names
    link: str | None = None
    message: str | None = None  # the body warning, as sent
    source: str = "header"  # "header", "body" or "header+body"

    def to_dict(self) -> dict[str, Any]:
        return {
            "deprecated": self.deprecated,
            "deprecated_at": self.deprecated_at.isoformat() if self.deprecated_at else None,
            "sunset": self.sunset.isoformat() if self.sunset else None,
            "link": self.link,
            "message": self.message,
            "source": self.source,
        }


def parse_http_date(value: str) -> datetime | None:
    """An HTTP-date (IMF-fixdate, RFC 850 or asctime) as an aware UTC datetime; None when it is not one."""
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_deprecation(value: str) -> tuple[bool, datetime | None]:
    """A ``Deprecation`` header: (deprecated?, since when). ``@epoch`` (RFC 9745), ``true``, or an HTTP-date."""
    v = value.strip()
    if v.startswith("@"):
        try:
            return True, datetime.fromtimestamp(int(float(v[1:])), UTC)
        except (ValueError, OverflowError, OSError):
            return True, None
    if v.lower() in ("true", "?1"):
        return True, None
    if v.lower() in ("false", "?0", ""):
        return False, None
    when = parse_http_date(v)
    return True, when  # an unreadable value still says "deprecated"


def parse_sunset(value: str) -> datetime | None:
    """A ``Sunset`` header (RFC 8594: an HTTP-date); None when unreadable."""
    return parse_http_date(value)


def _links(values: Iterable[str]) -> dict[str, str]:
    """rel -> URL for the ``deprecation`` and ``sunset`` relations of Link headers."""
    out: dict[str, str] = {}
    for value in values:
        for url, params in _LINK.findall(value):
            rels = re.findall(r'rel\s*=\s*"?([^";]+)"?', params, re.IGNORECASE)
            for rel in " ".join(rels).lower().split():
                if rel in ("deprecation", "sunset"):
                    out.setdefault(rel, url)
    return out


def _prose_date(text: str) -> datetime | None:
    m = _PROSE_DATE.search(text)
    if m:
        try:
            return datetime.strptime(f"{m.group(1)} {m.group(2)} {m.group(3)}", "%B %d %Y").replace(tzinfo=UTC)
        except ValueError:
            return None
    m = _ISO_DATE.search(text)
    if m:
        try:
            return datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)), tzinfo=UTC)
        except ValueError:
            return None
    return None


def body_warning(body: Any) -> tuple[str, datetime | None, str | None] | None:
    """An OpenAI-style deprecation warning in a response body: (message, the date it names, its link)."""
    if isinstance(body, (bytes, bytearray)):
        if b'"warning' not in body:  # the cheap test: most bodies carry no warning key
            return None
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
    elif isinstance(body, str):
        if '"warning' not in body:
            return None
        try:
            body = json.loads(body)
        except ValueError:
            return None
    if not isinstance(body, dict):
        return None
    found = body.get("warning")
    if found is None and isinstance(body.get("warnings"), list):
        found = next((w for w in body["warnings"] if isinstance(w, str) and _WARNS.search(w)), None)
    if isinstance(found, dict):
        found = found.get("message")
    if not isinstance(found, str) or not _WARNS.search(found):
        return None
    url = _URL.search(found)
    return found, _prose_date(found), url.group(0).rstrip(".") if url else None


def _header_values(headers: Mapping[str, str] | Iterable[tuple[str, str]], name: str) -> list[str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [str(v) for k, v in items if str(k).lower() == name]


def read_notice(
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (), body: Any = None
) -> DeprecationNotice | None:
    """The deprecation notice of one response (headers as a mapping or (name, value) pairs), or None."""
    headers = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    deprecated, since = False, None
    for value in _header_values(headers, "deprecation"):
        flag, when = parse_deprecation(value)
        deprecated, since = deprecated or flag, since or when
    sunset = next((s for s in map(parse_sunset, _header_values(headers, "sunset")) if s), None)
    links = _links(_header_values(headers, "link"))
    warning = body_warning(body) if body is not None else None
    from_header = deprecated or sunset is not None
    if not from_header and warning is None:
        return None
    message, named, warn_link = warning if warning else (None, None, None)
    source = "header+body" if from_header and warning else ("header" if from_header else "body")
    return DeprecationNotice(
        deprecated=True,
        deprecated_at=since,
        sunset=sunset or named,
        link=links.get("deprecation") or links.get("sunset") or warn_link,
        message=message,
        source=source,
    )
