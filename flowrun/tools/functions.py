"""Function tools: the ``python``, ``command`` and ``flow`` tool kinds, and the
``function_call`` handler that runs them for the model.

Building (once per step run): each tool becomes a :class:`FunctionTool` in
``sc.functions`` and a ``{"type": "function", ...}`` entry in the request. Its schema comes
from the type hints and docstring (``python``), from ``parameters:``, or from the
sub-flow's inputs (``flow``); parameters named in ``bind`` are removed from it. With
``strict: true`` (the default) the schema is made strict-compatible
(:func:`~.schema_from_hints.make_strict`), or sent with ``strict: false`` when it cannot be.

Calling (each model turn that asks for functions): every ``function_call`` item of the
response runs concurrently; their ``function_call_output`` items go back in call order.
Bad JSON, arguments that do not match the schema, an unknown name, an exception or a
timeout become an error output (``{"error": "..."}``) the model can react to - never a
step failure. Each call is recorded in ``sc.result.tool_calls`` (name, call_id, redacted
arguments, output or error, duration, turn). Bound values are added after validation,
so they never appear in the schema, the model's input or the recorded arguments.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from ..durable import ledger_of
from ..errors import ExecutionError, FlowrunError, ToolLoopLimit
from ..secrets import truncate
from ..templating import TemplateError
from ..tracing import current as tracer
from . import register_item, register_tool
from .command import CommandFailed, resolve_argv, run_command
from .schema_from_hints import (
    NotStrict,
    SchemaProblem,
    drop_optional_nulls,
    make_strict,
    remove_properties,
    signature_schema,
)

MAX_OUTPUT_CHARS = 1_000_000  # sent to the model (the API allows ~10 MB)
RECORD_OUTPUT_CHARS = 20_000  # kept in the run record
CANCEL_GRACE = 2.0  # seconds a timed-out call gets to wind down after cancellation
MAX_PROBLEMS = 5


class ToolFailure(Exception):
    """A call that did not work out; the message goes to the model as an error output."""


def loop_limit_message(limit: int) -> str:
    return (f"the model was still calling tools after {limit} tool turn"
            f"{'s' if limit != 1 else ''} (max_tool_turns: {limit}); raise max_tool_turns "
            "on the step or in defaults if it needs more rounds")


# --------------------------------------------------------------------------- the tool


@dataclass
class FunctionTool:
    """One function the model may call in this step."""

    name: str
    kind: str
    parameters: dict[str, Any]  # the schema the model sees (strict form when strict)
    source_schema: dict[str, Any]  # before make_strict: tells optional properties apart
    strict: bool
    invoke: Callable[[dict[str, Any], str], Awaitable[Any]]  # (arguments, call_id) -> result
    description: str | None = None
    timeout: float | None = None
    bind: dict[str, str] = field(default_factory=dict)
    validator: Draft202012Validator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.validator = Draft202012Validator(self.parameters)

    def request(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "function", "name": self.name}
        if self.description:
            entry["description"] = self.description
        entry["parameters"] = self.parameters
        entry["strict"] = self.strict
        return entry

    def problems(self, arguments: Any) -> list[str]:
        errors = sorted(self.validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
        out = []
        for err in errors[:MAX_PROBLEMS]:
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
            out.append(f"{'arguments' + where if where else 'arguments'}: {_explain(err)}")
        if len(errors) > MAX_PROBLEMS:
            out.append(f"... and {len(errors) - MAX_PROBLEMS} more")
        return out


def _explain(err: Any) -> str:
    """A validation error's message; for anyOf, what the alternatives wanted."""
    if err.validator in ("anyOf", "oneOf") and err.context:
        kinds = [e.validator_value for e in err.context if e.validator == "type"]
        if len(kinds) == len(err.context):
            flat = [k for kind in kinds for k in (kind if isinstance(kind, list) else [kind])]
            return f"{err.instance!r} is not of type {' or '.join(repr(k) for k in flat)}"
        from jsonschema.exceptions import best_match

        useful = [e for e in err.context if not (e.validator == "type" and e.validator_value == "null")]
        return best_match(useful or err.context).message
    return err.message


