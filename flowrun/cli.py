"""The ``flowrun`` command line: parse, call, render. Heavy imports stay inside commands."""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable

import click

from ._version import __version__
from .tracing import otel_options
from .cli_report import report_after, report_option


def error_json(exc: BaseException) -> dict[str, Any]:
    """The one object ``--json`` prints for an error: ``status`` is ``invalid`` for exit 2
    (the flow or the command line), else ``error``; the message; the positioned problems."""
    from .errors import SpecError

    code = getattr(exc, "exit_code", 1)
    message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
    out: dict[str, Any] = {
        "status": "invalid" if code == 2 else "error",
        "error": message,
        "error_type": type(exc).__name__,
        "exit_code": code,
        "problems": [p.to_dict() for p in exc.problems] if isinstance(exc, SpecError) else [],
    }
    if getattr(exc, "hint", None):
        out["hint"] = exc.hint  # type: ignore[attr-defined]
    return out


def _fail(exc: Exception, as_json: bool = False) -> None:
    from .errors import FlowrunError

    if isinstance(exc, FlowrunError):
        click.echo(exc.format(), err=True)
        if as_json:
            from .jsontext import dumps

            click.echo(dumps(error_json(exc), default=str))
        sys.exit(exc.exit_code)
    raise exc


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn flowrun errors into messages and exit codes; never a traceback. Under
    ``--json`` the error is also one JSON object on stdout."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .errors import FlowrunError

        try:
            return fn(*args, **kwargs)
        except FlowrunError as exc:
            _fail(exc, bool(kwargs.get("as_json")))
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


class _Main(click.Group):
    """The command group; with ``--json`` among the arguments, a command-line error
    (unknown option, missing argument) is also printed as one JSON object on stdout."""

    def main(self, args: Any = None, *rest: Any, **kwargs: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        given = argv[: argv.index("--")] if "--" in argv else argv
        if "--json" not in given or rest or not kwargs.get("standalone_mode", True):
            return super().main(args, *rest, **kwargs)
        try:
            code = super().main(argv, **{**kwargs, "standalone_mode": False})
        except click.ClickException as exc:
            exc.show()
            click.echo(json.dumps(error_json(exc)))
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--provider", type=click.Choice(["azure", "openai", "compatible", "emulator"]),
              help="Also warn about tools and options this provider kind does not offer.")
