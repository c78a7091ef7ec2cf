"""The shadow log's read side: its tables, the answers and pairs read back, the deterministic checks, the export.

Below both the gateway (``changeover.shadow``, which writes the log) and the
rollout (``changeover.rollout``, which measures on it): it imports neither.
"""
