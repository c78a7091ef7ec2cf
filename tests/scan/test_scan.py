"""`changeover scan` on a small repository in several languages, against a fixed clock."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from changeover.cli import run
from changeover.scan import Matcher, ScanError, load_registry, read_registry_file, scan_codebase
from changeover.scan.registry import BUNDLED

FIXTURE = Path(__file__).parent / "fixture"
TODAY = date(2025, 3, 1)

# (provider, model) -> [(file, line, cell, id as written)]: every use in the fixture, and nothing else
# (Python, TypeScript, Go, Java, Terraform, YAML, JSON, TOML, .env, a notebook)
EXPECTED = {
    ("openai", "text-davinci-003"): [("config/deploy.json", 4, None, "text-davinci-003")],
    ("openai", "gpt-4-0314"): [("app/chat.py", 6, None, "gpt-4-0314")],
    ("aws-bedrock", "meta.llama2-70b-chat-v1"): [
        ("infra/main.tf", 6, None, "meta.llama2-13b-chat-v1"),
        ("java/src/App.java", 5, None, "meta.llama2-70b-chat-v1"),
    ],
    ("openai", "gpt-3.5-turbo-0613"): [("config/deploy.json", 3, None, "gpt-3.5-turbo-0613")],
    ("google", "gemini-1.0-pro"): [(".env", 4, None, "models/gemini-1.0-pro")],
    ("mistral", "mistral-large-2402"): [("java/src/App.java", 7, None, "mistral-large-2402")],
    ("google-vertex", "gemini-1.0-pro-002"): [("svc/main.go", 10, None, "publishers/google/models/gemini-1.0-pro-002")],
    ("openai", "gpt-4-32k"): [("config/models.yaml", 2, None, "gpt-4-32k-0613")],
    ("openai", "gpt-4.5-preview"): [(".env", 2, None, "gpt-4.5-preview")],
    ("anthropic", "claude-2.1"): [("settings.toml", 3, None, "claude-2.1")],
    ("openai", "o1-preview"): [("notebooks/explore.ipynb", 4, 2, "o1-preview")],
    ("google", "gemini-1.5-pro"): [("svc/main.go", 9, None, "gemini-1.5-pro-002")],
    ("google-vertex", "gemini-1.5-pro-002"): [("svc/main.go", 9, None, "gemini-1.5-pro-002")],
    ("anthropic", "claude-3-5-sonnet-20241022"): [("web/client.ts", 4, None, "claude-3-5-sonnet-20241022")],
    ("openai", "o1-mini"): [("config/models.yaml", 8, None, "o1-mini")],
    ("anthropic", "claude-3-opus-20240229"): [("app/chat.py", 7, None, "claude-3-opus-20240229")],
    ("anthropic", "claude-3-5-haiku-20241022"): [("config/models.yaml", 5, None, "claude-3-5-haiku-20241022")],
    ("aws-bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0"): [
        ("java/src/App.java", 6, None, "us.anthropic.claude-3-5-sonnet-20240620-v1:0")
    ],
    ("openai", "gpt-4o"): [
        ("config/deploy.json", 4, None, "gpt-4o-2024-05-13"),
        ("config/models.yaml", 4, None, "gpt-4o"),
        ("notebooks/explore.ipynb", 2, 3, "gpt-4o-2024-05-13"),
    ],
    ("openai", "gpt-4o-mini"): [("web/client.ts", 5, None, "openai/gpt-4o-mini")],
    ("openai", "text-embedding-ada-002"): [("app/chat.py", 22, None, "text-embedding-ada-002")],
    ("openai", "gpt-9-mini"): [("web/client.ts", 6, None, "gpt-9-mini")],
}
DUE_AT_TODAY = [  # shut down already, or within 90 days of 2025-03-01, soonest first
    "text-davinci-003",
    "gpt-4-0314",
    "meta.llama2-70b-chat-v1",
    "gpt-3.5-turbo-0613",
    "gemini-1.0-pro",
    "mistral-large-2402",
    "gemini-1.0-pro-002",
]


def findings(result) -> dict:
    return {(u.provider, u.model): [(x.path, x.line, x.cell, x.text) for x in u.uses] for u in result.usages}


def test_fixture_findings_are_exact():
    result = scan_codebase(FIXTURE, load_registry(), TODAY, 90)
    assert findings(result) == EXPECTED
    # comments, sentences, markdown cells, notebook outputs, node_modules and "O3" are not uses
    assert result.files_scanned == 10
    shutdowns = [u.lifecycle.shutdown for u in result.usages if u.lifecycle and u.lifecycle.shutdown]
    assert shutdowns == sorted(shutdowns) and len(shutdowns) == 16
    assert [u.model for u in result.due] == DUE_AT_TODAY
    unknown = [u for u in result.usages if u.lifecycle is None]
    assert [u.model for u in unknown] == ["gpt-9-mini"] and result.usages[-1] is unknown[0]


def test_cli_table_json_and_exit_codes(tmp_path, capsys):
    out = tmp_path / "scan.json"
    assert run(["scan", str(FIXTURE), "--today", "2025-03-01", "--json", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "7 model(s) shut down within 90 days" in printed and "app/chat.py:6" in printed
    data = json.loads(out.read_text())
    assert data["today"] == "2025-03-01" and data["within_days"] == 90 and data["due"] == 7
    first = data["models"][0]
    assert first["model"] == "text-davinci-003" and first["status"] == "shut down" and first["days_left"] == -422
    assert first["source"].startswith("https://platform.openai.com/") and first["checked"]
    mistral = next(m for m in data["models"] if m["model"] == "mistral-large-2402")
    assert mistral["days_left"] == 29 and mistral["status"] == "shuts down soon" and mistral["due"]
    o1 = next(m for m in data["models"] if m["model"] == "o1-preview")
    assert o1["uses"] == [{"file": "notebooks/explore.ipynb", "line": 4, "id": "o1-preview", "cell": 2}]
    # long before any shutdown: exit 0; a wide window catches them again
    assert run(["scan", str(FIXTURE), "--today", "2020-01-01", "--within", "30d"]) == 0
    assert run(["scan", str(FIXTURE), "--today", "2020-01-01", "--within", "5y"]) == 1
    assert run(["scan", str(FIXTURE / "web" / "client.ts"), "--today", "2025-03-01"]) == 0  # October is > 90 days
    # --exclude: without the Python, Java, Go, JSON and .env files nothing is due within 60 days
    skip = [
        "-x",
        "app/*",
        "-x",
        "infra",
        "--exclude",
        "java",
        "--exclude",
        "svc/*",
        "--exclude",
        "*.json",
        "--exclude",
        ".env",
    ]
    assert run(["scan", str(FIXTURE), "--today", "2025-03-01", "--within", "60d", *skip]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--within", "soon"], "--within: expected a duration"),
        (["--today", "1 March"], "--today: expected a date YYYY-MM-DD"),
    ],
)
def test_bad_options_exit_2(args, message, capsys):
    assert run(["scan", str(FIXTURE), *args]) == 2
    assert message in capsys.readouterr().err


def test_missing_path_exits_2(tmp_path, capsys):
    assert run(["scan", str(tmp_path / "nope")]) == 2
    assert "no such file or folder to scan" in capsys.readouterr().err


def test_team_registry_overrides_and_extends(tmp_path):
    team = tmp_path / "team.yaml"
    team.write_text(
        "models:\n"
        "  - provider: anthropic\n"
        "    model: claude-2.1\n"
        "    shutdown: 2025-03-15\n"  # only the date changes; successors stay the bundled ones
        "  - provider: acme\n"
        "    model: gpt-9-mini\n"
        "    shutdown: 2025-04-01\n"
        "    successors: [gpt-4.1-mini]\n"
    )
    result = scan_codebase(FIXTURE, load_registry([team]), TODAY, 30)
    by = {(u.provider, u.model): u for u in result.usages}
    claude = by[("anthropic", "claude-2.1")].lifecycle
    assert claude.shutdown == date(2025, 3, 15) and claude.successors == ("claude-sonnet-4-20250514",)
    assert claude.origin == f"{team}:2"
    assert by[("acme", "gpt-9-mini")].lifecycle.successors == ("gpt-4.1-mini",)
    assert ("openai", "gpt-9-mini") not in by
    assert "claude-2.1" in [u.model for u in result.due] and "gpt-9-mini" not in [u.model for u in result.due]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models:\n  - provider: acme\n    model: x\n    shutdown: next year\n", ":4: field 'shutdown'"),
        (
            "models:\n  - provider: acme\n    model: x\n    sunset: 2025-01-01\n",
            ":4: field 'sunset' is not a known key",
        ),
        ("models:\n  - provider: acme\n    shutdown: 2025-01-01\n", ":2: field 'model' is required"),
        ("models:\n  - provider: acme\n    model: x\n    patterns: ['gpt-(']\n", ":4: field 'patterns'"),
        ("models:\n  - {provider: a, model: x}\n  - {provider: a, model: x}\n", ":3: a/x is already listed at line 2"),
        ("models: [\n", "not valid YAML"),
        ("rows: []\n", "a 'models:' list"),
    ],
)
def test_registry_errors_name_file_line_and_field(tmp_path, text, message, capsys):
    bad = tmp_path / "team.yaml"
    bad.write_text(text)
    with pytest.raises(ScanError) as exc:
        read_registry_file(bad)
    assert str(bad) in str(exc.value) and message in str(exc.value)
    assert run(["scan", str(FIXTURE / "settings.toml"), "--registry", str(bad)]) == 2
    assert message in capsys.readouterr().err


def test_an_unreadable_registry_is_an_error_not_a_traceback(tmp_path, capsys):
    (tmp_path / "folder.yaml").mkdir()
    (tmp_path / "utf16.yaml").write_bytes("models: []".encode("utf-16"))
    for name, message in (("folder.yaml", "cannot be read"), ("utf16.yaml", "not UTF-8 text")):
        assert run(["scan", str(FIXTURE / "settings.toml"), "--registry", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert f"{tmp_path / name}: {message}" in err and "Traceback" not in err


def test_bundled_registry_rows_are_dated_and_sourced():
    rows = read_registry_file(BUNDLED)
    assert len(rows) >= 60
    for _, row in rows:
        assert row.source and row.source.startswith("https://"), row.model
        assert row.checked is not None and row.checked <= date(2025, 12, 31), row.model
        if row.deprecated and row.shutdown:
            assert row.deprecated < row.shutdown, row.model
    providers = {row.provider for _, row in rows}
    assert {
        "openai",
        "anthropic",
        "google",
        "google-vertex",
        "aws-bedrock",
        "azure-openai",
        "mistral",
        "cohere",
    } <= providers


@pytest.mark.parametrize(
    ("value", "model"),
    [
        ("gpt-4-0314", "gpt-4-0314"),
        ("openai/gpt-4-0314", "gpt-4-0314"),
        ("claude-3-opus@20240229", "claude-3-opus-20240229"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("chat-bison@002", "text-bison"),
        ("  gemini-1.5-flash-002 ", "gemini-1.5-flash"),
        ("eu.anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic.claude-3-5-sonnet-20240620-v1:0"),
    ],
)
def test_spellings_that_name_a_model(value, model):
    m = Matcher(load_registry()).match(value)
    assert m is not None and model in [r.model for r in m.rows]


@pytest.mark.parametrize(
    "value",
    ["O3", "command", "ada", "gpt-4o is better", "gpt-4.bin", "https://x/models/gpt-4", "GPT-4-0314", "o3 mini", ""],
)
def test_values_that_are_not_model_ids(value):
    assert Matcher(load_registry()).match(value) is None


@pytest.mark.parametrize(
    ("text", "comments", "expected"),
    [
        (
            'x = "a\\"b"  # "not"\ny = \'it\\\'s\'\nz = """multi\n"line"\n"""\nw = "unterminated\nv = "ok"',
            "hash",
            [('a"b', 1), ("it's", 2), ('multi\n"line"\n', 3), ("unterminated", 6), ("ok", 7)],
        ),
        ('a = "x"; // "c"\n/* "d"\n "e" */ b = `raw\nstr`; c = \'q\'', "slash", [("x", 1), ("raw\nstr", 3), ("q", 4)]),
        ('k = "v" # "h"\nj = "w" // "s"\n/* "b" */ i = "u"', "hcl", [("v", 1), ("w", 2), ("u", 3)]),
        ('url = "https://x.example/a#b" # "c"', "hash", [("https://x.example/a#b", 1)]),
    ],
)
def test_the_lexer_knows_strings_from_comments(text, comments, expected):
    from changeover.scan.sources import string_literals

    assert [(v.text, v.line) for v in string_literals(text, comments)] == expected


def test_files_that_cannot_be_read_are_reported_not_counted_as_scanned(tmp_path, capsys):
    """A Latin-1 source still scans (model ids are ASCII); a broken notebook or a binary file is listed as
    not read - before, both were silently skipped and still counted as scanned."""
    (tmp_path / "legacy.py").write_bytes('# caf\xe9\nMODEL = "gpt-4-0314"  # r\xe9sum\xe9\n'.encode("latin-1"))
    (tmp_path / "broken.ipynb").write_text('{"cells": [')
    (tmp_path / "blob.json").write_bytes(b'{"model": "gpt-4-0314"}\x00\x01')
    result = scan_codebase(tmp_path, load_registry(), TODAY, 90)
    assert findings(result) == {("openai", "gpt-4-0314"): [("legacy.py", 2, None, "gpt-4-0314")]}
    assert result.files_scanned == 1
    assert [f for f, _ in result.unread] == ["blob.json", "broken.ipynb"]
    assert dict(result.unread)["blob.json"] == "binary (holds NUL bytes)"
    assert dict(result.unread)["broken.ipynb"].startswith("not a readable notebook (JSONDecodeError")
    out = tmp_path / "scan.json"
    assert run(["scan", str(tmp_path), "--today", "2025-03-01", "--json", str(out)]) == 1
    assert "2 file(s) not read: blob.json (binary" in " ".join(capsys.readouterr().out.split())
    assert json.loads(out.read_text())["unread"][1] == {
        "file": "broken.ipynb",
        "reason": dict(result.unread)["broken.ipynb"],
    }


def test_a_folder_that_cannot_be_listed_is_reported_and_the_walk_goes_on(tmp_path, monkeypatch):
    (tmp_path / "locked").mkdir()
    (tmp_path / "app.py").write_text('MODEL = "gpt-4-0314"\n')
    real = Path.iterdir

    def iterdir(self):  # chmod 000 does not stop root, who runs CI containers: refuse like the kernel would
        if self.name == "locked":
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    result = scan_codebase(tmp_path, load_registry(), TODAY, 90)
    assert result.unread == [("locked/", "folder cannot be listed (Permission denied)")]
    assert [u.model for u in result.usages] == ["gpt-4-0314"] and result.files_scanned == 1


def test_paths_with_brackets_print_as_they_are(tmp_path, capsys):
    """Next.js routes (app/[id]/page.tsx) and SvelteKit ones ([slug]) are paths, not markup: printed 'app//page.tsx'."""
    route = tmp_path / "app" / "[id]"
    route.mkdir(parents=True)
    (route / "page.tsx").write_text('const m = "gpt-4-0314";\n')
    assert run(["scan", str(tmp_path), "--today", "2025-01-01"]) == 1
    assert "app/[id]/page.tsx:1" in capsys.readouterr().out
