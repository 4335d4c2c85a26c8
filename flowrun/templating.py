"""Templates: Jinja2's immutable sandbox with StrictUndefined, and reference extraction.

A template may use ``inputs.NAME``, ``steps.ID.field``, ``secrets.NAME``, ``env.NAME``,
and inside a ``for_each`` step ``item`` and ``index``. A template that is one expression,
``"{{ steps.a.output.items }}"``, evaluates to the native value (list, dict, number);
any other template renders to text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache, update_wrapper
from collections.abc import Mapping
from typing import Any, Iterator

from .template_scope import free_names

ROOTS = ("inputs", "steps", "secrets", "env")
LOOP_NAMES = ("item", "index")
_SINGLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}|\{\{|\{%).)*)\}\}\s*$", re.S)


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


@lru_cache(maxsize=1)
def environment() -> Any:
    """The one Jinja environment flowrun uses: sandboxed, immutable, strict, budgeted."""
    from jinja2 import StrictUndefined

    from . import template_budget as tb

    env = _bounded_sandbox()(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters["fromjson"] = json.loads
    env.filters["tojson"] = lambda v, indent=None: json.dumps(v, indent=indent, default=str)
    for name, func in list(env.filters.items()):
        env.filters[name] = tb.bounded(name, func)
    env.filters[tb.EACH] = tb.Counted
    env.filters[tb.CONCAT] = tb.concat
    env.globals["lipsum"] = tb.lipsum
    return env


@lru_cache(maxsize=1)
def _bounded_sandbox() -> Any:
    """Jinja's immutable sandbox with the render budget (``template_budget``) wired into
    its hooks: calls, operators, ``str.format``, loops and ``~`` (the last two by
    rewriting the parsed template before it is compiled)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
    from markupsafe import Markup

    from . import template_budget as tb

    class Formatter(tb.FormatterMixin, SandboxedFormatter):
        pass

    class EscapeFormatter(tb.FormatterMixin, SandboxedEscapeFormatter):
        pass

    class BoundedSandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset(["+", "-", "*", "/", "//", "%", "**"])

        def compile(self, source: Any, name: Any = None, filename: Any = None,
                    raw: bool = False, defer_init: bool = False) -> Any:
            if isinstance(source, str):
                source = self.parse(source, name, filename)
            tree = tb.Instrument().visit(source)
            tree.set_environment(self)
            return super().compile(tree, name, filename, raw, defer_init)

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            tb.tick()
            tb.check_binop(operator, left, right)
            return tb.sized(super().call_binop(context, operator, left, right))

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
            args = tb.check_call(__obj, args, kwargs)
            return tb.sized(super().call(__context, __obj, *args, **kwargs))

        def wrap_str_format(self, value: Any) -> Any:
            import types

            if not isinstance(value, (types.MethodType, types.BuiltinMethodType)) or \
                    value.__name__ not in ("format", "format_map") or not isinstance(value.__self__, str):
                return None
            f_self = value.__self__
            formatter = (EscapeFormatter(self, escape=f_self.escape) if isinstance(f_self, Markup)
                         else Formatter(self))
            is_map = value.__name__ == "format_map"

            def wrapper(*args: Any, **kwargs: Any) -> str:
                if is_map:
                    if kwargs or len(args) != 1:
                        raise TypeError("format_map() takes exactly one argument")
                    args, kwargs = (), args[0]
                formatter._total = 0
                return type(f_self)(formatter.vformat(f_self, args, kwargs))

            return update_wrapper(wrapper, value)

        def getattr(self, obj: Any, attribute: str) -> Any:
            # ``steps.a.items``, ``inputs.values``: in a mapping the key wins over the
            # dict method of the same name
            if isinstance(obj, Mapping):
                try:
                    return obj[attribute]
                except (KeyError, TypeError):
                    pass
            return super().getattr(obj, attribute)

    return BoundedSandbox


