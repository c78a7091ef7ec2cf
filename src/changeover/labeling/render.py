"""Responses and prompts as annotators read them: Markdown, code and JSON rendered, safely.

A model's answer is untrusted text. It is rendered with markdown-it in
CommonMark mode with raw HTML off (``<script>`` or ``<img onerror=...>`` in an
answer show as text, escaped), images off (nothing is fetched from an address
the text names) and links off (a link shows as its Markdown source, so the
annotator sees where it points and no click leaves the app). A response that
is one JSON value is shown pretty-printed as a code block. The exact text is
kept beside the rendering (the page's "raw" toggle) because a judgment may
hinge on it.
"""

from __future__ import annotations

import json

from markdown_it import MarkdownIt
from markupsafe import Markup, escape

_MD = (
    MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    .enable(["table", "strikethrough"])
    .disable(["image", "link", "autolink", "html_inline", "html_block"])
)
MAX_RENDERED = 200_000  # characters; a longer text is shown raw (rendering it would only slow the page)


def _json_block(text: str) -> str | None:
    """Pretty JSON as a fenced block when the whole text is one JSON object or array, else None."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return None
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    pretty = json.dumps(value, indent=2, ensure_ascii=False)
    return f'<pre class="json"><code class="language-json">{escape(pretty)}</code></pre>'


def render(text: str | None) -> Markup:
    """``text`` as safe HTML: JSON pretty-printed, otherwise Markdown without raw HTML, images or links."""
    if not text:
        return Markup("")
    if len(text) > MAX_RENDERED:
        return Markup(f'<pre class="raw">{escape(text)}</pre>')
    block = _json_block(text)
    if block is not None:
        return Markup(block)
    return Markup(_MD.render(text))
