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
    Emulator scripts (NAME.emulator.yaml) given among them are checked as scripts.
    """
    from .errors import SpecError
    from .plan import load_plan

    results: dict[str, Any] = {}
    bad = False
    for path in flows:
        if _is_emulator_script(path):
            problem = _check_emulator_script(path)
            results[path] = {"valid": problem is None, "kind": "emulator script"}
            if problem is not None:
                bad = True
                results[path]["problems"] = [{"file": path, "message": problem}]
                if not as_json:
                    click.echo(problem if problem.startswith(path) else f"{path}: {problem}", err=True)
            elif not as_json:
                click.echo(f"ok  {path} (emulator script)")
            continue
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
            n = len(plan.order)
            click.echo(f"ok  {path} ({n} step{'s' if n != 1 else ''})")
    if as_json:
        click.echo(json.dumps(results, indent=2))
    if bad:
        sys.exit(2)


def _is_emulator_script(path: str) -> bool:
    return path.endswith((".emulator.yaml", ".emulator.yml", ".emulator.json"))


def _check_emulator_script(path: str) -> str | None:
    """None if the emulator script loads; else why not."""
    from .emulator import ScriptError, load_script

    try:
        load_script(path)
    except (ScriptError, OSError, ValueError) as exc:
        return str(exc)
    return None


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


@main.command()
@click.argument("flow", type=click.Path(dir_okay=False))
@click.option("-i", "--input", "assignments", multiple=True, metavar="NAME=VALUE",
              help="A flow input; repeat for several.")
@click.option("--inputs", "inputs_file", type=click.Path(dir_okay=False),
              help="A YAML or JSON file of inputs (-i wins over it).")
@click.option("--provider", type=click.Choice(["azure", "openai", "compatible", "emulator"]),
              help="Endpoint kind; default from the flow, the environment or the config file.")
@click.option("--base-url", help="Endpoint URL (compatible endpoints, or an emulator you started).")
@click.option("--json", "as_json", is_flag=True,
              help="Print exactly one JSON object (run_id, status, outputs, steps) on stdout.")
@click.option("--max-concurrency", type=click.IntRange(1), help="Steps (and items) in flight at once.")
@click.option("--run-dir", type=click.Path(file_okay=False), default=".flowrun/runs",
              show_default=True, help="Where run records and artifacts go.")
@click.option("--emulator-script", type=click.Path(dir_okay=False),
              help="Script for the emulator's model (default: FLOW.emulator.yaml beside the flow).")
@click.option("--interactive/--no-interactive", default=None,
              help="Ask on the terminal for MCP approvals and safety checks "
                   "(default: when stdin and stderr are terminals).")
@click.option("--cache/--no-cache", default=None,
              help="Use the step cache for every step (steps with function, command, flow or "
                   "MCP tools only with cache: true), or for none (default: as the flow's "
                   "cache: says). Place: $FLOWRUN_CACHE_DIR.")
@handle_errors
def run(flow: str, assignments: tuple[str, ...], inputs_file: str | None, provider: str | None,
        base_url: str | None, as_json: bool, max_concurrency: int | None, run_dir: str,
        emulator_script: str | None, interactive: bool | None, cache: bool | None) -> None:
    """Run a flow. Exit code: 0 succeeded, 1 a step failed, 2 invalid flow or usage,
    130 interrupted."""
    from .launch import launch

    result = launch(
        flow, assignments, inputs_file, provider, base_url, as_json, max_concurrency,
        run_dir, emulator_script, interactive, cache,
    )
    if as_json:
        click.echo(json.dumps(result.to_json(), ensure_ascii=False, default=str))
    else:
        from .view import print_outputs

        print_outputs(result.outputs)
    sys.exit(result.exit_code)


@main.command()
@click.option("--port", type=int, default=8765, show_default=True, help="Port (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--latency-ms", type=click.IntRange(0), default=None,
              help="Added latency per request (env FLOWRUN_EMULATOR_LATENCY_MS).")
@click.option("--faults", help="Faults to inject, e.g. '429x2:retry_after=1,500x1' "
              "(env FLOWRUN_EMULATOR_FAULTS).")
@click.option("--script", type=click.Path(dir_okay=False), help="A script for the model.")
@handle_errors
def emulator(port: int, host: str, latency_ms: int | None, faults: str | None,
             script: str | None) -> None:
    """Serve the built-in Responses emulator (under /v1 and /openai/v1)."""
    from .emulator import FaultSpecError, ScriptError, serve
    from .errors import UsageError

    try:
        serve(port=port, host=host, latency_ms=latency_ms, faults=faults, script=script)
    except (FaultSpecError, ScriptError) as exc:
        raise UsageError(f"emulator: {exc}") from None
    except OSError as exc:
        raise UsageError(f"emulator: cannot listen on {host}:{port}: {exc.strerror or exc}",
                         hint="choose another --port (0 picks a free one)") from None
    except ValueError as exc:  # FLOWRUN_EMULATOR_LATENCY_MS and friends
        raise UsageError(f"emulator: {exc}") from None


from .cli_runs import register as _register_run_commands  # noqa: E402

_register_run_commands(main, handle_errors)

from .cli_cache import register as _register_cache_commands  # noqa: E402

_register_cache_commands(main, handle_errors)


if __name__ == "__main__":  # pragma: no cover
    main()
