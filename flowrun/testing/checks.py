"""Assertions: each check compares what a run did with what a case expects and returns
:class:`Failure` records (never raises for a mismatch)."""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from .spec import CostCheck, ExpectError, RequestCheck, StepCheck, ValueCheck

_MISSING = object()


@dataclass
class Failure:
    """One expectation that did not hold. ``path`` locates it in the test file's data."""

    path: tuple[Any, ...]
    message: str
    expected: Any = _MISSING
    actual: Any = _MISSING
    where: str = ""

    def diff(self) -> str:
        """Expected vs actual as a unified diff of their JSON (for values), or ''."""
        if self.expected is _MISSING or self.actual is _MISSING:
            return ""
        a = _pretty(self.expected).splitlines()
        b = _pretty(self.actual).splitlines()
        return "\n".join(difflib.unified_diff(a, b, "expected", "actual", lineterm=""))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"where": self.where, "message": self.message}
        if self.expected is not _MISSING:
            out["expected"] = self.expected
        if self.actual is not _MISSING:
            out["actual"] = self.actual
        return out


def _pretty(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return repr(text[:limit] + ("..." if len(text) > limit else "")) if isinstance(value, str) else (
        text[:limit] + ("..." if len(text) > limit else ""))


# --------------------------------------------------------------------------- values


def check_value(check: ValueCheck, value: Any, path: tuple[Any, ...], label: str) -> list[Failure]:
    """Every check of ``check`` applied to ``value``."""
    out: list[Failure] = []
    given = check.model_fields_set
    if "equals" in given and value != check.equals:
        out.append(Failure(path + ("equals",), f"{label} does not equal the expected value",
                           check.equals, value))
    if "contains" in given:
        needle = check.contains
        ok = False
        if isinstance(value, str):
            ok = isinstance(needle, str) and needle in value
        elif isinstance(value, (list, tuple)):
            ok = needle in value
        elif isinstance(value, dict):
            ok = needle in value
        if not ok:
            out.append(Failure(path + ("contains",), f"{label} does not contain {_short(needle)}: "
                                                      f"it is {_short(value)}"))
    if "matches" in given and check.matches is not None:
        try:
            rx = re.compile(check.matches)
        except re.error as exc:
            out.append(Failure(path + ("matches",), f"not a valid regular expression: {exc}"))
        else:
            if not isinstance(value, str) or not rx.search(value):
                out.append(Failure(path + ("matches",), f"{label} does not match /{check.matches}/: "
                                                         f"it is {_short(value)}"))
    if "json_schema" in given and check.json_schema is not None:
        out.extend(_schema_failures(check.json_schema, value, path + ("json_schema",), label))
    if "approx" in given and check.approx is not None:
        number = value
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = None
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isclose(
                float(number), check.approx, rel_tol=0, abs_tol=check.tolerance):
            out.append(Failure(path + ("approx",), f"{label} is {_short(value)}, not within "
                                                    f"{check.tolerance} of {check.approx}"))
    if "length" in given and check.length is not None:
        try:
            n = len(value)
        except TypeError:
            n = None
        if n != check.length:
            out.append(Failure(path + ("length",), f"{label} has length {n}, expected {check.length}"))
    if "expr" in given and check.expr is not None:
        out.extend(check_expr(check.expr, {"value": value}, path + ("expr",)))
    return out


def _schema_failures(schema: dict[str, Any], value: Any, path: tuple[Any, ...], label: str) -> list[Failure]:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return [Failure(path, f"json_schema is not a valid JSON Schema: {exc.message}")]
    errors = sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    return [Failure(path, f"{label}{''.join(f'[{p!r}]' for p in e.absolute_path)}: {e.message}")
            for e in errors[:5]]


def check_expr(expr: str, context: dict[str, Any], path: tuple[Any, ...]) -> list[Failure]:
    """A sandboxed Jinja expression (``{{ }}`` optional) that must be truthy."""
    from ..templating import TemplateError, evaluate, is_template

    source = expr if is_template(expr) else "{{ " + expr + " }}"
    try:
        result = evaluate(source, context)
    except TemplateError as exc:
        return [Failure(path, f"expression {expr!r} failed: {exc}")]
    if isinstance(result, str):
        result = result.strip().lower() not in ("", "false", "0", "none")
    if not result:
        return [Failure(path, f"expression {expr!r} is false")]
    return []


# --------------------------------------------------------------------------- steps


def check_step(check: StepCheck, step_id: str, outcome: Any, path: tuple[Any, ...]) -> list[Failure]:
    """Checks on one step's :class:`~flowrun.results.StepOutcome` (``None``: it never ran)."""
    if outcome is None:
        return [Failure(path, f"the flow has no step {step_id!r}")]
    out: list[Failure] = []
    results = outcome.items if outcome.items is not None else ([outcome.result] if outcome.result else [])
    if check.status is not None and outcome.status != check.status:
        out.append(Failure(path + ("status",), f"step {step_id} is {outcome.status}, expected {check.status}"
                           + (f" (error: {outcome.error})" if outcome.error else "")))
    if check.skipped is not None and (outcome.status == "skipped") != check.skipped:
        out.append(Failure(path + ("skipped",), f"step {step_id} is {outcome.status}, expected "
                                                 f"{'skipped' if check.skipped else 'not skipped'}"))
    if check.attempts is not None:
        attempts = max((r.attempts for r in results), default=0)
        if attempts != check.attempts:
            out.append(Failure(path + ("attempts",), f"step {step_id} took {attempts} attempt(s), "
                                                      f"expected {check.attempts}"))
    if check.tool_calls is not None:
        calls = [c for r in results for c in r.tool_calls]
        out.extend(_tool_call_failures(check, calls, path + ("tool_calls",), step_id))
    result = outcome.result if outcome.result is not None else None
    if check.text is not None:
        text = result.text if result is not None else None
        out.extend(check_value(check.text, text if text is not None else "", path + ("text",),
                               f"steps.{step_id}.text"))
    if check.output is not None:
        value = result.output if result is not None else None
        out.extend(check_value(check.output, value, path + ("output",), f"steps.{step_id}.output"))
    return out


def _arguments(call: dict[str, Any]) -> dict[str, Any]:
    args = call.get("arguments")
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return {}
    return args if isinstance(args, dict) else {}


def _matches_call(want: Any, call: dict[str, Any]) -> bool:
    if call.get("name") != want.name:
        return False
    args = _arguments(call)
    return all(k in args and args[k] == v for k, v in want.arguments.items())


def _tool_call_failures(check: StepCheck, calls: list[dict[str, Any]], path: tuple[Any, ...],
                        step_id: str) -> list[Failure]:
    wanted = check.tool_calls or []
    seen = [{"name": c.get("name"), "arguments": _arguments(c)} for c in calls]
    expected = [{"name": w.name, "arguments": w.arguments} for w in wanted]
    if check.tool_calls_order == "exact":
        ok = len(calls) == len(wanted) and all(_matches_call(w, c) for w, c in zip(wanted, calls))
    elif check.tool_calls_order == "in_order":
        i, ok = 0, True
        for w in wanted:
            while i < len(calls) and not _matches_call(w, calls[i]):
                i += 1
            if i == len(calls):
                ok = False
                break
            i += 1
    else:
        ok = all(any(_matches_call(w, c) for c in calls) for w in wanted)
    if ok:
        return []
    how = {"exact": "exactly", "in_order": "in this order", "any": "in any order"}[check.tool_calls_order]
    return [Failure(path, f"step {step_id}'s tool calls do not include these, {how}", expected, seen)]


# --------------------------------------------------------------------------- requests


def model_requests(journal: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The journal's ``POST .../responses`` bodies, oldest first."""
    return [e.get("body") or {} for e in journal
            if e.get("method") == "POST" and str(e.get("path", "")).rstrip("/").endswith("/responses")]


def _field(body: Any, dotted: str) -> Any:
    node = body
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _offered(body: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        names.add(str(tool.get("type")))
        for key in ("name", "server_label"):
            if tool.get(key):
                names.add(str(tool[key]))
    return names


def check_requests(check: RequestCheck, journal: list[dict[str, Any]], outcomes: dict[str, Any],
                   path: tuple[Any, ...]) -> list[Failure]:
    """Checks on the requests ``check.step`` sent."""
    bodies = []
    for body in model_requests(journal):
        meta = body.get("metadata") or {}
        if meta.get("flowrun_step") != check.step:
            continue
        if check.item is not None and meta.get("flowrun_item") != str(check.item):
            continue
        bodies.append(body)
    label = f"step {check.step}" + (f" item {check.item}" if check.item is not None else "")
    out: list[Failure] = []
    if check.count is not None and len(bodies) != check.count:
        out.append(Failure(path + ("count",), f"{label} sent {len(bodies)} request(s), expected {check.count}"))
    if check.turn is not None:
        if check.turn >= len(bodies):
            return out + [Failure(path + ("turn",), f"{label} sent {len(bodies)} request(s); there is no "
                                                    f"turn {check.turn}")]
        bodies = [bodies[check.turn]]
    content = [k for k in ("previous_response_of", "tools", "has", "lacks") if getattr(check, k) is not None]
    if not content:
        return out
    if not bodies:
        return out + [Failure(path, f"{label} sent no request")]

    def failures_for(body: dict[str, Any]) -> list[Failure]:
        found: list[Failure] = []
        if check.previous_response_of is not None:
            prev = outcomes.get(check.previous_response_of)
            ids = set()
            if prev is not None:
                for r in prev.items if prev.items is not None else ([prev.result] if prev.result else []):
                    ids.update(r.response_ids or ([r.response_id] if r.response_id else []))
            sent = body.get("previous_response_id")
            if not ids or sent not in ids:
                found.append(Failure(path + ("previous_response_of",),
                                     f"{label} sent previous_response_id {sent!r}, not a response of step "
                                     f"{check.previous_response_of} ({', '.join(sorted(ids)) or 'it has none'})"))
        if check.tools is not None:
            missing = [t for t in check.tools if t not in _offered(body)]
            if missing:
                found.append(Failure(path + ("tools",), f"{label} did not offer {', '.join(missing)} "
                                                         f"(offered: {', '.join(sorted(_offered(body))) or 'none'})"))
        for name in check.has or []:
            if _field(body, name) is _MISSING:
                found.append(Failure(path + ("has",), f"{label}'s request has no {name}"))
        for name in check.lacks or []:
            if _field(body, name) is not _MISSING:
                found.append(Failure(path + ("lacks",), f"{label}'s request has {name} = "
                                                         f"{_short(_field(body, name))}"))
        return found

    per_body = [failures_for(b) for b in bodies]
    if any(not f for f in per_body):
        return out
    return out + per_body[-1] if len(bodies) == 1 else out + [
        Failure(path, f"none of the {len(bodies)} requests of {label} passes: " + per_body[-1][0].message)]


# --------------------------------------------------------------------------- cost and errors


def check_cost(check: CostCheck, outcomes: dict[str, Any], journal: list[dict[str, Any]],
               path: tuple[Any, ...]) -> list[Failure]:
    out: list[Failure] = []
    if check.max_tokens is not None:
        tokens = sum(o.usage.get("total_tokens", 0) for o in outcomes.values())
        if tokens > check.max_tokens:
            out.append(Failure(path + ("max_tokens",), f"the run used {tokens} tokens, more than "
                                                        f"{check.max_tokens}"))
    if check.max_requests is not None:
        n = len(model_requests(journal))
        if n > check.max_requests:
            out.append(Failure(path + ("max_requests",), f"the run sent {n} model requests, more than "
                                                          f"{check.max_requests}"))
    return out


def check_error(check: ExpectError, result: Any, path: tuple[Any, ...]) -> list[Failure]:
    """The run must have failed as ``check`` says."""
    if result.status != check.status:
        return [Failure(path + ("status",), f"the run {result.status}, expected it to be {check.status}"
                        + (f" (error: {result.error})" if result.error else ""))]
    out: list[Failure] = []
    message = result.error or ""
    if check.step is not None:
        outcome = result.steps.get(check.step)
        if outcome is None or outcome.status != "failed":
            failed = [s for s, o in result.steps.items() if o.status == "failed"]
            out.append(Failure(path + ("step",), f"step {check.step} did not fail (failed: "
                                                  f"{', '.join(failed) or 'none'})"))
        else:
            message = outcome.error or message
    if check.message is not None and not re.search(check.message, message or ""):
        out.append(Failure(path + ("message",), f"the error does not match /{check.message}/: {message!r}"))
    return out
