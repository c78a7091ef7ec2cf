"""Sticky murmur3 routing and the OpenFeature provider over the store flag."""

from __future__ import annotations

import mmh3
from openfeature import api
from openfeature.evaluation_context import EvaluationContext

from changeover.rollout import state as rollout_state
from changeover.rollout.config import RolloutConfig
from changeover.rollout.provider import ChangeoverProvider
from changeover.rollout.routing import bucket, serves_candidate
from changeover.rollout.watch import FlagWatcher


def test_bucket_is_murmur3_of_flag_and_key_mod_100():
    assert bucket("changeover.rollout", "user-42") == mmh3.hash("changeover.rollout:user-42", 0, signed=False) % 100
    assert all(0 <= bucket("f", f"u{i}") < 100 for i in range(1000))


def test_weights_split_users_evenly_and_raising_a_weight_keeps_everyone_on_the_candidate():
    users = [f"user-{i}" for i in range(20000)]
    at5 = {u for u in users if serves_candidate("f", u, 5)}
    at25 = {u for u in users if serves_candidate("f", u, 25)}
    assert 0.04 < len(at5) / len(users) < 0.06
    assert 0.235 < len(at25) / len(users) < 0.265
    assert at5 <= at25  # nobody already on the candidate is moved back


def test_without_a_sticky_key_only_a_full_rollout_serves_the_candidate():
    assert not serves_candidate("f", None, 50)
    assert serves_candidate("f", None, 100)
    assert not serves_candidate("f", "anyone", 0)


def test_openfeature_client_resolves_the_store_flag_per_user(store):
    config = RolloutConfig(stages=[{"weight": 0}, {"weight": 30}, {"weight": 100}])
    watcher = FlagWatcher(store, config, "new")
    api.set_provider(ChangeoverProvider(watcher, "old"), "routing-test")
    client = api.get_client("routing-test")
    users = [f"u{i}" for i in range(300)]
    ctx = {u: EvaluationContext(targeting_key=u) for u in users}
    assert {client.get_string_value(config.flag, "old", ctx[u]) for u in users} == {"old"}

    state = rollout_state.read_state(store, config, "new")
    rollout_state.advance(store, config, state, "operator:test", "offline GO")
    watcher.refresh()
    served = {u: client.get_string_value(config.flag, "old", ctx[u]) for u in users}
    assert {u for u, m in served.items() if m == "new"} == {u for u in users if bucket(config.flag, u) < 30}
    details = client.get_string_details(config.flag, "old", ctx["u1"])
    assert details.flag_metadata["weight"] == 30 and details.flag_metadata["stage"] == 1
    # an unknown flag is an OpenFeature error that falls back to the default, not a crash
    assert client.get_string_value("other.flag", "fallback", ctx["u1"]) == "fallback"


def test_the_watcher_never_puts_an_older_stage_back(store):
    """A poll that read the flag just before an operator's write must not undo it."""
    config = RolloutConfig(stages=[{"weight": 0}, {"weight": 30}, {"weight": 100}])
    watcher = FlagWatcher(store, config, "new")
    before = rollout_state.ensure_started(store, config, "new", "test")  # what a slow poll read
    after = rollout_state.advance(store, config, before, "operator:test", "offline GO")
    assert watcher.offer(after).weight == 30
    assert watcher.offer(before).weight == 30 and watcher.state.version == after.version
    assert watcher.refresh().version == after.version
    later = rollout_state.advance(store, config, after, "operator:test", "shadow clean")
    assert watcher.refresh().weight == 100 and watcher.state.version == later.version
