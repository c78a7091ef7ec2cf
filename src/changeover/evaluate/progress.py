"""Progress of a run as a callback: the library is silent by default, the CLI passes a rich reporter.

A callback is called as ``progress(task, completed, total)`` each time one
unit of ``task`` ("responses", "judgements") is done.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

ProgressCallback = Callable[[str, int, int], None]
"""``(task, completed, total)``: one more unit of ``task`` is done."""


class RateColumn(ProgressColumn):
    """Calls per second."""

    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-/s" if speed is None else f"{speed:.1f}/s", style="progress.data.speed")


class RichProgress:
    """A progress callback drawing one rich bar per task (a context manager around the bars)."""

    def __init__(self, console: Any = None):
        self._bars = Progress(
            TextColumn("{task.description:<11}"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichProgress:
        self._bars.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bars.stop()

    def __call__(self, task: str, completed: int, total: int) -> None:
        if task not in self._tasks:
            self._tasks[task] = self._bars.add_task(task, total=total)
        self._bars.update(self._tasks[task], completed=completed, total=total)
