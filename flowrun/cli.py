"""The ``flowrun`` command line: parse, call, render. Heavy imports stay inside commands."""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable

import click

from ._version import __version__


def _fail(exc: Exception) -> None:
    from .errors import FlowrunError

    if isinstance(exc, FlowrunError):
        click.echo(exc.format(), err=True)
        sys.exit(exc.exit_code)
    raise exc


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn flowrun errors into messages and exit codes; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .errors import FlowrunError

        try:
            return fn(*args, **kwargs)
        except FlowrunError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="flowrun")
def main() -> None:
    """Run declarative YAML flows against the OpenAI / Azure OpenAI Responses API.

    \b
    flowrun run flows/brief.yaml -i company=Contoso
    flowrun run examples/flows/quickstart.yaml --provider emulator
    flowrun validate flows/*.yaml
    """


@main.command()
@click.argument("flows", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with every result.")
@handle_errors
def validate(flows: tuple[str, ...], as_json: bool) -> None:
    """Check flow files: YAML, schema, templates, references and cycles.

    Prints 'ok' per valid file, or each problem as FILE:LINE:COL. Exits 2 if any is invalid.
    """
    from .errors import SpecError
    from .plan import load_plan

    results: dict[str, Any] = {}
    bad = False
    for path in flows:
        try:
            plan = load_plan(path)
        except SpecError as exc:
            bad = True
            results[path] = {"valid": False, "problems": [p.to_dict() for p in exc.problems]}
            if not as_json:
                click.echo(exc.format(), err=True)
            continue
        results[path] = {"valid": True, "steps": len(plan.order)}
        if not as_json:
            click.echo(f"ok  {path} ({len(plan.order)} steps)")
    if as_json:
        click.echo(json.dumps(results, indent=2))
    if bad:
        sys.exit(2)


@main.command()
@click.argument("flow", type=click.Path(dir_okay=False))
@click.option(
    "--format", "fmt", type=click.Choice(["text", "mermaid", "dot"]), default="text",
    show_default=True, help="Output format.",
)
@handle_errors
def graph(flow: str, fmt: str) -> None:
    """Show a flow's steps and dependencies (text, Mermaid or Graphviz dot)."""
    from .graphs import render_graph
    from .plan import load_plan

    click.echo(render_graph(load_plan(flow), fmt))


@main.command()
@handle_errors
def schema() -> None:
    """Print the JSON Schema of flow files (same as schemas/flow.schema.json)."""
    from .schema import schema_text

    click.echo(schema_text(), nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