def _finish(sc: Any, name: str, kind: str, schema: dict[str, Any], strict: bool,
            invoke: Callable[[dict[str, Any], str], Awaitable[Any]], *,
            description: str | None, timeout: float | None, bind: dict[str, str]) -> list[dict[str, Any]]:
    """Check the schema, make it strict when asked, register the tool in the step."""
    label = f"tool {name!r}"
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        raise ExecutionError(f"{label}: a function name may only use A-Z a-z 0-9 _ - (1-64)", sc.step_id)
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise ExecutionError(f"{label}: parameters must be a JSON Schema of type object", sc.step_id)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ExecutionError(f"{label}: parameters is not a valid JSON Schema: {exc.message}",
                             sc.step_id) from None
    schema = remove_properties(schema, set(bind))
    sent = schema
    if strict:
        try:
            sent = make_strict(schema)
        except NotStrict as exc:
            strict = False
            sc.result.extra.setdefault("tool_warnings", []).append(
                f"{label} is sent with strict: false ({exc})")
    if name in sc.functions:
        raise ExecutionError(f"two function tools in this step are named {name!r}; rename one "
                             "in the flow's tools:", sc.step_id)
    sc.functions[name] = FunctionTool(name, kind, sent, schema, strict, invoke, description,
                                      timeout, dict(bind))
    return [sc.functions[name].request()]


def _inline_name(name: str, kind: str, fallback: str) -> str:
    """An inline tool (no name in the flow's ``tools:``) is named after what it runs."""
    if name != kind:
        return name
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", fallback).strip("_")[:64]
    return cleaned or kind


# --------------------------------------------------------------------------- python


_import_lock = threading.Lock()


def import_module_for(module: str, base_dir: Path) -> Any:
    """Import ``module``: a file or package beside the flow file first (imported by path
    under a name unique to that path, so two flows with their own ``tools.py`` each get
    theirs), else an installed module. ``base_dir`` is on ``sys.path`` while it runs."""
    parts = module.split(".")
    local = _local_target(parts, base_dir)
    with _import_lock:
        sys.path.insert(0, str(base_dir))
        try:
            if local is None:
                return importlib.import_module(module)
            stamps = [local.resolve()]
            for candidate in (local / "__init__.py", base_dir.joinpath(*parts).with_suffix(".py"), local):
                if candidate.is_file():
                    stamps.append(candidate.stat().st_mtime_ns)
            digest = hashlib.sha256(repr(stamps).encode()).hexdigest()[:12]
            alias = f"_flowrun_tools_{digest}_{parts[0]}"
            if alias not in sys.modules:
                _load_by_path(alias, local)
            return importlib.import_module(".".join([alias, *parts[1:]]))
        finally:
            try:
                sys.path.remove(str(base_dir))
            except ValueError:
                pass


def _local_target(parts: list[str], base_dir: Path) -> Path | None:
    """The package directory or module file beside the flow that holds the module."""
    top = base_dir / parts[0]
    if top.is_dir():
        rest = base_dir.joinpath(*parts)
        if ((top / "__init__.py").is_file() or rest.with_suffix(".py").is_file()
                or (rest / "__init__.py").is_file()):
            return top
    single = base_dir / f"{parts[0]}.py"
    return single if len(parts) == 1 and single.is_file() else None


def _load_by_path(alias: str, path: Path) -> None:
    if path.is_dir():
        init = path / "__init__.py"
        if init.is_file():
            spec = importlib.util.spec_from_file_location(alias, init, submodule_search_locations=[str(path)])
        else:  # a namespace package
            spec = importlib.machinery.ModuleSpec(alias, None, is_package=True)
            spec.submodule_search_locations = [str(path)]
    else:
        spec = importlib.util.spec_from_file_location(alias, path)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[alias] = mod
    try:
        if spec.loader is not None:
            spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[alias]
        raise


