"""Guards around reading YAML text: characters YAML forbids, lone surrogates, nesting depth
and alias expansion ("billion laughs"). Each failure knows its place (1-based line, column).

The loader (:func:`flowrun.loader.parse_yaml`) turns these into :class:`SpecError` problems;
flow files and ``--inputs`` files share them.
"""

from __future__ import annotations

import re
from typing import Any

from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.scanner import RoundTripScanner

MAX_DEPTH = 100
"""Lists and mappings nested deeper than this are refused."""
MAX_ALIAS_VALUES = 10_000
"""Values that aliases (``*name``) may copy into one document, all aliases together."""
MAX_ALIAS_DEPTH = 5
"""Aliases to values that themselves hold aliases, nested at most this deep."""

# what the YAML spec allows in a stream (ruamel's reader checks the same set, without lines)
_FORBIDDEN = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")  # line breaks as ruamel counts them
_NAMES = {0x00: "NUL", 0x07: "BEL", 0x08: "backspace", 0x0B: "vertical tab", 0x0C: "form feed",
          0x1B: "ESC", 0x7F: "DEL", 0xFFFE: "a noncharacter", 0xFFFF: "a noncharacter"}

BAD_TEXT_HINT = "the text must be valid Unicode saved as UTF-8; re-save or re-type it"


class GuardError(Exception):
    """A guard refused the text; ``line`` and ``column`` are 1-based."""

    def __init__(self, message: str, line: int, column: int, hint: str) -> None:
        super().__init__(message)
        self.message, self.line, self.column, self.hint = message, line, column, hint


def line_col(text: str, index: int) -> tuple[int, int]:
    """The 1-based line and column of ``text[index]``."""
    line, start = 1, 0
    for m in _BREAK.finditer(text, 0, index):
        line, start = line + 1, m.end()
    return line, index - start + 1


def check_characters(text: str) -> None:
    """Raise :class:`GuardError` at the first character YAML does not allow."""
    m = _FORBIDDEN.search(text)
    if m is None:
        return
    ch = m.group()
    line, col = line_col(text, m.start())
    code = f"U+{ord(ch):04X}"
    if ch == "\x00":
        raise GuardError("binary data (NUL byte) in a text file", line, col,
                         "a YAML file is text saved as UTF-8")
    if _SURROGATE.match(ch):
        raise GuardError(f"not valid Unicode: a lone surrogate ({code})", line, col, BAD_TEXT_HINT)
    name = _NAMES.get(ord(ch))
    kind = "character" if ord(ch) > 0x9F else "control character"
    raise GuardError(
        f"{kind} {code}{f' ({name})' if name else ''} is not allowed in YAML text",
        line, col,
        f'remove it; to put it in a value, write it as an escape in double quotes, e.g. "\\u{ord(ch):04x}"',
    )


def lone_surrogate(text: str) -> str | None:
    """``U+XXXX`` of the first surrogate in ``text`` that is not half of a pair, else None."""
    if not _SURROGATE.search(text):
        return None
    i = 0
    while i < len(text):
        c = ord(text[i])
        if 0xD800 <= c <= 0xDBFF and i + 1 < len(text) and 0xDC00 <= ord(text[i + 1]) <= 0xDFFF:
            i += 2
            continue
        if 0xD800 <= c <= 0xDFFF:
            return f"U+{c:04X}"
        i += 1
    return None


def join_surrogate_pairs(text: str) -> str:
    """``"\\ud83d\\ude00"`` escapes (JSON style) as the one character they stand for."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def first_bad_text(value: Any, path: tuple[Any, ...] = ()) -> tuple[tuple[Any, ...], str] | None:
    """The key path and code point of the first string (key or value) with a lone surrogate."""
    if isinstance(value, str):
        code = lone_surrogate(value)
        return (path, code) if code else None
    if isinstance(value, dict):
        for k, v in value.items():
            found = first_bad_text(k, path + (k,)) or first_bad_text(v, path + (k,))
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = first_bad_text(v, path + (i,))
            if found:
                return found
    return None


class LimitExceeded(MarkedYAMLError):
    """Nesting or alias expansion past the limits; ``problem_mark`` is where."""

    def __init__(self, problem: str, mark: Any, hint: str) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.hint = hint


_DEEP = "nested too deeply: more than {} levels of lists and mappings"
_DEEP_HINT = "flatten the structure; a flow needs only a few levels"


class BoundedScanner(RoundTripScanner):
    """ruamel's round-trip scanner, refusing ``[`` and ``{`` nested past :data:`MAX_DEPTH`.

    Without a bound, each token costs a pass over every open bracket (the scanner keeps a
    possible key per level), so thousands of ``[`` take minutes."""

    def fetch_flow_collection_start(self, TokenClass: Any, to_push: str) -> None:
        if len(self.flow_context) >= MAX_DEPTH:
            raise LimitExceeded(_DEEP.format(MAX_DEPTH), self.reader.get_mark(), _DEEP_HINT)
        super().fetch_flow_collection_start(TokenClass, to_push)


class BoundedComposer(Composer):
    """ruamel's composer, refusing deep nesting and aliases that expand too much.

    Each node's expanded size (aliases counted at full size) and alias depth are tallied
    bottom-up as it is composed, so a bomb is stopped at the alias that crosses a limit,
    before anything is expanded."""

    def compose_document(self) -> Any:
        self._open: list[list[int]] = [[0, 0]]  # per open node: [size, alias depth]
        self._stats: dict[int, tuple[int, int]] = {}
        self._aliased = 0
        return super().compose_document()

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent):
            node = super().compose_node(parent, index)
            stats = self._stats.get(id(node))
            if stats is None:
                raise LimitExceeded(
                    f"alias *{event.anchor} is used inside the value it names (a loop)",
                    event.start_mark, "an alias may only refer to a value defined before it")
            size, depth = stats[0], stats[1] + 1
            self._aliased += size
            if depth > MAX_ALIAS_DEPTH:
                raise LimitExceeded(
                    f"alias *{event.anchor} nests aliases {depth} deep (limit {MAX_ALIAS_DEPTH})",
                    event.start_mark, _ALIAS_HINT)
            if self._aliased > MAX_ALIAS_VALUES:
                raise LimitExceeded(
                    f"alias *{event.anchor} makes the aliases copy more than "
                    f"{MAX_ALIAS_VALUES} values", event.start_mark, _ALIAS_HINT)
            self._add(size, depth)
            return node
        if len(self._open) > MAX_DEPTH:
            raise LimitExceeded(_DEEP.format(MAX_DEPTH), event.start_mark, _DEEP_HINT)
        self._open.append([1, 0])
        node = super().compose_node(parent, index)
        size, depth = self._open.pop()
        self._stats[id(node)] = (size, depth)
        self._add(size, depth)
        return node

    def _add(self, size: int, depth: int) -> None:
        top = self._open[-1]
        top[0] += size
        top[1] = max(top[1], depth)


_ALIAS_HINT = "aliases (*name) copy the value they name; write the values out, or use fewer aliases"


class PositionedConstructor(RoundTripConstructor):
    """ruamel's round-trip constructor; a plain error while building a value gets its place."""

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except MarkedYAMLError:
            raise
        except RecursionError:
            raise ConstructorError(problem="nested too deeply", problem_mark=node.start_mark) from None
        except Exception as exc:  # e.g. an integer of 5000 digits
            raise ConstructorError(problem=f"cannot read this value: {exc}",
                                   problem_mark=node.start_mark) from None
