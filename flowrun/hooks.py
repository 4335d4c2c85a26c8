"""Run hooks: subclass and override what you need; every method does nothing by default."""

from __future__ import annotations

from typing import Any


class RunHooks:
    """Observe a run. Called on the event loop; keep the methods quick."""

    def on_run_start(self, run_id: str, run_dir: str, steps: list[str]) -> None:
        """The run directory exists and no step has started."""

    def on_step_status(self, step_id: str, status: str, detail: str | None = None,
                       usage: dict[str, int] | None = None) -> None:
        """A step changed status: running, succeeded, failed, skipped, cancelled, retrying."""

    def on_notice(self, step_key: str, message: str) -> None:
        """Something the user should see and keep (a denied approval, a blocked page)."""

    def on_text_delta(self, step_key: str, delta: str) -> None:
        """A streamed text delta arrived for a step (``stream: true``); secrets masked."""

    def on_text_reset(self, step_key: str) -> None:
        """The text streamed so far for a step is void: the model call is retried, and its
        deltas start over."""

    def on_run_end(self, result: Any) -> None:
        """The run finished (any status); ``result`` is the :class:`RunResult`."""


class StderrNotices(RunHooks):
    """For ``--json`` runs: stdout stays one JSON object; notices go to stderr."""

    def on_notice(self, step_key: str, message: str) -> None:
        import sys

        sys.stderr.write(f"{step_key}: {message}\n")
