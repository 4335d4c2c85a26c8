"""The render budget: what one template render may cost.

Jinja's sandbox stops escapes, not expense. Every render runs under a :class:`Budget`
(wall clock and loop iterations plus calls), and every operation that can build a big
value checks its size *before* building it: ``*``, ``**``, ``+``, ``~``, ``%``,
``str.format``, the string methods and filters that pad, repeat or join, ``lipsum``.
A template over a limit fails with :class:`LimitExceeded` (a Jinja ``SecurityError``).
"""

from __future__ import annotations

import re
import time
import types
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import update_wrapper
from collections.abc import Mapping
from typing import Any, Callable, Iterator

from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.visitor import NodeTransformer

MAX_TEXT = 5_000_000
"""Longest string a template may build, including its rendered output (characters)."""
MAX_ITEMS = 1_000_000
"""Longest list or tuple a template may build."""
MAX_INT_DIGITS = 4_300
"""Largest integer a template may compute, in decimal digits (Python's own str limit)."""
MAX_STEPS = 100_000
"""Loop iterations plus calls (functions, methods, filters) in one render; a macro call
counts as ``MACRO_COST`` (it costs about that many loop iterations)."""
MACRO_COST = 10
MAX_SECONDS = 2.0
"""Wall-clock time of one render."""
MAX_JSON_INDENT = 32

_MAX_BITS = int(MAX_INT_DIGITS * 3.3219280948873626) + 1
EACH = "flowrun_budget_each"  # internal filters the instrumented tree calls
CONCAT = "flowrun_budget_concat"


class LimitExceeded(SecurityError):
    """A template went over one of the render limits."""


@dataclass
class Budget:
    """What is left of one render's allowance."""

    deadline: float
    steps: int = 0

    def tick(self, cost: int = 1) -> None:
        self.steps += cost
        if self.steps > MAX_STEPS:
            raise LimitExceeded(f"more than {MAX_STEPS:,} loop iterations and calls in one render")
        if time.monotonic() > self.deadline:
            raise LimitExceeded(f"rendering took longer than {MAX_SECONDS:g} s")


_current: ContextVar[Budget | None] = ContextVar("flowrun_template_budget", default=None)


@contextmanager
def budget() -> Iterator[Budget]:
    """Run a render under a fresh budget (a nested render shares the outer one)."""
    outer = _current.get()
    if outer is not None:
        yield outer
        return
    b = Budget(time.monotonic() + MAX_SECONDS)
    token = _current.set(b)
    try:
        yield b
    finally:
        _current.reset(token)


def tick(cost: int = 1) -> None:
    b = _current.get()
    if b is not None:
        b.tick(cost)


# --------------------------------------------------------------------------- size checks


def check_text(n: int, what: str = "a string") -> None:
    if n > MAX_TEXT:
        raise LimitExceeded(f"{what} longer than {MAX_TEXT:,} characters")


def check_items(n: int) -> None:
    if n > MAX_ITEMS:
        raise LimitExceeded(f"a list longer than {MAX_ITEMS:,} items")


def check_bits(bits: int) -> None:
    if bits > _MAX_BITS:
        raise LimitExceeded(f"an integer over {MAX_INT_DIGITS:,} digits")


def sized(value: Any) -> Any:
    """``value``, if it is within the limits."""
    if isinstance(value, str):
        check_text(len(value))
    elif isinstance(value, (list, tuple)):
        check_items(len(value))
    elif isinstance(value, int):
        check_bits(value.bit_length())
    return value


def _big_number(spec: str) -> bool:
    return any(len(d) > 7 and int(d) > MAX_TEXT for d in re.findall(r"\d+", spec))


_PERCENT = re.compile(r"%(?:\([^)]*\))?([-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d*))?)[hlL]?[a-zA-Z%]")