@click.option("--batch", is_flag=True, help="Also refuse steps batch mode (run --batch) cannot run.")
@handle_errors
def validate(flows: tuple[str, ...], as_json: bool, provider: str | None, batch: bool) -> None:
    """Check flow files: YAML, schema, templates, references and cycles.

    Prints 'ok' per valid file, or each problem as FILE:LINE:COL. Exits 2 if any is invalid.
    Emulator scripts (NAME.emulator.yaml) given among them are checked as scripts.
    With --provider, what that provider does not offer is a warning (exit code unchanged).
    With --batch, a step the Batch API cannot run is a problem.
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
            if batch:
                from .batch import check_batchable

                check_batchable(plan)
        except SpecError as exc:
            bad = True
            results[path] = {"valid": False, "problems": [p.to_dict() for p in exc.problems]}
            if not as_json:
                click.echo(exc.format(), err=True)
            continue
        results[path] = {"valid": True, "steps": len(plan.order)}
        if provider:
            from .capabilities import provider_warnings

            warnings = provider_warnings(plan, provider)
            results[path]["warnings"] = [w.to_dict() for w in warnings]
            for w in warnings if not as_json else []:
                click.echo(w.format(), err=True)
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
@click.option("--tests", is_flag=True, help="The schema of test files (*.test.yaml) instead.")
@handle_errors
def schema(tests: bool) -> None:
    """Print the JSON Schema of flow files (same as schemas/flow.schema.json), or with
    --tests of test files (schemas/test.schema.json)."""
    from .schema import schema_text, test_schema_text

    click.echo(test_schema_text() if tests else schema_text(), nl=False)


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
@click.option("--record", type=click.Path(dir_okay=False),
              help="Save every model turn of the run in this cassette file (secrets masked).")
@click.option("--replay", type=click.Path(dir_okay=False),
              help="Run offline on the emulator, answering from this cassette.")
@click.option("--dataset", type=click.Path(dir_okay=False),
              help="Run the flow once per row of a JSONL, JSON (array) or CSV file.")
@click.option("--results", type=click.Path(dir_okay=False),
              help="With --dataset: the results JSONL file (default: RUN_DIR/ID/results.jsonl).")
@click.option("--map", "maps", multiple=True, metavar="INPUT=COLUMN",
              help="With --dataset: read INPUT from COLUMN; repeat for several.")
@click.option("--rpm", type=click.FloatRange(min=0, min_open=True),
              help="Requests per minute for the whole run (every step and row).")
@click.option("--tpm", type=click.FloatRange(min=0, min_open=True),
              help="Tokens per minute for the whole run (every step and row).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default=None,
              help="With --dataset: run the rows in this process (local, the default) or on a "
                   "Ray cluster (ray; pip install 'flowrun[ray]').")
@click.option("--ray-address", metavar="ADDR",
              help="With --engine ray: the cluster (default: $RAY_ADDRESS, else a local Ray instance).")
@click.option("--workers", type=click.IntRange(1),
              help="With --engine ray: worker actors (default: one per CPU of the cluster); "
                   "--max-concurrency is per worker.")
@click.option("--artifacts-dir", type=click.Path(file_okay=False),
              help="With --engine ray: a directory every node shares; workers write artifacts "
                   "there (default: sent back to the driver's run directory).")
@click.option("--cache/--no-cache", default=None,
              help="Use the step cache for every step (steps with function, command, flow or "
                   "MCP tools only with cache: true), or for none (default: as the flow's "
                   "cache: says). Place: $FLOWRUN_CACHE_DIR.")
@click.option("--batch", is_flag=True,
              help="With --dataset: run through the Batch API, a DAG layer (and tool-loop round) "
                   "per batch, at about half the price.")
@click.option("--batch-deployment", metavar="NAME",
              help="With --batch: the model every batch line names (Azure: a Global Batch deployment).")
@click.option("--detach", is_flag=True,
              help="With --batch: on Ctrl-C leave the batches running (flowrun resume re-attaches).")
@report_option
@handle_errors
@otel_options
def run(flow: str, assignments: tuple[str, ...], inputs_file: str | None, provider: str | None,
        base_url: str | None, as_json: bool, max_concurrency: int | None, run_dir: str,
        emulator_script: str | None, interactive: bool | None, record: str | None,
        replay: str | None, dataset: str | None, results: str | None, maps: tuple[str, ...],
        rpm: float | None, tpm: float | None, engine: str | None, ray_address: str | None,
        workers: int | None, artifacts_dir: str | None, cache: bool | None, batch: bool,
        batch_deployment: str | None, detach: bool, report: str | None,
        prices_file: str | None) -> None:
    """Run a flow. Exit code: 0 succeeded, 1 a step (or a dataset row) failed, 2 invalid
    flow or usage, 130 interrupted.

    With --dataset, every row is one run of the flow under one run id; -i sets inputs
    shared by every row. --json prints run_id, status, rows, results and usage.
    --report writes the run's HTML report when it ends (see `flowrun report`)."""
    from .errors import UsageError
    from .jsontext import dumps

    if report is None and prices_file:
        raise UsageError("--prices goes with --report (or `flowrun report RUN --prices FILE`)")
    if prices_file:
        from .report.prices import load_prices

        load_prices(prices_file)  # a broken prices file stops the run before it starts

    if dataset is None and (results or maps or batch):
        raise UsageError("--results, --map and --batch go with --dataset FILE")
    if dataset is None and (engine or ray_address or workers or artifacts_dir):
        raise UsageError("--engine, --ray-address, --workers and --artifacts-dir go with --dataset FILE",
                         hint="a single run runs in this process; give --dataset FILE to spread rows over Ray")
    if dataset is not None:
        if record or replay:
            raise UsageError("--record and --replay are for single runs, not --dataset")
        from .dataset.engines import engine_settings
        from .dataset.launch import run_dataset

        chosen = engine_settings(engine, ray_address, workers, artifacts_dir)
        outcome = run_dataset(flow, dataset, results, maps, assignments, inputs_file, provider,
                              base_url, as_json, max_concurrency, run_dir, emulator_script, rpm, tpm,
                              engine=None if chosen["name"] == "local" else chosen,
                              batch=batch, batch_deployment=batch_deployment, detach=detach)
        report_after(outcome, report, prices_file)
        click.echo(dumps(outcome.to_json(), default=str) if as_json else outcome.outputs["results"])
        sys.exit(outcome.exit_code)
    from .launch import launch

    result = launch(
        flow, assignments, inputs_file, provider, base_url, as_json, max_concurrency,
        run_dir, emulator_script, interactive, record=record, replay=replay, rpm=rpm, tpm=tpm,
        cache=cache,
    )
    report_after(result, report, prices_file)
    if as_json:
        click.echo(dumps(result.to_json(), default=str))
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
@click.option("--web-corpus", type=click.Path(file_okay=False),
              help="Directory of HTML/Markdown pages the web_search tool searches "
                   "(env FLOWRUN_EMULATOR_WEB_CORPUS; default: a small built-in corpus).")
