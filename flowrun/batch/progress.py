"""The terminal side of batch mode: the dataset progress view, plus a line per batch as
it is submitted, changes status (validating, in progress, finalizing, completed) and
every tenth of its lines done. Under ``--json`` nothing but notices (on stderr)."""

from __future__ import annotations

from typing import Any

from ..dataset.progress import DatasetProgress


class BatchProgress(DatasetProgress):
    """Rows as :class:`DatasetProgress` shows them, and each batch's status."""

    def __init__(self, console: Any = None):
        super().__init__(console)
        self.shown: dict[str, tuple[str, int]] = {}  # batch id -> (status, lines done) last shown

    def on_batch(self, event: dict[str, Any]) -> None:
        from rich.markup import escape

        done = event["completed"] + event["failed"]
        status, last = self.shown.get(event["batch_id"], ("", -1))
        if event["status"] == status and done - last < max(1, event["lines"] // 10):
            return
        self.shown[event["batch_id"]] = (event["status"], done)
        failed = f", [red]{event['failed']} failed[/]" if event["failed"] else ""
        wave = f"wave {event['wave']} " if event.get("wave", 1) > 1 else ""
        self.console.print(f"[cyan]{wave}layer {event['layer']} round {event['round']}[/] {escape(event['status'])} "
                           f"{done}/{event['lines']}{failed}  [dim]{escape(str(event['batch_id']))}[/]",
                           highlight=False)
