"""Small summaries of mirrored pairs shared by the shadow report and the migration report.

``week_grid`` says, hour by hour, which part of the week the pairs cover: the cells
``shadow.report.coverage`` counts as ``week_hours``, with the number of pairs in each.
"""

from __future__ import annotations

from collections.abc import Sequence

from changeover.shadowlog.answers import Pair

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def week_grid(group: Sequence[Pair]) -> list[list[int]]:
    """Pairs per weekday (Monday first) and hour of the day (UTC), by the incumbent's answer time."""
    grid = [[0] * 24 for _ in WEEKDAYS]
    for p in group:
        grid[p.incumbent.at.weekday()][p.incumbent.at.hour] += 1
    return grid
