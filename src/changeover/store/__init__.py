"""Persistence: SQLite (WAL) by default, PostgreSQL by URL.

``Store`` wraps one SQLAlchemy engine and the core tables; feature packages
define their own tables on ``schema.metadata`` and call ``Store.ensure`` on
them. Everything a migration changes is written in one transaction, so a
failed import or a crash leaves nothing half-stored.
"""

from changeover.store.engine import DEFAULT_DB, Store, open_store, resolve_url
from changeover.store.schema import metadata

__all__ = ["DEFAULT_DB", "Store", "metadata", "open_store", "resolve_url"]
