"""Annotator accounts: one secret token per annotator (the login link) and one admin token.

The store keeps only a sha256 of each token, so a copy of the database opens
no account; the token itself is shown once, when it is made (a new account, or
``rotate``). An annotator removed from the spec's ``labeling.annotators`` is
revoked at the next start, and ``revoke`` revokes one by hand; every revocation
and rotation is an event (who, why). A revoked account logs in again only
after ``rotate``. Stores from before hashing are migrated on first start:
each clear-text token is replaced by its hash, so every link sent keeps working.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, select, update

from changeover.errors import ChangeoverError
from changeover.labeling.config import ADMIN
from changeover.labeling.tables import accounts, claims, ensure_tables, insert_once, legacy_annotators, settings
from changeover.store import Store
from changeover.store.events import append_event, now

ANNOTATOR, ADMIN_ROLE = "annotator", "admin"
REMOVED = "removed from the spec's labeling.annotators"
MAX_TOKEN = 64
MAX_REASON = 500


class AccountError(ChangeoverError):
    """No such account, or a request about one that cannot be done."""


@dataclass(frozen=True, slots=True)
class Annotator:
    """An account; ``token`` is set only right after it was made (it is not stored)."""

    name: str
    role: str
    token: str | None = None
    revoked_at: datetime | None = None
    revoked_reason: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN_ROLE

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _new_token() -> str:
    return secrets.token_urlsafe(24)


def _account(row: Row[Any], token: str | None = None) -> Annotator:
    return Annotator(row.name, row.role, token, row.revoked_at, row.revoked_reason)


def migrate_clear_tokens(store: Store) -> int:
    """Hash the tokens of a store from before hashing (once; idempotent). Returns accounts migrated."""
    if not store.has_table(legacy_annotators.name):
        return 0
    with store.engine.begin() as conn:
        rows = conn.execute(select(legacy_annotators)).all()
        for r in rows:
            insert_once(
                conn,
                accounts,
                name=r.name,
                token_hash=hash_token(r.token),
                role=r.role,
                created_at=r.created_at,
                token_at=r.created_at,
            )
        conn.execute(delete(legacy_annotators))  # the clear text goes; the hash opens the same account
    return len(rows)


def ensure_accounts(store: Store, names: list[str], actor: str = "changeover label") -> list[Annotator]:
    """Make the accounts the spec lists match the store; returns all accounts, admin first.

    Creates missing ones (``admin`` always exists; their ``token`` is set, the
    only time it is known) and revokes annotators no longer listed.
    """
    ensure_tables(store)
    migrate_clear_tokens(store)
    made: dict[str, str] = {}
    for name, role in [(ADMIN, ADMIN_ROLE)] + [(n, ANNOTATOR) for n in names]:
        token, at = _new_token(), now()
        with store.engine.begin() as conn:
            values = {"name": name, "token_hash": hash_token(token), "role": role, "created_at": at, "token_at": at}
            if insert_once(conn, accounts, **values):  # else: it exists already
                made[name] = token
                append_event(conn, "labeling.account.created", name, actor, None, {"role": role})
    listed = set(names)
    for account in list_accounts(store):
        if account.role == ANNOTATOR and account.active and account.name not in listed:
            revoke(store, account.name, actor, REMOVED)
    return [a if a.name not in made else Annotator(a.name, a.role, made[a.name]) for a in list_accounts(store)]


def list_accounts(store: Store) -> list[Annotator]:
    """Every account (without tokens), admin first."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(accounts).order_by(accounts.c.role != ADMIN_ROLE, accounts.c.name)).all()
    return [_account(r) for r in rows]


def _get(conn: Connection, name: str) -> Row[Any]:
    row = conn.execute(select(accounts).where(accounts.c.name == name)).first()
    if row is None:
        raise AccountError(f"no annotator {name!r}; add it to the spec's 'labeling.annotators' first")
    return row


def rotate(store: Store, name: str, actor: str = "changeover label", reason: str | None = None) -> Annotator:
    """Give ``name`` a new token (the old link stops working; a revoked account works again)."""
    ensure_tables(store)
    migrate_clear_tokens(store)
    token = _new_token()
    with store.engine.begin() as conn:
        _get(conn, name)
        conn.execute(
            update(accounts)
            .where(accounts.c.name == name)
            .values(token_hash=hash_token(token), token_at=now(), revoked_at=None, revoked_reason=None)
        )
        append_event(conn, "labeling.token.rotated", name, actor, reason)
        row = _get(conn, name)
    return _account(row, token)


def revoke(store: Store, name: str, actor: str, reason: str) -> Annotator:
    """Disable ``name``'s token now (an event says who and why); their open response is freed."""
    if len(reason) > MAX_REASON:
        raise AccountError(f"--reason: at most {MAX_REASON} characters (got {len(reason):,})")
    ensure_tables(store)
    migrate_clear_tokens(store)
    with store.engine.begin() as conn:
        row = _get(conn, name)
        if row.role == ADMIN_ROLE:
            raise AccountError("the admin token cannot be revoked, only rotated: changeover label rotate admin")
        conn.execute(
            update(accounts)
            .where(accounts.c.name == name)
            .values(token_hash=None, revoked_at=now(), revoked_reason=reason)
        )
        conn.execute(delete(claims).where(claims.c.open_by == name))
        append_event(conn, "labeling.token.revoked", name, actor, reason)
        row = _get(conn, name)
    return _account(row)


def authenticate(store: Store, token: str | None) -> Annotator | None:
    """The active account holding ``token``, or None."""
    if not token or len(token) > MAX_TOKEN:
        return None
    digest = hash_token(token)
    with store.engine.connect() as conn:
        row = conn.execute(select(accounts).where(accounts.c.token_hash == digest)).first()
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.token_hash, digest):
        return None
    return _account(row)


def store_secret(store: Store, name: str) -> str:
    """A random per-store secret (created once), e.g. the key that makes task ids opaque."""
    ensure_tables(store)
    with store.engine.connect() as conn:
        value = conn.execute(select(settings.c.value).where(settings.c.name == name)).scalar()
    if value is not None:
        return value
    with store.engine.begin() as conn:
        insert_once(conn, settings, name=name, value=secrets.token_hex(32))
    with store.engine.connect() as conn:
        return conn.execute(select(settings.c.value).where(settings.c.name == name)).scalar_one()
