"""Staged rollout: the stage flag, sticky routing, the OpenFeature provider, triggers and the controller."""

from changeover.rollout.config import RolloutConfig, Stage, Trigger
from changeover.rollout.state import RolloutState, read_state

__all__ = ["RolloutConfig", "RolloutState", "Stage", "Trigger", "read_state"]
