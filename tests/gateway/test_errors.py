"""Errors by cause: a lost compare-and-set is a ``FlagConflict``, an unreachable store ``StoreUnavailable``;
a change the store could not take is retried and lands once (or is dropped, said so)."""

from __future__ import annotations

import sqlite3

import pytest

from changeover.errors import FlagConflict, StoreUnavailable
from changeover.rollout import state as rs
from changeover.rollout.config import RolloutConfig
from changeover.rollout.pending import ChangeRetrier
from changeover.rollout.watch import FlagWatcher
from changeover.store import open_store
from changeover.store.events import list_events
from changeover.store.flags import set_flag

CFG = RolloutConfig(stages=[{"weight": 0}, {"weight": 50}, {"weight": 100}])


@pytest.fixture
def locked(sqlite_url, monkeypatch):
    """A SQLite store and a switch: ``locked(True)`` makes another connection hold the write lock."""
    monkeypatch.setenv("CHANGEOVER_SQLITE_BUSY_MS", "50")
    store = open_store(sqlite_url)
    other = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)

    def lock(on: bool) -> None:
        other.execute("BEGIN EXCLUSIVE" if on else "COMMIT")

    yield store, lock
    other.close()
    store.dispose()


def test_a_stale_version_is_a_conflict_not_an_outage(store):
    set_flag(store, "f", 1, "a")
    with pytest.raises(FlagConflict, match="changed meanwhile"):
        set_flag(store, "f", 2, "b", expect_version=0)
    state = rs.ensure_started(store, CFG, "new", "gw")
    rs.advance(store, CFG, state, "ana", "GO")
    assert rs.try_change(rs.rollback, store, CFG, state, "ctl", "stale") is None  # a lost race


def test_an_unreachable_store_is_not_a_lost_race(locked):
    store, lock = locked
    state = rs.ensure_started(store, CFG, "new", "gw")
    lock(True)
    with pytest.raises(StoreUnavailable, match="cannot be reached or written") as caught:
        rs.try_change(rs.rollback, store, CFG, state, "ctl", "breach")
    assert not isinstance(caught.value, FlagConflict)
    lock(False)
    assert rs.read_state(store, CFG, "new").version == state.version  # nothing was written


def test_a_pending_rollback_lands_once_with_its_failure_event(locked):
    store, lock = locked
    retrier = ChangeRetrier(store, CFG, base_delay=0.01)
    state = rs.advance(store, CFG, rs.ensure_started(store, CFG, "new", "gw"), "ana", "GO")
    lock(True)
    preview, written = retrier.run("rollback", state, "ctl", "breach")
    assert not written and preview.status == "rolled_back" and preview.version == state.version
    assert retrier.retry() is None and retrier.pending.attempts == 2  # still locked: still pending
    with pytest.raises(StoreUnavailable, match="still waiting"):
        retrier.run("pause", state, "ana", "one change at a time")
    lock(False)
    landed = retrier.retry()
    assert landed.status == "rolled_back" and landed.change == preview.change and retrier.pending is None
    kinds = [e.kind for e in list_events(store, kind_prefix="rollout.")]
    assert kinds == ["rollout.start", "rollout.advance", "rollout.change_failed", "rollout.rollback"]
    assert retrier.retry() is None  # nothing left: nothing written again


def test_a_retry_whose_first_write_committed_writes_nothing_again(locked):
    store, lock = locked
    retrier = ChangeRetrier(store, CFG, base_delay=0.01)
    state = rs.advance(store, CFG, rs.ensure_started(store, CFG, "new", "gw"), "ana", "GO")
    lock(True)
    retrier.run("rollback", state, "ctl", "breach")
    lock(False)
    # the connection died after COMMIT: the write is in, its acknowledgement never arrived
    rs.rollback(store, CFG, state, "ctl", "breach", change=retrier.pending.change)
    found = retrier.retry()
    assert found.status == "rolled_back" and retrier.pending is None
    assert len(list_events(store, kind_prefix="rollout.rollback")) == 1


def test_a_pending_pause_is_dropped_if_the_flag_moved_but_a_rollback_still_applies(locked):
    store, lock = locked
    retrier = ChangeRetrier(store, CFG, base_delay=0.01)
    state = rs.ensure_started(store, CFG, "new", "gw")
    lock(True)
    retrier.run("pause", state, "ctl", "inconclusive")
    lock(False)
    moved = rs.advance(store, CFG, state, "ana", "GO")  # an operator acted meanwhile
    assert retrier.retry() is None and retrier.pending is None
    (dropped,) = list_events(store, kind_prefix="rollout.change_failed")
    assert dropped.payload["outcome"] == "superseded" and dropped.payload["action"] == "pause"
    lock(True)
    retrier.run("rollback", moved, "ctl", "breach")
    lock(False)
    rs.pause(store, CFG, moved, "ana", "look")  # an operator acts before the retry
    landed = retrier.retry()
    assert landed.status == "rolled_back"  # a rollback is never lost to a later change
    assert list_events(store, kind_prefix="rollout.")[-1].kind == "rollout.rollback"


def test_the_watcher_routes_by_a_held_change_until_the_store_has_a_newer_one(store):
    state = rs.ensure_started(store, CFG, "new", "gw")
    state = rs.advance(store, CFG, state, "ana", "GO")
    watcher = FlagWatcher(store, CFG, "new")
    held = rs.rollback(store, CFG, state, "ctl", "breach", dry_run=True)
    watcher.hold(held)
    assert watcher.refresh().weight == 0  # the store still says 50 %: the held rollback stays in force
    rs.rollback(store, CFG, state, "ctl", "breach", change=held.change)
    assert watcher.refresh().version == state.version + 1 and watcher.state.status == "rolled_back"


def test_a_rollback_replaces_another_change_still_waiting(locked):
    store, lock = locked
    retrier = ChangeRetrier(store, CFG, base_delay=0.01)
    state = rs.ensure_started(store, CFG, "new", "gw")
    lock(True)
    retrier.run("advance", state, "ctl", "stable")
    preview, written = retrier.run("rollback", state, "ana", "pager")  # the advance never happened
    assert not written and preview.status == "rolled_back" and retrier.pending.action == "rollback"
    lock(False)
    landed = retrier.retry()
    assert landed.status == "rolled_back"
    (rollback,) = list_events(store, kind_prefix="rollout.rollback")
    assert rollback.payload["replaced"]["action"] == "advance"
    assert not list_events(store, kind_prefix="rollout.advance")
