"""``flowrun report RUN [-o FILE]``, and the ``--report [FILE]`` option of ``run`` and
``resume`` (:func:`report_option`, :func:`report_after`). Registered on the ``flowrun``
group by :func:`register`; the report package is imported only when a report is made."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

REPORT_NOTE = "report"


def report_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--report [FILE]``: write the HTML report when the run ends (any status)."""
    fn = click.option("--prices", "prices_file", type=click.Path(dir_okay=False),
                      help="With --report: token prices per model (YAML/JSON, USD per 1M "
                           "input/output/cached tokens) to show cost.")(fn)
    return click.option("--report", "report", is_flag=False, flag_value="", default=None,
                        metavar="[FILE]",
                        help="Write the run's HTML report when it ends, also when it fails "
                             "(default file: RUN_DIR/ID/report.html).")(fn)


def report_after(result: Any, report: str | None, prices_file: str | None, redactor: Any = None) -> None:
    """Write the report of a finished run (a :class:`RunResult` or a dataset result) and
    say where on stderr; a report that cannot be written is a message, not a new exit code."""
    if report is None or result is None:
        return
    from .errors import FlowrunError
    from .report import write_report

    run_dir = Path(result.run_dir)
    try:
        path = write_report(str(run_dir), run_dir.parent, report or None, prices_file=prices_file,
                            redactor=redactor)
    except FlowrunError as exc:
        click.echo(f"report: {exc.format()}", err=True)
        return
    click.echo(f"report: {path}", err=True)


@click.command()
@click.argument("run")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False),
              help="The HTML file to write (default: RUN_DIR/ID/report.html).")
@click.option("--prices", "prices_file", type=click.Path(dir_okay=False),
              help="Token prices per model (YAML/JSON: {model: {input, output, cached}} in USD "
                   "per 1M tokens); default: the config file's prices:.")
@click.option("--max-image-bytes", type=click.IntRange(0), default=None,
              help="Largest image inlined (bytes; default 2 MiB); larger ones are noted.")
@click.option("--run-dir", type=click.Path(file_okay=False), default=".flowrun/runs",
              show_default=True, help="The runs directory (it holds flowrun.db).")
def report(run: str, output: str | None, prices_file: str | None, max_image_bytes: int | None,
           run_dir: str) -> None:
    """Write a run's report: one self-contained HTML file (no network access).

    RUN is a run id (or a unique prefix), `last`, or a run directory. The page shows the
    DAG and timeline, each step's request, output, tool calls, approvals, code, images and
    screenshots, tokens and (with prices) cost; a dataset run's rows. Secrets are masked.
    Prints the file's path."""
    from .report import MAX_IMAGE_BYTES, write_report

    path = write_report(run, run_dir, output, prices_file=prices_file,
                        max_image_bytes=MAX_IMAGE_BYTES if max_image_bytes is None else max_image_bytes)
    click.echo(str(path))


def register(group: click.Group, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Add ``report`` to ``group``, its callback wrapped by ``wrap`` (error handling)."""
    report.callback = wrap(report.callback)  # type: ignore[arg-type]
    group.add_command(report)
