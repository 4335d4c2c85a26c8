"""The commands on recorded runs: ``resume``, ``runs`` and ``show``. Registered on the
``flowrun`` group by :func:`register`; heavy imports stay inside the commands."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable

import click

from .tracing import otel_options
from .cli_report import report_option

RUN_DIR_HELP = "The runs directory (it holds flowrun.db)."


@click.command()
@click.argument("run")
@click.option("-i", "--input", "assignments", multiple=True, metavar="NAME=VALUE",
              help="Override a recorded input (re-runs what depends on it); repeat for several.")
@click.option("--inputs", "inputs_file", type=click.Path(dir_okay=False),
              help="A YAML or JSON file of inputs overriding the recorded ones (-i wins over it).")
@click.option("--provider", type=click.Choice(["azure", "openai", "compatible", "emulator"]),
              help="Endpoint kind; default: the one the run used.")
@click.option("--base-url", help="Endpoint URL (compatible endpoints, or an emulator you started).")
@click.option("--json", "as_json", is_flag=True,
              help="Print exactly one JSON object (run_id, status, outputs, steps) on stdout.")
@click.option("--max-concurrency", type=click.IntRange(1), help="Steps (and items) in flight at once.")
@click.option("--run-dir", type=click.Path(file_okay=False), default=".flowrun/runs",
              show_default=True, help=RUN_DIR_HELP)
@click.option("--emulator-script", type=click.Path(dir_okay=False),
              help="Script for the emulator's model (default: FLOW.emulator.yaml beside the flow).")
@click.option("--interactive/--no-interactive", default=None,
              help="Ask on the terminal for MCP approvals and safety checks.")
@click.option("--allow-changes", is_flag=True,
              help="Resume although the flow file changed: steps whose rendered request "
                   "changed run again, with everything downstream.")
@click.option("--retry-failed", is_flag=True,
              help="A dataset run: also run the rows that failed again (default: only the rows "
                   "that did not finish).")
@click.option("--ray-address", metavar="ADDR",
              help="A dataset run on Ray: the cluster to finish it on (default: the one it started on).")
@click.option("--workers", type=click.IntRange(1),
              help="A dataset run on Ray: worker actors (default: as the run started).")
@otel_options
@report_option
def resume(run: str, assignments: tuple[str, ...], inputs_file: str | None, provider: str | None,
           base_url: str | None, as_json: bool, max_concurrency: int | None, run_dir: str,
           emulator_script: str | None, interactive: bool | None, allow_changes: bool,
           retry_failed: bool, ray_address: str | None, workers: int | None, report: str | None,
           prices_file: str | None) -> None:
    """Finish a failed, cancelled or killed run, reusing what completed.

    RUN is a run id (or a unique prefix), `last`, or a run directory. Failed, cancelled,
    interrupted and never-started steps and items run again; completed ones (and the
    completed turns of a tool loop) are reused without a request. Exit codes as for run.

    A dataset run goes on with the rows that did not finish; rows that succeeded are not
    run again, nor (without --retry-failed) rows that failed. --report writes the run's
    HTML report when it ends (see `flowrun report`).
    """
    from .resume import resume_run

    result = resume_run(run, run_dir, assignments, inputs_file, provider, base_url, as_json,
                        max_concurrency, emulator_script, interactive, allow_changes, retry_failed,
                        ray_address=ray_address, workers=workers)
    from .cli_report import report_after

    report_after(result, report, prices_file)
    if as_json:
        click.echo(json.dumps(result.to_json(), ensure_ascii=False, default=str))
    elif hasattr(result, "results"):
        click.echo(str(result.results))
    else:
        from .view import print_outputs

        print_outputs(result.outputs)
    sys.exit(result.exit_code)


@click.command()
@click.option("--flow", "flow_name", metavar="NAME", help="Only runs of this flow (its name:).")
@click.option("--status", type=click.Choice(["succeeded", "failed", "cancelled", "running",
                                             "interrupted"]), help="Only runs with this status.")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True, help="At most N runs.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.option("--run-dir", type=click.Path(file_okay=False), default=".flowrun/runs",
              show_default=True, help=RUN_DIR_HELP)
def runs(flow_name: str | None, status: str | None, limit: int, as_json: bool, run_dir: str) -> None:
    """List recent runs, newest first: id, flow, status, started, duration, steps, tokens.

    A run whose process died is shown as interrupted (`flowrun resume` finishes it)."""
    from .dead_runs import settle
    from .history import runs_table, runs_view
    from .resume import open_store

    db = open_store(run_dir)
    try:
        settle(db)  # runs whose process died are recorded as interrupted
        rows = runs_view(db, flow_name, status, limit)
    finally:
        db.close()
    click.echo(json.dumps(rows, ensure_ascii=False) if as_json else runs_table(rows))


@click.command()
@click.argument("run")
@click.argument("step", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--run-dir", type=click.Path(file_okay=False), default=".flowrun/runs",
              show_default=True, help=RUN_DIR_HELP)
def show(run: str, step: str | None, as_json: bool, run_dir: str) -> None:
    """Show a run's steps, or one step's requests, output, tool calls and errors.

    RUN is a run id (or a unique prefix), `last`, or a run directory; STEP is a step id,
    or ID.N for one for_each item. Secrets are masked."""
    from .errors import UsageError
    from .history import run_text, run_view, step_text, step_view
    from .resume import find_run

    db, row = find_run(run, run_dir)
    try:
        if step is None:
            view = run_view(db, row)
            text = run_text(view)
        else:
            view = step_view(db, row, step)
            if view is None:
                known = sorted({s["step_id"] for s in db.steps(row["id"])})
                raise UsageError(f"run {row['id']} has no step {step!r}",
                                 hint="its steps: " + (", ".join(known) or "none yet"))
            text = step_text(view)
    finally:
        db.close()
    click.echo(json.dumps(view, ensure_ascii=False, default=str) if as_json else text)


def register(group: click.Group, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Add the commands to ``group``, their callbacks wrapped by ``wrap`` (error handling)."""
    for command in (resume, runs, show):
        command.callback = wrap(command.callback)  # type: ignore[arg-type]
        group.add_command(command)
