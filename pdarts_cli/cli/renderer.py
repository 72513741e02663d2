"""The console a run renders to: lines on any output and, on a terminal, one live progress
bar below them (what, how far, running statistics, elapsed, ETA). Search and training both
render through it."""

from __future__ import annotations

from rich.console import Console, RenderableType
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class ProgressRenderer:
    """Lines through ``console``; a progress bar over epochs of batches only when ``live``
    (a terminal: logs and pipes get the lines alone)."""

    def __init__(self, console: Console, live: bool) -> None:
        self.console = console
        self.live = live
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._first_epoch = 1
        self._steps = 0

    @property
    def running(self) -> bool:
        """Whether a bar is shown."""
        return self._progress is not None

    def print(self, renderable: RenderableType, soft_wrap: bool = False) -> None:
        """A line or a table, markup rendered; ``soft_wrap`` leaves long lines unbroken."""
        self.console.print(renderable, highlight=False, soft_wrap=soft_wrap)

    def note(self, text: str) -> None:
        """A one-line remark, shown as it is (brackets in it are not markup)."""
        self.print(escape(text), soft_wrap=True)

    def warn(self, text: str) -> None:
        """A one-line warning, in yellow on a terminal; ``warning:`` carries it in logs."""
        self.print(f"[yellow]warning:[/] {escape(text)}", soft_wrap=True)

    def start(self, description: str, first_epoch: int, epochs: int, steps: int) -> None:
        """A bar over epochs ``first_epoch``..``epochs`` (1-based) of ``steps`` batches each,
        in place of any bar shown; nothing when not live."""
        if not self.live:
            return
        self.stop()
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._progress.start()
        self._first_epoch, self._steps = first_epoch, steps
        total = (epochs - first_epoch + 1) * steps
        self._task = self._progress.add_task(description, total=total, stats="")

    def update(self, epoch: int, step: int, stats: str) -> None:
        """Batch ``step`` (1-based) of epoch ``epoch`` is done; ``stats`` beside the bar."""
        if self._progress is None or self._task is None:
            return
        completed = (epoch - self._first_epoch) * self._steps + step
        self._progress.update(self._task, completed=completed, stats=stats)

    def stop(self) -> None:
        """Remove the bar, if one is shown."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._task = None