def load_callable(ref: str, base_dir: Path) -> Callable[..., Any]:
    """The function of ``module:function``; raises ValueError with a readable message."""
    module, _, attr = ref.partition(":")
    try:
        mod = import_module_for(module, base_dir)
    except ModuleNotFoundError as exc:
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            raise ValueError(f"no module {module!r} beside the flow file ({base_dir}) "
                             "or among the installed packages") from None
        raise ValueError(f"importing {module!r} failed: {exc}") from None
    except Exception as exc:
        raise ValueError(f"importing {module!r} failed: {type(exc).__name__}: {exc}") from None
    fn = getattr(mod, attr, None)
    if fn is None:
        raise ValueError(f"module {module!r} has no function {attr!r}")
    if not callable(fn):
        raise ValueError(f"{ref} is not callable")
    return fn


async def run_in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in a daemon thread. Like ``asyncio.to_thread``, except that
    a call abandoned after a timeout never keeps the process from exiting (the default
    executor is joined at shutdown)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    ctx = contextvars.copy_context()

    def settle(ok: bool, value: Any) -> None:
        if not future.done():
            future.set_result(value) if ok else future.set_exception(value)

    def target() -> None:
        try:
            outcome = (True, ctx.run(fn, *args, **kwargs))
        except BaseException as exc:  # delivered to the awaiting coroutine
            outcome = (False, exc)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:
            pass  # the loop is gone: nobody is waiting any more

    threading.Thread(target=target, name=f"flowrun-tool-{getattr(fn, '__name__', 'fn')}",
                     daemon=True).start()
    return await future


