"""The live terminal view of a run (rich): one row per step with its status and tokens,
a tail of streamed text, then the outputs.

A status change or a text delta only updates that step's row (O(1)); the table is built
by rich's refresh thread, at most ``refresh_per_second`` times a second, and shows at
most a screenful of rows (running and failed steps first), so the cost of an event does
not grow with the number of steps."""

from __future__ import annotations

import json
import time
from typing import Any

from .hooks import RunHooks


def escape(text: str) -> str:
    """Model and server text is shown as text, never read as rich markup."""
    from rich.markup import escape as _escape

    return _escape(text)

_STYLE = {
    "waiting": ("·", "dim"),
    "running": ("…", "cyan"),
    "retrying": ("↻", "yellow"),
    "succeeded": ("✓", "green"),
    "failed": ("✗", "red"),
    "skipped": ("-", "dim"),
    "cancelled": ("⊘", "yellow"),
}


class LiveView(RunHooks):
    """Renders the DAG's steps live on a terminal (stderr), then prints the outputs."""

    def __init__(self, console: Any = None, live: bool = True, auto_refresh: bool = True):
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.rows: dict[str, dict[str, Any]] = {}
        self.live_enabled = live and self.console.is_terminal
        self.auto_refresh = auto_refresh
        self._live: Any = None
        self._widest = 4
        self.started = time.time()

    def _visible(self) -> tuple[list[tuple[str, dict[str, Any]]], str]:
        """The rows that fit on the screen (active ones first) and a line for the rest."""
        rows = list(self.rows.items())  # one C-level copy: the event loop may add rows meanwhile
        room = max(5, self.console.size.height - 4)
        if len(rows) <= room:
            return rows, ""
        active = [r for r in rows if r[1]["status"] in ("running", "retrying", "failed")]
        shown = active[:room] if len(active) >= room else active + [
            r for r in rows if r[1]["status"] not in ("running", "retrying", "failed")][:room - len(active)]
        counts: dict[str, int] = {}
        for _, row in rows:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        rest = f"{len(rows) - len(shown)} more; " + ", ".join(f"{n} {s}" for s, n in counts.items())
        return shown, rest

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(box=None, show_header=True, header_style="bold", pad_edge=False, expand=True)
        table.add_column("", width=1, no_wrap=True)
        # step, status and tokens keep their width; the detail takes what is left
        table.add_column("step", no_wrap=True, min_width=min(max(self._widest, 4), 32))
        table.add_column("status", no_wrap=True, min_width=9)
        table.add_column("tokens", justify="right", no_wrap=True, min_width=6)
        table.add_column("detail", overflow="ellipsis", no_wrap=True, ratio=1)
        shown, rest = self._visible()
        for sid, row in shown:
            mark, style = _STYLE.get(row["status"], ("?", ""))
            tokens = row.get("tokens")
            table.add_row(
                f"[{style}]{mark}[/]", escape(sid), f"[{style}]{row['status']}[/]",
                str(tokens) if tokens else "", escape(row.get("detail") or ""),
            )
        if rest:
            table.add_row("", f"[dim]… {escape(rest)}[/]", "", "", "")
        return table

    def refresh(self) -> None:
        """Redraw now (rich's refresh thread does it on its own while the run goes on)."""
        if self._live is not None:
            self._live.refresh()

    def _refresh(self) -> None:
        """An event changed a row: the next frame shows it (nothing is built here)."""

    def pause(self) -> None:
        """Stop redrawing while the user answers a question."""
        if self._live is not None:
            self._live.stop()

    def resume(self) -> None:
        if self._live is not None:
            self._live.start()

    def on_run_start(self, run_id: str, run_dir: str, steps: list[str]) -> None:
        self.console.print(f"[bold]run[/] {run_id}  [dim]{escape(run_dir)}[/]")
        for sid in steps:
            self.rows[sid] = {"status": "waiting"}
        self._widest = max((len(s) for s in self.rows), default=4)
        if self.live_enabled:
            from rich.live import Live

            self._live = Live(console=self.console, refresh_per_second=8, transient=False,
                              get_renderable=self._table, auto_refresh=self.auto_refresh)
            self._live.start()

    def on_step_status(self, step_id: str, status: str, detail: str | None = None,
                       usage: dict[str, int] | None = None) -> None:
        base = step_id.split(".", 1)[0]
        row = self.rows.setdefault(base, {"status": "waiting"})
        if step_id == base or status in ("failed", "retrying"):
            row["status"] = status
        row["detail"] = (detail or "").replace("\n", " ")
        if usage and usage.get("total_tokens"):
            row["tokens"] = usage["total_tokens"]
        if not self.live_enabled and step_id == base and status not in ("running",):
            mark, style = _STYLE.get(status, ("?", ""))
            self.console.print(f"[{style}]{mark} {escape(step_id)} {status}[/]"
                               + (f" [dim]{escape(row['detail'])}[/]" if row["detail"] else ""))
        self._refresh()

    def on_notice(self, step_key: str, message: str) -> None:
        self.console.print(f"[yellow]! {escape(step_key)}:[/] {escape(message)}", highlight=False)

    def on_text_delta(self, step_key: str, delta: str) -> None:
        base = step_key.split(".", 1)[0]
        row = self.rows.setdefault(base, {"status": "running"})
        row["stream"] = (row.get("stream", "") + delta)[-400:]
        row["detail"] = row["stream"].replace("\n", " ")[-70:]
        self._refresh()

    def on_text_reset(self, step_key: str) -> None:
        row = self.rows.setdefault(step_key.split(".", 1)[0], {"status": "running"})
        row["stream"] = row["detail"] = ""
        self._refresh()

    def on_run_end(self, result: Any) -> None:
        if self._live is not None:
            self.refresh()
            self._live.stop()
            self._live = None
        elapsed = time.time() - self.started
        style = {"succeeded": "green", "failed": "red"}.get(result.status, "yellow")
        self.console.print(f"[{style}]{result.status}[/] in {elapsed:.1f}s  "
                           f"[dim]{escape(str(result.run_dir))}[/]")
        if result.error:
            self.console.print(f"[red]{escape(result.error)}[/]")


def print_outputs(outputs: dict[str, Any]) -> None:
    """Outputs go to stdout: text as is, other values as JSON."""
    import click

    for name, value in outputs.items():
        if isinstance(value, str):
            text = value
        else:
            text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
        if len(outputs) == 1:
            click.echo(text)
        else:
            click.echo(f"── {name} ──")
            click.echo(text)
