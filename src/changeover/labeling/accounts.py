"""Annotator accounts: one secret token per annotator (the login link) and one admin token.

Tokens live in the store so that ``label serve`` can print the same links
after a restart; ``rotate`` replaces one that leaked. A token is compared in
constant time.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from changeover.labeling.config import ADMIN
from changeover.labeling.tables import annotators, ensure_tables, settings
from changeover.store import Store
from changeover.store.events import now

ANNOTATOR, ADMIN_ROLE = "annotator", "admin"


@dataclass(frozen=True, slots=True)
class Annotator:
    name: str
    role: str
    token: str

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN_ROLE


def _new_token() -> str:
    return secrets.token_urlsafe(24)


def ensure_accounts(store: Store, names: list[str]) -> list[Annotator]:
    """Create any missing account (the annotators plus ``admin``); returns all of them, admin first."""
    ensure_tables(store)
    wanted = [(ADMIN, ADMIN_ROLE)] + [(n, ANNOTATOR) for n in names]
    for name, role in wanted:
        try:
            with store.engine.begin() as conn:
                exists = conn.execute(select(annotators.c.name).where(annotators.c.name == name)).first()
                if exists is None:
                    conn.execute(insert(annotators).values(name=name, token=_new_token(), role=role, created_at=now()))
        except IntegrityError:  # created meanwhile by another process
            pass
    return list_accounts(store)


def list_accounts(store: Store) -> list[Annotator]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(annotators).order_by(annotators.c.role.desc(), annotators.c.name)).all()
    return [Annotator(r.name, r.role, r.token) for r in rows]


def rotate(store: Store, name: str) -> Annotator | None:
    """Give ``name`` a new token (the old link stops working); None when there is no such account."""
    token = _new_token()
    with store.engine.begin() as conn:
        n = conn.execute(update(annotators).where(annotators.c.name == name).values(token=token)).rowcount
    return next((a for a in list_accounts(store) if a.name == name), None) if n else None


def authenticate(store: Store, token: str | None) -> Annotator | None:
    """The account holding ``token``, or None."""
    if not token or len(token) > 64:
        return None
    with store.engine.connect() as conn:
        row = conn.execute(select(annotators).where(annotators.c.token == token)).first()
    if row is None or not hmac.compare_digest(row.token, token):
        return None
    return Annotator(row.name, row.role, row.token)


def store_secret(store: Store, name: str) -> str:
    """A random per-store secret (created once), e.g. the key that makes task ids opaque."""
    ensure_tables(store)
    with store.engine.connect() as conn:
        value = conn.execute(select(settings.c.value).where(settings.c.name == name)).scalar()
    if value is not None:
        return value
    try:
        with store.engine.begin() as conn:
            conn.execute(insert(settings).values(name=name, value=secrets.token_hex(32)))
    except IntegrityError:
        pass
    with store.engine.connect() as conn:
        return conn.execute(select(settings.c.value).where(settings.c.name == name)).scalar_one()