@register_tool("python")
async def build_python(sc: Any, name: str, tool: Any) -> list[dict[str, Any]]:
    name = _inline_name(name, "python", tool.python.partition(":")[2])
    try:
        fn = load_callable(tool.python, sc.base_dir)
    except ValueError as exc:
        raise ExecutionError(f"tool {name!r} ({tool.python}): {exc}", sc.step_id) from None
    try:
        sig = signature_schema(fn, set(tool.bind))
    except SchemaProblem as exc:
        if tool.parameters is None or str(exc).startswith("bind "):
            raise ExecutionError(f"tool {name!r} ({tool.python}): {exc}", sc.step_id) from None
        sig = None  # explicit parameters: the arguments go to the function as they are
    schema = sig.schema if sig is not None else tool.parameters
    if tool.parameters is not None and sig is not None:
        schema = tool.parameters
        extra = sorted(set(schema.get("properties") or {}) - set(sig.params))
        if extra and not sig.var_keyword:
            raise ExecutionError(f"tool {name!r}: parameters has {', '.join(extra)}, which "
                                 f"{tool.python} does not take", sc.step_id)
    is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None))

    async def invoke(arguments: dict[str, Any], call_id: str) -> Any:
        try:
            args, kwargs = sig.call_arguments(arguments) if sig is not None else ([], arguments)
        except ValueError as exc:  # pydantic ValidationError
            raise ToolFailure(f"invalid arguments: {_short(exc)}") from None
        result = await fn(*args, **kwargs) if is_async else await run_in_thread(fn, *args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    return _finish(sc, name, "python", schema, tool.strict, invoke,
                   description=tool.description or (sig.description if sig else None),
                   timeout=tool.timeout,
                   bind=tool.bind)


def _short(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = []
        for err in errors()[:MAX_PROBLEMS]:
            loc = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
        return "; ".join(parts)
    return str(exc)


# --------------------------------------------------------------------------- command


_NO_ARGUMENTS = {"type": "object", "properties": {}, "additionalProperties": False}


@register_tool("command")
async def build_command(sc: Any, name: str, tool: Any) -> list[dict[str, Any]]:
    name = _inline_name(name, "command", Path(tool.command[-1]).stem)
    try:
        argv = resolve_argv(list(tool.command), sc.base_dir)
    except FileNotFoundError as exc:
        raise ExecutionError(f"tool {name!r}: {exc}", sc.step_id) from None
    base_dir = sc.base_dir

    async def invoke(arguments: dict[str, Any], call_id: str) -> Any:
        try:
            return await run_command(argv, base_dir, arguments, sc.run.redactor, tracer().child_env())
        except CommandFailed as exc:
            raise ToolFailure(str(exc)) from None

    return _finish(sc, name, "command", tool.parameters or dict(_NO_ARGUMENTS), tool.strict,
                   invoke, description=tool.description, timeout=tool.timeout, bind=tool.bind)


# --------------------------------------------------------------------------- flow


_INPUT_TYPES = {
    "string": {"type": "string"}, "integer": {"type": "integer"}, "number": {"type": "number"},
    "boolean": {"type": "boolean"}, "list": {"type": "array"}, "object": {"type": "object"},
    "file": {"type": "string"},
}


def inputs_schema(flow: Any) -> dict[str, Any]:
    """A flow's inputs as the JSON Schema of a tool's parameters."""
    props: dict[str, Any] = {}
    required = []
    for input_name, spec in flow.inputs.items():
        prop = dict(_INPUT_TYPES[spec.type])
        description = spec.description or ""
        if spec.type == "file":
            description = (description + " (path of a file)").strip()
        if description:
            prop["description"] = description
        if spec.enum is not None:
            prop["enum"] = list(spec.enum)
        if spec.default is not None:
            prop["default"] = spec.default
        props[input_name] = prop
        if spec.is_required:
            required.append(input_name)
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


@register_tool("flow")
async def build_flow(sc: Any, name: str, tool: Any) -> list[dict[str, Any]]:
    try:
        sub = sc.run.plan.subflow(tool.flow)
    except KeyError:
        raise ExecutionError(f"tool {name!r}: sub-flow {tool.flow} was not loaded with the flow; "
                             "define flow tools under the flow's top-level tools:", sc.step_id) from None
    name = _inline_name(name, "flow", sub.flow.name)
    from ..steps.subflow import run_subflow

    async def invoke(arguments: dict[str, Any], call_id: str) -> Any:
        return await run_subflow(sc, tool.flow, arguments, f"{sc.key}.{name}.{call_id}")

    description = tool.description or sub.flow.description or f"Runs the flow {sub.flow.name!r}."
    return _finish(sc, name, "flow", inputs_schema(sub.flow), True, invoke,
                   description=description, timeout=tool.timeout, bind={})


# --------------------------------------------------------------------------- calling


class _TimedOut(Exception):
    pass


async def _within(coro: Awaitable[Any], timeout: float | None) -> Any:
    if timeout is None:
        return await coro
    task = asyncio.ensure_future(coro)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if task in done:
        return task.result()
    task.cancel()
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    await asyncio.wait({task}, timeout=CANCEL_GRACE)
    raise _TimedOut


def _as_output(result: Any) -> str:
    if isinstance(result, str):
        text = result
    else:
        from pydantic_core import to_jsonable_python

        try:
            text = json.dumps(to_jsonable_python(result), ensure_ascii=False)
        except Exception as exc:
            raise ToolFailure(f"the function returned a value that is not JSON "
                              f"({type(result).__name__}: {exc})") from None
    # the model gets the tool's own output (as a tool would hand it over), only shortened
    return truncate(text, MAX_OUTPUT_CHARS, marker=f"... [truncated: {len(text)} characters in all]")


async def _call_one(sc: Any, call: dict[str, Any], turn: int, bound: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """Run one function call; (output text for the model, record entry). Never raises
    for the tool's own problems."""
    redactor = sc.run.redactor
    name, call_id = call.get("name") or "", call.get("call_id") or ""
    raw = call.get("arguments") or ""
    tool = sc.functions.get(name)
    record: dict[str, Any] = {
        "name": name, "call_id": call_id, "turn": turn,
        "kind": tool.kind if isinstance(tool, FunctionTool) else None,
        "arguments": redactor.text(raw), "started_at": round(time.time(), 4),
    }
    started = time.monotonic()
    try:
        if tool is None:
            known = ", ".join(sorted(sc.functions)) or "none"
            raise ToolFailure(f"unknown function {name!r}; the functions you can call are: {known}")
        try:
            arguments = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise ToolFailure(f"the arguments are not valid JSON ({exc}); send one JSON object "
                              "that matches the function's parameters") from None
        record["arguments"] = redactor.deep(arguments)
        if isinstance(tool, FunctionTool):
            problems = tool.problems(arguments)
            if problems:
                raise ToolFailure("invalid arguments: " + "; ".join(problems))
            arguments = drop_optional_nulls(arguments, tool.source_schema)
            arguments = {**arguments, **bound.get(name, {})}
            try:
                result = await _within(tool.invoke(arguments, call_id), tool.timeout)
            except _TimedOut:
                raise ToolFailure(f"the function did not finish within {tool.timeout:g}s "
                                  "and was stopped") from None
        else:  # a plain callable another tool kind put in sc.functions
            result = tool(arguments)
            if inspect.isawaitable(result):
                result = await result
        output = _as_output(result)
        record["output"] = redactor.truncate(output, RECORD_OUTPUT_CHARS, marker="... [truncated]")
    except ToolFailure as exc:
        message = redactor.text(str(exc))
        output, record["error"] = json.dumps({"error": message}, ensure_ascii=False), message
    except FlowrunError as exc:  # a sub-flow failed, bad sub-flow inputs
        message = redactor.text(str(exc))
        output, record["error"] = json.dumps({"error": message}, ensure_ascii=False), message
    except (Exception, SystemExit) as exc:
        detail = f": {exc}" if str(exc) else ""
        message = redactor.text(f"the function raised {type(exc).__name__}{detail}")
        output, record["error"] = json.dumps({"error": message}, ensure_ascii=False), message
    record["duration_s"] = round(time.monotonic() - started, 4)
    return output, record


async def _call_recorded(sc: Any, call: dict[str, Any], turn: int,
                         bound: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """:func:`_call_one` through the step's ledger: a call that already returned (in an
    earlier attempt of the run) is not called again; its recorded output is used."""
    ledger = ledger_of(sc)
    call_id, name = call.get("call_id") or "", call.get("name") or ""
    done = ledger.call(call_id) if call_id else None
    if done is not None:
        return done
    if call_id:
        ledger.call_started(call_id, sc.state.get("turn", turn - 1), name)
    with tracer().tool_call(sc, call) as span:
        output, record = await _call_one(sc, call, turn, bound)
        span.done(record)
    if call_id:
        ledger.call_done(call_id, sc.state.get("turn", turn - 1), name, output, record)
    return output, record


def _bound_values(sc: Any, calls: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each called tool's bound parameters, rendered now (a failure fails the step)."""
    out: dict[str, dict[str, Any]] = {}
    for call in calls:
        tool = sc.functions.get(call.get("name") or "")
        if isinstance(tool, FunctionTool) and tool.bind and tool.name not in out:
            try:
                out[tool.name] = {k: sc.evaluate(v) for k, v in tool.bind.items()}
            except TemplateError as exc:
                raise ExecutionError(f"tool {tool.name!r}: bind: {exc}", sc.step_id) from None
    return out


async def _run_batch(sc: Any, response: dict[str, Any]) -> dict[int, dict[str, Any]]:
    calls = [i for i in response.get("output") or [] if i.get("type") == "function_call"]
    turn = max(1, len(sc.result.response_ids))
    if turn > sc.max_tool_turns:
        raise ToolLoopLimit(loop_limit_message(sc.max_tool_turns), sc.step_id)
    bound = _bound_values(sc, calls)
    sc.status("running", "calling " + ", ".join(str(c.get("name")) for c in calls))
    done = await asyncio.gather(*(_call_recorded(sc, c, turn, bound) for c in calls))
    outputs = {}
    for call, (output, record) in zip(calls, done):
        sc.result.tool_calls.append(record)
        outputs[id(call)] = {"type": "function_call_output", "call_id": call.get("call_id"),
                             "output": output}
    return outputs


@register_item("function_call")
async def on_function_call(sc: Any, item: dict[str, Any], response: dict[str, Any]) -> list[dict[str, Any]]:
    """The first function_call of a response runs all of them concurrently; each handler
    call then returns its own output, so outputs keep the calls' order."""
    batches = sc.state.setdefault("function_call_batches", {})
    key = response.get("id") or id(response)
    if key not in batches:
        batches[key] = await _run_batch(sc, response)
    outputs = batches[key]
    output = outputs.pop(id(item), None)
    if not outputs:
        batches.pop(key, None)
    if output is None:  # not one of the response's own items (should not happen)
        output = {"type": "function_call_output", "call_id": item.get("call_id"),
                  "output": json.dumps({"error": "this call was not run"})}
    return [output]