def check_percent(fmt: str, args: Any) -> None:
    """``fmt % args``: no width or precision over the text limit."""
    specs = _PERCENT.findall(fmt)
    if any(_big_number(s) for s in specs):
        raise LimitExceeded(f"a '%' width or precision over {MAX_TEXT:,}")
    if any("*" in s for s in specs):
        values = args if isinstance(args, tuple) else (args,)
        if any(isinstance(v, int) and abs(v) > MAX_TEXT for v in values):
            raise LimitExceeded(f"a '%' width or precision over {MAX_TEXT:,}")
    if isinstance(args, Mapping):  # '%(a)s%(a)s': any spec may repeat any value
        longest = max((len(v) for v in args.values() if isinstance(v, str)), default=0)
        size = len(specs) * longest
    else:
        values = args if isinstance(args, tuple) else (args,)
        size = sum(len(v) for v in values if isinstance(v, str))
    check_text(len(fmt) + size)


def check_format_spec(spec: str) -> None:
    if _big_number(spec):
        raise LimitExceeded(f"a format width or precision over {MAX_TEXT:,}")


class FormatterMixin:
    """``str.format`` fields: no width or precision over the limit, and a running total."""

    _total = 0

    def format_field(self, value: Any, format_spec: str) -> Any:
        check_format_spec(format_spec)
        out = super().format_field(value, format_spec)  # type: ignore[misc]
        self._total += len(out)
        check_text(self._total)
        return out


def _replace_size(s: str, old: str, new: str, count: int | None = None) -> int:
    n = s.count(old) if old else len(s) + 1
    if count is not None and 0 <= count < n:
        n = count
    return len(s) + n * (len(new) - len(old))


# --------------------------------------------------------------------------- operators


def check_binop(op: str, left: Any, right: Any) -> None:
    """Refuse ``left op right`` before it builds something over the limits."""
    if op == "*":
        for seq, n in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(n, int):
                size = len(seq) * max(n, 0)
                check_text(size) if isinstance(seq, str) else check_items(size)
        if isinstance(left, int) and isinstance(right, int):
            check_bits(left.bit_length() + right.bit_length())
    elif op == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            check_bits((abs(left).bit_length() - 1) * right)
    elif op == "+":
        if isinstance(left, str) and isinstance(right, str):
            check_text(len(left) + len(right))
        elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
            check_items(len(left) + len(right))
    elif op == "%" and isinstance(left, str):
        check_percent(left, right)


def concat(values: list[Any]) -> str:
    """``a ~ b ~ c``, refused past the text limit."""
    parts = [str(v) for v in values]
    check_text(sum(map(len, parts)))
    return "".join(parts)


class Counted:
    """A loop's iterable: each item taken costs one step (``len`` kept for ``loop.length``)."""

    __slots__ = ("_it", "_len")

    def __init__(self, value: Any):
        self._it = iter(value)
        try:
            self._len: int | None = len(value)
        except TypeError:
            self._len = None

    def __iter__(self) -> "Counted":
        return self

    def __next__(self) -> Any:
        item = next(self._it)
        tick()
        return item

    def __len__(self) -> int:
        if self._len is None:
            raise TypeError("no length")
        return self._len


class Instrument(NodeTransformer):
    """Rewrites a parsed template so loops count their iterations and ``~`` is bounded."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, EACH, [], [], None, None, lineno=node.iter.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        items = nodes.List(list(node.nodes), lineno=node.lineno)
        return nodes.Filter(items, CONCAT, [], [], None, None, lineno=node.lineno)


# --------------------------------------------------------------------------- calls


_WIDTH_METHODS = {"center", "ljust", "rjust", "zfill"}


def check_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Charge a call to the budget, and refuse a method call on a string or number that
    would build something too big; gives the (possibly materialized) arguments."""
    from jinja2.runtime import Macro

    tick(MACRO_COST if isinstance(obj, Macro) else 1)
    if not isinstance(obj, types.BuiltinMethodType):
        return args
    owner = getattr(obj, "__self__", None)
    if not isinstance(owner, (str, bytes, int, float)):
        return args
    values = list(args) + list(kwargs.values())
    if any(isinstance(v, int) and abs(v) > MAX_TEXT for v in values):
        raise LimitExceeded(f"{type(owner).__name__}.{obj.__name__}() with an argument over {MAX_TEXT:,}")
    name = obj.__name__
    if isinstance(owner, str):
        if name in _WIDTH_METHODS and args and isinstance(args[0], int):
            check_text(max(args[0], len(owner)))
        elif name == "expandtabs":
            size = args[0] if args else kwargs.get("tabsize", 8)
            if isinstance(size, int):
                check_text(len(owner) + owner.count("\t") * max(size, 0))
        elif name == "replace" and len(args) >= 2 and all(isinstance(a, str) for a in args[:2]):
            count = args[2] if len(args) > 2 else kwargs.get("count")
            check_text(_replace_size(owner, args[0], args[1], count))
        elif name == "join" and args:
            items = list(args[0])
            check_items(len(items))
            size = sum(len(i) for i in items if isinstance(i, str))
            check_text(size + len(owner) * max(len(items) - 1, 0))
            return (items,) + args[1:]
    return args


def lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    from jinja2.utils import generate_lorem_ipsum

    if all(isinstance(v, int) for v in (n, max)):
        check_text(n * max * 12, "lipsum text")
    return generate_lorem_ipsum(n, html, min, max)


# --------------------------------------------------------------------------- filters


def _center(value: Any, width: int = 80) -> None:
    if isinstance(width, int):
        check_text(max(width, len(str(value))))


def _indent(s: Any, width: Any = 4, *_: Any, **__: Any) -> None:
    pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    text = str(s)
    check_text(len(text) + (text.count("\n") + 1) * max(pad, 0))


def _wordwrap(s: Any, width: int = 79, break_long_words: bool = True,
              wrapstring: str | None = None, *_: Any, **__: Any) -> None:
    text = str(s)
    sep = wrapstring if wrapstring is not None else "\n"
    if isinstance(width, int) and isinstance(sep, str):
        check_text(len(text) + (len(text) // max(width, 1) + 1) * len(sep))


def _join(value: Any, d: Any = "", *_: Any, **__: Any) -> None:
    if hasattr(value, "__len__"):
        check_items(len(value))
        check_text(len(value) * len(str(d)))


def _replace(s: Any, old: Any, new: Any, count: Any = None) -> None:
    check_text(_replace_size(str(s), str(old), str(new), count if isinstance(count, int) else None))


def _batch(value: Any, linecount: Any, fill_with: Any = None) -> None:
    if isinstance(linecount, int) and fill_with is not None:
        check_items(linecount)


def _slice(value: Any, slices: Any, fill_with: Any = None) -> None:
    if isinstance(slices, int):
        check_items(slices)


def _format(value: Any, *args: Any, **kwargs: Any) -> None:
    check_percent(str(value), kwargs or args)


def _tojson(value: Any, indent: Any = None) -> None:
    size = len(indent) if isinstance(indent, str) else indent if isinstance(indent, int) else 0
    if size > MAX_JSON_INDENT:
        raise LimitExceeded(f"a tojson indent over {MAX_JSON_INDENT}")


_PRECHECKS: dict[str, Callable[..., None]] = {
    "center": _center, "indent": _indent, "wordwrap": _wordwrap, "join": _join,
    "replace": _replace, "batch": _batch, "slice": _slice, "format": _format, "tojson": _tojson,
}


def _sum(env: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
    """Jinja's ``sum``, linear (and bounded) when it adds lists."""
    if not isinstance(start, (list, tuple)):
        return _JINJA_SUM(env, iterable, attribute, start)
    if attribute is not None:
        from jinja2.filters import make_attrgetter

        iterable = map(make_attrgetter(env, attribute), iterable)
    out = list(start)
    for item in iterable:
        tick()
        out.extend(item)
        check_items(len(out))
    return out


def _jinja_sum() -> Callable[..., Any]:
    from jinja2.filters import FILTERS

    return FILTERS["sum"]


_JINJA_SUM = _jinja_sum()


def bounded(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that costs one step, checks its arguments and sizes its result."""
    pre = _PRECHECKS.get(name)
    if name == "sum":
        func = update_wrapper(lambda *a, **k: _sum(*a, **k), func)

    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tick()
        if pre is not None:
            pre(*args[skip:], **kwargs)
        return sized(func(*args, **kwargs))

    return update_wrapper(wrapper, func)  # keeps jinja_pass_arg (pass_context & co)
