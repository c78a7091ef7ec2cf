"""Responses rendered for judging: Markdown, code and JSON shown formatted, untrusted HTML shown as text,
no image fetched and no link followed; the exact text stays available."""

from __future__ import annotations

from changeover.labeling.render import MAX_RENDERED, render


def test_markdown_code_and_tables_are_formatted():
    html = str(render("**bold** and `x`\n\n```python\nprint(1)\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |"))
    assert "<strong>bold</strong>" in html and "<code>x</code>" in html
    assert '<pre><code class="language-python">print(1)' in html
    assert "<table>" in html and "<td>2</td>" in html


def test_raw_html_in_an_answer_is_shown_as_text():
    html = str(render('<script>alert(1)</script> <img src=x onerror="alert(2)"> <b onclick=x>hi</b>'))
    assert "<script" not in html and "<img" not in html and "<b " not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_no_image_is_fetched_and_no_link_is_made():
    html = str(render("[click](javascript:alert(1)) ![pixel](http://tracker.example/p.png) <http://a.example>"))
    assert "<a " not in html and "<img" not in html
    assert "[click](javascript:alert(1))" in html  # the annotator sees where it would point


def test_a_json_answer_is_pretty_printed_and_escaped():
    html = str(render('{"tool": "search", "args": {"q": "<b>x</b>"}}'))
    assert html.startswith('<pre class="json"><code class="language-json">{\n  &#34;tool&#34;')
    assert "<b>" not in html and "&lt;b&gt;" in html


def test_an_empty_or_huge_text_is_not_rendered_as_markdown():
    assert str(render(None)) == "" and str(render("")) == ""
    huge = "**x** " * (MAX_RENDERED // 6 + 1)
    html = str(render(huge))
    assert html.startswith('<pre class="raw">') and "<strong>" not in html
