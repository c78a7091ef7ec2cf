"""Deprecation notices on the wire: Deprecation / Sunset headers and OpenAI-style body warnings."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from changeover.providers.deprecation import (
    body_warning,
    parse_deprecation,
    parse_http_date,
    parse_sunset,
    read_notice,
)

OPENAI_WARNING = (
    "This model version is deprecated. Migrate before January 4, 2024 to avoid disruption of service. "
    "Learn more https://platform.openai.com/docs/deprecations"
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("@1688169599", (True, datetime(2023, 6, 30, 23, 59, 59, tzinfo=UTC))),  # RFC 9745
        ("true", (True, None)),  # the earlier draft
        ("Sun, 11 Nov 2018 23:59:59 GMT", (True, datetime(2018, 11, 11, 23, 59, 59, tzinfo=UTC))),  # draft HTTP-date
        ("false", (False, None)),
        ("@not-a-number", (True, None)),
        ("sometime soon", (True, None)),  # present but unreadable: still a deprecation
    ],
)
def test_deprecation_header(value, expected):
    assert parse_deprecation(value) == expected


def test_sunset_header_and_http_date_forms():
    when = datetime(2025, 6, 6, 0, 0, tzinfo=UTC)
    assert parse_sunset("Fri, 06 Jun 2025 00:00:00 GMT") == when  # IMF-fixdate
    assert parse_http_date("Friday, 06-Jun-25 00:00:00 GMT") == when  # RFC 850
    assert parse_http_date("Fri Jun  6 00:00:00 2025") == when  # asctime
    assert parse_sunset("next tuesday") is None and parse_sunset("") is None


def test_openai_body_warning():
    body = {"id": "cmpl-1", "object": "text_completion", "model": "text-davinci-003", "warning": OPENAI_WARNING}
    message, when, link = body_warning(json.dumps(body).encode())
    assert message == OPENAI_WARNING
    assert when == datetime(2024, 1, 4, tzinfo=UTC)
    assert link == "https://platform.openai.com/docs/deprecations"
    assert body_warning({"warnings": ["Model retires on 2025-10-22; use claude-sonnet-4."]})[1] == datetime(
        2025, 10, 22, tzinfo=UTC
    )
    # not deprecation warnings, or not JSON
    assert body_warning({"warning": "rate limit at 80%"}) is None
    assert body_warning(b'{"choices": []}') is None and body_warning(b"warning: <html>") is None
    assert body_warning("[1, 2]") is None


def test_read_notice_combines_headers_and_body():
    headers = [
        ("Content-Type", "application/json"),
        ("deprecation", "@1735689600"),
        ("Sunset", "Wed, 01 Oct 2025 00:00:00 GMT"),
        ("Link", '<https://example.com/models/old>; rel="deprecation"; type="text/html"'),
    ]
    notice = read_notice(headers, {"warning": OPENAI_WARNING})
    assert notice is not None and notice.deprecated and notice.source == "header+body"
    assert notice.deprecated_at == datetime(2025, 1, 1, tzinfo=UTC)
    assert notice.sunset == datetime(2025, 10, 1, tzinfo=UTC)  # the header's date wins over the prose
    assert notice.link == "https://example.com/models/old" and notice.message == OPENAI_WARNING
    assert notice.to_dict()["sunset"] == "2025-10-01T00:00:00+00:00"
    only_sunset = read_notice({"Sunset": "Wed, 01 Oct 2025 00:00:00 GMT", "Link": '<https://x/s>; rel="sunset"'})
    assert only_sunset.source == "header" and only_sunset.link == "https://x/s" and only_sunset.deprecated_at is None
    from_body = read_notice({}, json.dumps({"warning": OPENAI_WARNING}))
    assert from_body.source == "body" and from_body.sunset == datetime(2024, 1, 4, tzinfo=UTC)
    assert read_notice({"Deprecation": "false"}, {"choices": []}) is None
    assert read_notice({"Content-Type": "application/json"}) is None