@click.option("--rpm", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Requests per minute before a 429 (env FLOWRUN_EMULATOR_RPM).")
@click.option("--tpm", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Tokens per minute before a 429 (env FLOWRUN_EMULATOR_TPM).")
@click.option("--api-key", envvar="FLOWRUN_EMULATOR_API_KEY", default=None,
              help="Refuse requests without this key (401), as the services do "
              "(env FLOWRUN_EMULATOR_API_KEY).")
@click.option("--batch-delay-ms", type=click.IntRange(0), default=None,
              help="Batch API: time a batch spends validating, on each line and finalizing "
              "(env FLOWRUN_EMULATOR_BATCH_DELAY_MS; default 0).")
@click.option("--batch-token-limit", default=None, metavar="N|MODEL=N,...",
              help="Batch API: enqueued-token limit per model; a batch over it fails with "
              "token_limit_exceeded (env FLOWRUN_EMULATOR_BATCH_TOKEN_LIMIT).")
@handle_errors
def emulator(port: int, host: str, latency_ms: int | None, faults: str | None,
             script: str | None, web_corpus: str | None, rpm: float | None, tpm: float | None,
             api_key: str | None, batch_delay_ms: int | None, batch_token_limit: str | None) -> None:
    """Serve the built-in Responses emulator (under /v1 and /openai/v1).

    With --rpm / --tpm it answers over-quota requests with 429 and Retry-After and sends
    x-ratelimit-* headers on every response. It serves the Batch API too (/v1/files with
    purpose batch, /v1/batches); fault rules line@... and expire@... fail batch lines."""
    from .emulator import FaultSpecError, ScriptError, serve
    from .errors import UsageError

    if web_corpus is not None:
        from .emulator.web_search import use_corpus_dir

        use_corpus_dir(web_corpus)
    try:
        serve(port=port, host=host, latency_ms=latency_ms, faults=faults, script=script,
              rpm=rpm, tpm=tpm, api_key=api_key or None, batch_delay_ms=batch_delay_ms,
              batch_token_limit=batch_token_limit)
    except (FaultSpecError, ScriptError) as exc:
        raise UsageError(f"emulator: {exc}") from None
    except OSError as exc:
        raise UsageError(f"emulator: cannot listen on {host}:{port}: {exc.strerror or exc}",
                         hint="choose another --port (0 picks a free one)") from None
    except ValueError as exc:  # FLOWRUN_EMULATOR_LATENCY_MS and friends
        raise UsageError(f"emulator: {exc}") from None


def _register_test_command() -> None:
    from .testing.command import test_command

    test_command.callback = handle_errors(test_command.callback)
    main.add_command(test_command)


_register_test_command()

from .cli_runs import register as _register_run_commands  # noqa: E402

_register_run_commands(main, handle_errors)

from .cli_report import register as _register_report_command  # noqa: E402

_register_report_command(main, handle_errors)

from .cli_cache import register as _register_cache_commands  # noqa: E402

_register_cache_commands(main, handle_errors)


def _register_recipe_commands() -> None:
    from .recipe_cli import register

    register(main, handle_errors)


_register_recipe_commands()


if __name__ == "__main__":  # pragma: no cover
    main()