@dataclass(frozen=True)
class Reference:
    """A use of ``root.name`` in a template (``steps.risks``, ``inputs.company``)."""

    root: str
    name: str | None
    line: int  # 1-based line inside the template


@dataclass
class TemplateInfo:
    """What a template refers to, or why it cannot be parsed."""

    refs: list[Reference] = field(default_factory=list)
    loop_vars: set[str] = field(default_factory=set)
    loop_uses: list[tuple[str, int]] = field(default_factory=list)
    # ``steps.ID.FIELD`` uses: (ID, FIELD, line)
    step_fields: list[tuple[str, str, int]] = field(default_factory=list)
    unknown: list[tuple[str, int]] = field(default_factory=list)
    dynamic: list[tuple[str, int]] = field(default_factory=list)
    error: str | None = None
    error_line: int | None = None

    def names(self, root: str) -> set[str]:
        return {r.name for r in self.refs if r.root == root and r.name is not None}


@lru_cache(maxsize=4096)
def analyze(source: str) -> TemplateInfo:
    """Parse a template and list its references; syntax errors are reported, not raised."""
    from jinja2 import TemplateSyntaxError, nodes

    env = environment()
    info = TemplateInfo()
    try:
        tree = env.parse(source)
        free = free_names(tree)
    except TemplateSyntaxError as exc:
        info.error = exc.message or "template syntax error"
        info.error_line = exc.lineno
        return info
    except RecursionError:
        info.error = "the template is nested too deeply"
        return info
    # Jinja looks filter and test names up only at run time inside {% if %}: check them all
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        known = env.filters if isinstance(node, nodes.Filter) else env.tests
        if node.name not in known:
            kind = "filter" if isinstance(node, nodes.Filter) else "test"
            info.error, info.error_line = f"No {kind} named {node.name!r}.", node.lineno
            return info
    first_line: dict[str, int] = {}
    for n in free:
        first_line.setdefault(n.name, n.lineno)
    free_ids = {id(n) for n in free}
    for name, line in sorted(first_line.items()):
        if name in ROOTS or name in env.globals:
            continue
        if name in LOOP_NAMES:
            info.loop_vars.add(name)
            info.loop_uses.append((name, line))
            continue
        info.unknown.append((name, line))
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if not (isinstance(target, nodes.Name) and target.name in ROOTS and id(target) in free_ids):
            continue
        if isinstance(node, nodes.Getattr):
            info.refs.append(Reference(target.name, node.attr, node.lineno))
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            info.refs.append(Reference(target.name, node.arg.value, node.lineno))
        else:
            info.dynamic.append((target.name, node.lineno))
    for node in tree.find_all(nodes.Getattr):
        inner = node.node
        if (isinstance(inner, nodes.Getattr) and isinstance(inner.node, nodes.Name)
                and inner.node.name == "steps" and id(inner.node) in free_ids):
            info.step_fields.append((inner.attr, node.attr, node.lineno))
    # a bare root (``{{ steps }}``) still counts as a use of that root
    used = {r.root for r in info.refs} | {root for root, _ in info.dynamic}
    for n in free:
        if n.name in ROOTS and n.name not in used:
            info.refs.append(Reference(n.name, None, n.lineno))
            used.add(n.name)
    return info


