"""The rollout flag: operator actions are compare-and-set changes, each an event with actor and reason."""

from __future__ import annotations

import pytest

from changeover.errors import StoreError
from changeover.rollout import state as rs
from changeover.rollout.config import RolloutConfig
from changeover.store.events import list_events

CONFIG = RolloutConfig(stages=[{"weight": 0}, {"weight": 5}, {"weight": 50}, {"weight": 100}], hold=0)


def test_actions_move_the_stage_and_write_events(store):
    s0 = rs.read_state(store, CONFIG, "new")
    assert (s0.stage, s0.weight, s0.status, s0.version) == (0, 0, "progressing", 0)
    s1 = rs.advance(store, CONFIG, s0, "operator:ana", "offline assessment GO")
    assert (s1.stage, s1.weight) == (1, 5)
    s2 = rs.pause(store, CONFIG, s1, "operator:ana", "holiday freeze")
    assert s2.status == "paused" and s2.weight == 5
    s3 = rs.resume(store, CONFIG, s2, "operator:ben", "freeze over")
    s4 = rs.rollback(store, CONFIG, s3, "operator:ben", "complaints about tone")
    assert (s4.stage, s4.weight, s4.status) == (0, 0, "rolled_back")
    s5 = rs.advance(store, CONFIG, s4, "operator:ana", "tone fixed in prompt v2")
    assert (s5.stage, s5.weight, s5.status) == (1, 5, "progressing")
    again = rs.read_state(store, CONFIG, "new")
    assert (again.stage, again.weight, again.version) == (1, 5, s5.version)
    events = list_events(store, subject=CONFIG.flag)
    assert [e.kind for e in events] == [
        "rollout.advance",
        "rollout.pause",
        "rollout.resume",
        "rollout.rollback",
        "rollout.advance",
    ]
    assert [e.actor for e in events] == [
        "operator:ana",
        "operator:ana",
        "operator:ben",
        "operator:ben",
        "operator:ana",
    ]
    assert events[3].reason == "complaints about tone"
    assert events[3].payload["from_weight"] == 5 and events[3].payload["to_weight"] == 0


def test_a_stale_state_loses_the_compare_and_set(store):
    s0 = rs.read_state(store, CONFIG, "new")
    rs.advance(store, CONFIG, s0, "replica-a", "window passed")
    with pytest.raises(StoreError, match="changed meanwhile"):
        rs.advance(store, CONFIG, s0, "replica-b", "window passed")
    assert rs.try_change(rs.advance, store, CONFIG, s0, "replica-b", "window passed") is None
    assert rs.read_state(store, CONFIG, "new").stage == 1


def test_operator_mistakes_are_user_errors(store):
    s0 = rs.read_state(store, CONFIG, "new")
    with pytest.raises(rs.RolloutError, match="give a reason"):
        rs.advance(store, CONFIG, s0, "op", "  ")
    with pytest.raises(rs.RolloutError, match="not paused"):
        rs.resume(store, CONFIG, s0, "op", "why not")
    last = s0
    for _ in range(3):
        last = rs.advance(store, CONFIG, last, "op", "go")
    assert last.status == "complete" and last.weight == 100
    with pytest.raises(rs.RolloutError, match="last stage"):
        rs.advance(store, CONFIG, last, "op", "go")


def test_rollout_section_is_validated():
    with pytest.raises(ValueError, match="strictly increase"):
        RolloutConfig(stages=[{"weight": 50}, {"weight": 5}])
    with pytest.raises(ValueError, match="exactly one"):
        RolloutConfig(triggers=[{"metric": "error_rate", "above": 0.1, "ratio": 2}])
    assert RolloutConfig(window="5m", stages=[{"weight": 0, "min_duration": "90s"}]).window == 300
