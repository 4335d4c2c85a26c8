"""The live view's cost per event does not grow with the number of steps: events only
update a row, the table is built per frame (rich's refresh thread), and a frame shows at
most a screenful of rows. Counted, not timed."""

from __future__ import annotations

import io

from rich.console import Console

from flowrun.view import LiveView


def _view(n_steps: int) -> tuple[LiveView, list[int]]:
    console = Console(file=io.StringIO(), force_terminal=True, width=100, height=30)
    view = LiveView(console, auto_refresh=False)
    built: list[int] = []
    table = view._table

    def counted():
        t = table()
        built.append(t.row_count)
        return t

    view._table = counted  # type: ignore[method-assign]
    view.on_run_start("run-1", "/tmp/run-1", [f"step_{i}" for i in range(n_steps)])
    return view, built


def test_events_build_no_table_however_many_steps():
    for n in (10, 500):
        view, built = _view(n)
        built.clear()
        for i in range(n):
            view.on_step_status(f"step_{i}", "running")
            view.on_text_delta(f"step_{i}", "some text ")
            view.on_step_status(f"step_{i}", "succeeded", usage={"total_tokens": 12})
        assert built == []  # three events per step, zero tables built
        view.refresh()  # one frame
        assert len(built) == 1 and built[0] <= 30  # a screenful, not n rows
        view._live.stop()


def test_a_frame_shows_running_and_failed_steps_first_and_counts_the_rest():
    view, built = _view(200)
    view.on_step_status("step_150", "running")
    view.on_step_status("step_170", "failed", "boom")
    shown, rest = view._visible()
    names = [sid for sid, _ in shown]
    assert names[:2] == ["step_150", "step_170"] and len(names) <= 26
    assert rest.startswith(f"{200 - len(names)} more; ") and "1 failed" in rest
    view._live.stop()
