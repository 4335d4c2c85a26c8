"""The terminal side of a dataset run: a rich progress bar on stderr (rows done / failed,
rows/s, tokens/min, ETA) and a short summary at the end. Off a terminal, a line every
10% instead; under ``--json`` only notices, on stderr. Each row's end costs O(1): the bar
is redrawn by rich's refresh thread, a few times a second, never per row."""

from __future__ import annotations

import sys
import time
from typing import Any

from .engine import DatasetHooks, DatasetResult


class QuietHooks(DatasetHooks):
    """``--json``: stdout stays one JSON object; notices go to stderr."""

    def on_notice(self, step_key: str, message: str) -> None:
        sys.stderr.write(f"{step_key}: {message}\n")


class DatasetProgress(DatasetHooks):
    """Rows done / failed, rows/s, tokens/min and ETA, on stderr."""

    def __init__(self, console: Any = None):
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.progress: Any = None
        self.task: Any = None
        self.total = 0
        self.done = self.failed = self.tokens = self.first_done = 0
        self.started = time.monotonic()
        self.next_line = 0.1

    def _stats(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        run = self.done - self.first_done
        return (f"[red]{self.failed} failed[/]  {run / elapsed:.1f} rows/s  "
                f"{self.tokens / elapsed * 60:,.0f} tokens/min")

    def on_dataset_start(self, run_id: str, run_dir: str, total: int, done: int) -> None:
        from rich.markup import escape

        self.total, self.done, self.first_done = total, done, done
        self.started = time.monotonic()
        self.console.print(f"[bold]dataset run[/] {run_id}  [dim]{escape(run_dir)}[/]  "
                           f"{total} rows" + (f", {done} done before" if done else ""))
        if self.console.is_terminal:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self.progress = Progress(TextColumn("rows"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
                                     TextColumn("ETA"), TimeRemainingColumn(),
                                     console=self.console, refresh_per_second=4, transient=False)
            self.task = self.progress.add_task("rows", total=total, completed=done, stats=self._stats())
            self.progress.start()

    def on_row_done(self, number: int, status: str, tokens: int, error: str | None) -> None:
        self.done += 1
        self.tokens += tokens
        if status != "succeeded":
            self.failed += 1
        if self.progress is not None:
            self.progress.update(self.task, completed=self.done, stats=self._stats())
        elif self.total and self.done / self.total >= self.next_line:
            self.next_line += 0.1
            self.console.print(f"{self.done}/{self.total} rows  {self._stats()}", highlight=False)

    def on_notice(self, step_key: str, message: str) -> None:
        from rich.markup import escape

        self.console.print(f"[yellow]! {escape(step_key)}:[/] {escape(message)}", highlight=False)

    def on_dataset_end(self, result: DatasetResult) -> None:
        from rich.markup import escape

        if self.progress is not None:
            self.progress.update(self.task, completed=self.done, stats=self._stats())
            self.progress.stop()
            self.progress = None
        style = {"succeeded": "green", "failed": "red"}.get(result.status, "yellow")
        rows = (f"{result.succeeded} succeeded, {result.failed} failed"
                + (f", {result.skipped} not run" if result.skipped else "")
                + (f" ({result.reused} from earlier attempts)" if result.reused else ""))
        self.console.print(f"[{style}]{result.status}[/] {result.total} rows: {rows}; "
                           f"{result.usage.get('total_tokens', 0):,} tokens in {result.duration_s:.1f}s  "
                           f"[dim]{escape(str(result.results))}[/]", highlight=False)
        if result.error:
            self.console.print(f"[red]{escape(result.error)}[/]")