def iter_templates(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every template string inside a plain value, with its path."""
    if isinstance(value, str):
        if is_template(value):
            yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from iter_templates(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from iter_templates(v, path + (i,))


@lru_cache(maxsize=4096)
def _compiled(source: str) -> Any:
    return environment().from_string(source)


@lru_cache(maxsize=4096)
def _compiled_expr(expr: str) -> Any:
    return environment().compile_expression(expr, undefined_to_none=False)


class TemplateError(Exception):
    """A template failed while rendering (undefined value, sandbox violation, bad filter,
    a render limit). ``line`` is the line inside the template; with an ``origin`` the
    message starts with the template's ``file:line:col`` in the flow."""

    def __init__(self, message: str, source: str = "", line: int = 1, where: str | None = None):
        self.message, self.source, self.line, self.where = message, source, line, where
        super().__init__(f"{where}: {message}" if where else message)


def evaluate(source: Any, context: dict[str, Any], origin: Any = None) -> Any:
    """A single-expression template gives its native value; other templates give text;
    non-templates are returned unchanged. Every render runs under the render budget.
    ``origin`` (the flow's ``FlowFile``) lets an error name the template's position."""
    from . import template_budget as tb

    if not is_template(source):
        return source
    m = _SINGLE_EXPR.match(source)
    try:
        with tb.budget():
            if m:
                return tb.sized(_native(_compiled_expr(m.group("expr").strip()), context))
            return _text(_compiled(source), context)
    except Exception as exc:  # jinja raises many kinds; all are the template's fault
        line = source[:m.start("expr")].count("\n") + 1 if m else _template_line(exc)
        raise TemplateError(_describe(exc), source, line, locate(origin, source, line)) from None


def _template_line(exc: BaseException) -> int:
    """The template line Jinja's rewritten traceback points at (1 if none)."""
    from jinja2 import TemplateSyntaxError

    if isinstance(exc, TemplateSyntaxError) and exc.lineno:
        return exc.lineno
    line, tb = 1, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def locate(origin: Any, source: str, line: int = 1) -> str | None:
    """``file:line:col`` of line ``line`` of template ``source`` in a loaded flow file
    (the first place that template text appears), or None."""
    if origin is None:
        return None
    src = origin.source
    for path, text in iter_templates(origin.data):
        if text != source or tuple(path) not in src.values:
            continue
        row, col = src.values[tuple(path)]
        lines = origin.text.splitlines()
        # as plan.py does: a block scalar (| or >) starts on the line after its indicator
        block = 1 if 0 < row <= len(lines) and lines[row - 1][col - 1:].lstrip()[:1] in ("|", ">") else 0
        dline = max(line, 1) - 1 + block
        return f"{src.file}:{row}:{col}" if dline == 0 else f"{src.file}:{row + dline}:1"
    return None


def _native(expr: Any, context: dict[str, Any]) -> Any:
    from jinja2 import Undefined

    value = expr(**context)
    if isinstance(value, Undefined):  # an expression returns Undefined, not raises
        value._fail_with_undefined_error()
    return value


def _text(template: Any, context: dict[str, Any]) -> str:
    """Render chunk by chunk, stopping as soon as the output passes the limit."""
    from . import template_budget as tb

    parts, total = [], 0
    for chunk in template.generate(**context):
        total += len(chunk)
        tb.check_text(total, "the rendered text")
        parts.append(chunk)
    return "".join(parts)


def render(source: Any, context: dict[str, Any], origin: Any = None) -> str:
    """Render to text; structured values become JSON."""
    value = evaluate(source, context, origin)
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=_jsonable)
    return "" if value is None else str(value)


def render_deep(value: Any, context: dict[str, Any], origin: Any = None) -> Any:
    """Evaluate every template inside a plain structure."""
    if isinstance(value, str):
        return evaluate(value, context, origin)
    if isinstance(value, dict):
        return {k: render_deep(v, context, origin) for k, v in value.items()}
    if isinstance(value, list):
        return [render_deep(v, context, origin) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    to_dict = getattr(value, "to_template", None)
    return to_dict() if callable(to_dict) else str(value)


def _describe(exc: Exception) -> str:
    from jinja2 import UndefinedError
    from jinja2.exceptions import SecurityError

    from .errors import FlowrunError

    if isinstance(exc, UndefinedError):
        return f"undefined value: {exc.message}"
    if isinstance(exc, SecurityError):
        return f"not allowed in a template: {exc}"
    if isinstance(exc, FlowrunError):  # a refused secret: its message says what to do
        return str(exc)
    if isinstance(exc, RecursionError):
        return "the template recurses too deeply (a macro or recursive loop that never stops?)"
    return f"{type(exc).__name__}: {exc}"
