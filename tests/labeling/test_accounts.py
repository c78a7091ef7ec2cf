"""Tokens as hashes: ``label links|rotate|revoke`` from the command line, removal from the spec,
and the migration of a store from before hashing (its links keep working, its clear text goes)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from changeover.cli import run
from changeover.labeling.accounts import authenticate, ensure_accounts, list_accounts
from changeover.labeling.tables import accounts, legacy, legacy_annotators
from changeover.store import open_store
from changeover.store.events import list_events

LINK = re.compile(r"^\s+(\S+)\s+(\S+)\s+http://lab:8400/login\?token=(\S+)$", re.M)


def _spec(tmp_path: Path, annotators: str) -> Path:
    spec = tmp_path / "migration.yaml"
    spec.write_text(
        "incumbent: llama2orig\ncandidates: [gpt4]\ndimensions:\n  refusal: {margin: 0.05}\n"
        f"labeling:\n  annotators: [{annotators}]\n"
    )
    return spec


def _links(out: str) -> dict[str, str]:
    return {name: token for name, _role, token in LINK.findall(out)}


def _dump(db: str) -> str:
    """Every value of the labelling tables, as text (to look for a clear-text token)."""
    with open_store(db) as store, store.engine.connect() as conn:
        return repr(conn.execute(select(accounts)).all())


def test_links_are_shown_once_and_only_hashes_are_stored(tmp_path, sqlite_url, capsys):
    spec = _spec(tmp_path, "alice, bob")
    args = ["label", "links", "--spec", str(spec), "--db", sqlite_url, "--base-url", "http://lab:8400"]
    assert run(args) == 0
    first = _links(capsys.readouterr().out)
    assert set(first) == {"admin", "alice", "bob"}
    assert run(args) == 0
    again = capsys.readouterr().out
    assert _links(again) == {} and "changeover label rotate alice" in again  # shown once, never again
    stored = _dump(sqlite_url)
    assert not any(token in stored for token in first.values())
    with open_store(sqlite_url) as store:
        assert authenticate(store, first["alice"]).name == "alice"
    spec.write_text(spec.read_text() + "  colour: blue\n")
    assert run(["label", "links", "--spec", str(spec), "--db", sqlite_url]) == 2
    assert "labeling.colour" in capsys.readouterr().err


def test_rotate_gives_a_new_link_and_the_old_one_stops(tmp_path, sqlite_url, capsys):
    spec = _spec(tmp_path, "alice")
    assert run(["label", "links", "--spec", str(spec), "--db", sqlite_url, "--base-url", "http://lab:8400"]) == 0
    old = _links(capsys.readouterr().out)["alice"]
    assert run(["label", "rotate", "alice", "--db", sqlite_url, "--base-url", "http://lab:8400"]) == 0
    new = _links(capsys.readouterr().out)["alice"]
    assert new != old
    with open_store(sqlite_url) as store:
        assert authenticate(store, old) is None and authenticate(store, new).name == "alice"
    assert run(["label", "rotate", "nobody", "--db", sqlite_url]) == 2
    assert "no annotator 'nobody'" in capsys.readouterr().err


def test_revoke_disables_a_token_with_an_event_saying_who_and_why(tmp_path, sqlite_url, capsys):
    spec = _spec(tmp_path, "alice, bob")
    assert run(["label", "links", "--spec", str(spec), "--db", sqlite_url, "--base-url", "http://lab:8400"]) == 0
    tokens = _links(capsys.readouterr().out)
    args = ["label", "revoke", "bob", "--reason", "left the project", "--actor", "lead", "--db", sqlite_url]
    assert run(args) == 0
    assert "revoked bob: left the project" in capsys.readouterr().out
    with open_store(sqlite_url) as store:
        assert authenticate(store, tokens["bob"]) is None
        assert authenticate(store, tokens["alice"]).name == "alice"
        (event,) = list_events(store, subject="bob", kind_prefix="labeling.token.revoked")
        assert (event.actor, event.reason) == ("lead", "left the project")
    assert run(["label", "revoke", "admin", "--reason", "x", "--db", sqlite_url]) == 2
    assert run(["label", "revoke", "bob", "--reason", "x" * 501, "--db", sqlite_url]) == 2
    assert "at most 500 characters" in capsys.readouterr().err
    # bob stays revoked at the next start, until his token is rotated
    assert run(["label", "links", "--spec", str(spec), "--db", sqlite_url, "--base-url", "http://lab:8400"]) == 0
    assert "revoked" in capsys.readouterr().out
    assert run(["label", "rotate", "bob", "--db", sqlite_url, "--base-url", "http://lab:8400"]) == 0
    bob = _links(capsys.readouterr().out)["bob"]
    with open_store(sqlite_url) as store:
        assert authenticate(store, bob).name == "bob"


def test_an_annotator_removed_from_the_spec_is_revoked(store):
    made = {a.name: a.token for a in ensure_accounts(store, ["alice", "bob"])}
    assert authenticate(store, made["bob"]).name == "bob"
    ensure_accounts(store, ["alice"], actor="label serve")
    assert authenticate(store, made["bob"]) is None
    assert authenticate(store, made["alice"]).name == "alice"
    bob = next(a for a in list_accounts(store) if a.name == "bob")
    assert not bob.active and "removed from the spec" in bob.revoked_reason
    (event,) = list_events(store, subject="bob", kind_prefix="labeling.token.revoked")
    assert event.actor == "label serve"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_clear_text_tokens_of_an_old_store_are_hashed_and_keep_working(backend, request):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    at = datetime(2026, 1, 2, tzinfo=UTC)
    with open_store(url) as store:  # a store from before hashing: tokens in clear text
        legacy.create_all(store.engine)
        with store.engine.begin() as conn:
            conn.execute(
                insert(legacy_annotators),
                [
                    {"name": "admin", "token": "admin-token-0123456789abcdef", "role": "admin", "created_at": at},
                    {"name": "alice", "token": "alice-token-0123456789abcdef", "role": "annotator", "created_at": at},
                ],
            )
    with open_store(url) as store:
        listed = ensure_accounts(store, ["alice", "bob"])
        assert {a.name for a in listed if a.token} == {"bob"}  # only the new account gets a new link
        assert authenticate(store, "alice-token-0123456789abcdef").name == "alice"
        assert authenticate(store, "admin-token-0123456789abcdef").is_admin
        with store.engine.connect() as conn:
            assert conn.execute(select(legacy_annotators)).all() == []
    assert "alice-token" not in _dump(url) and "admin-token" not in _dump(url)
