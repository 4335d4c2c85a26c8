"""The terminal side of batch mode: the dataset progress view, plus a line per batch as
it is submitted, moves on (validating, in progress, finalizing) and ends, with its
request counts. Under ``--json`` nothing but notices (on stderr)."""

from __future__ import annotations

from typing import Any

from ..dataset.progress import DatasetProgress


class BatchProgress(DatasetProgress):
    """Rows as :class:`DatasetProgress` shows them, and each batch's status."""

    def on_batch(self, event: dict[str, Any]) -> None:
        from rich.markup import escape

        done = event["completed"] + event["failed"]
        counts = f"{done}/{event['lines']} lines" + (f", [red]{event['failed']} failed[/]" if event["failed"] else "")
        self.console.print(f"[cyan]batch[/] {escape(str(event['batch_id']))}  layer {event['layer']} "
                           f"round {event['round']}: {escape(event['status'])}  {counts}", highlight=False)
