"""V4A diffs, the format of the ``apply_patch`` tool's ``create_file`` / ``update_file``
operations, applied to text.

A ``create_file`` diff is the new file's lines, each prefixed with ``+``.

An ``update_file`` diff is a list of hunks. A line ``@@ TEXT`` starts a hunk and, when TEXT
is given, moves to the first line after the current position that equals TEXT (its
surrounding whitespace ignored) - the model names the function or class it edits. Inside a
hunk, `` `` (space) lines are context, ``-`` lines are removed and ``+`` lines added; an
empty line counts as an empty context line. The hunk's context and removed lines must
appear, in order, in the file after the current position: matched exactly first, then
ignoring trailing whitespace, then ignoring all surrounding whitespace. ``*** End of File``
ends a hunk that must match at the end of the file. An optional first line
``*** Move to: PATH`` asks for the file to be renamed (the caller checks PATH).

Every failure raises :class:`DiffError` with the exact reason (the hunk, the line that was
not found), so the model can send a corrected diff.
"""

from __future__ import annotations

from dataclasses import dataclass, field

END_OF_FILE = "*** End of File"
MOVE_TO = "*** Move to:"


class DiffError(ValueError):
    """The diff does not parse, or does not apply to the file; the message says why."""


@dataclass
class Hunk:
    anchor: str | None
    ops: list[tuple[str, str]] = field(default_factory=list)  # (" " | "-" | "+", text)
    eof: bool = False
    line: int = 0  # 1-based line of the diff where the hunk starts


def _lines(diff: str) -> list[str]:
    lines = diff.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def create_text(diff: str) -> str:
    """The content of a new file from a ``create_file`` diff."""
    out = []
    for n, line in enumerate(_lines(diff), 1):
        if not line.startswith("+"):
            raise DiffError(f"line {n} of the diff: every line of a new file starts with '+' "
                            f"(got {line[:60]!r})")
        out.append(line[1:])
    return "\n".join(out) + ("\n" if out else "")


def parse_update(diff: str) -> tuple[list[Hunk], str | None]:
    """The hunks of an ``update_file`` diff, and the ``*** Move to:`` path if any."""
    lines = _lines(diff)
    move_to = None
    start = 0
    if lines and lines[0].startswith(MOVE_TO):
        move_to = lines[0][len(MOVE_TO):].strip()
        start = 1
    hunks: list[Hunk] = []
    current: Hunk | None = None
    for n, line in enumerate(lines[start:], start + 1):
        if line.startswith("@@"):
            anchor = line[2:].strip()
            current = Hunk(anchor or None, line=n)
            hunks.append(current)
            continue
        if line.strip() == END_OF_FILE:
            if current is None:
                raise DiffError(f"line {n} of the diff: {END_OF_FILE} before any change")
            current.eof = True
            current = None
            continue
        if current is None:
            current = Hunk(None, line=n)
            hunks.append(current)
        elif current.eof:
            raise DiffError(f"line {n} of the diff: nothing may follow {END_OF_FILE} in a hunk")
        kind, text = (line[:1], line[1:]) if line else (" ", "")
        if kind in (" ", "-", "+"):
            current.ops.append((kind, text))
        else:
            raise DiffError(f"line {n} of the diff: expected a line starting with ' ' (context), "
                            f"'-' (remove), '+' (add) or '@@' (a new hunk); got {line[:60]!r}")
    if not any(k != " " for h in hunks for k, _ in h.ops):
        raise DiffError("the diff changes nothing: give hunks with '-' and '+' lines")
    return hunks, move_to


def _find(lines: list[str], seq: list[str], start: int, eof: bool) -> int:
    """Index of ``seq`` in ``lines`` at or after ``start`` (-1 when absent)."""
    if not seq:
        return len(lines) if eof else start
    norms = (lambda s: s, str.rstrip, str.strip)
    for norm in norms:
        want = [norm(s) for s in seq]
        if eof:
            at = len(lines) - len(seq)
            if at >= start and [norm(s) for s in lines[at:]] == want:
                return at
            continue
        for i in range(start, len(lines) - len(seq) + 1):
            if [norm(s) for s in lines[i:i + len(seq)]] == want:
                return i
    return -1


def apply_update(text: str, diff: str) -> tuple[str, str | None]:
    """``text`` with the ``update_file`` diff applied, and the move-to path if any."""
    hunks, move_to = parse_update(diff)
    crlf = "\r\n" in text
    body = text.replace("\r\n", "\n")
    trailing_newline = body.endswith("\n")
    lines = body.split("\n")
    if trailing_newline:
        lines.pop()
    pos = 0
    for number, hunk in enumerate(hunks, 1):
        if hunk.anchor is not None:
            found = next((i for i in range(pos, len(lines)) if lines[i].strip() == hunk.anchor.strip()), -1)
            if found < 0:
                raise DiffError(f"hunk {number} (diff line {hunk.line}): the line after @@, "
                                f"{hunk.anchor!r}, is not in the file after line {pos}")
            pos = found + 1
        old = [t for k, t in hunk.ops if k != "+"]
        at = _find(lines, old, pos, hunk.eof)
        if at < 0:
            shown = "\n".join(old[:6]) + ("\n..." if len(old) > 6 else "")
            where = "at the end of the file" if hunk.eof else f"after line {pos}"
            raise DiffError(f"hunk {number} (diff line {hunk.line}): these lines are not in the file "
                            f"{where}:\n{shown}\nsend the diff again with context lines copied "
                            "exactly from the current file")
        new, i = [], at
        for kind, text in hunk.ops:  # context keeps the file's own line (fuzz may differ)
            if kind == " ":
                new.append(lines[i])
            if kind != "+":
                i += 1
            else:
                new.append(text)
        lines[at:at + len(old)] = new
        pos = at + len(new)
    out = "\n".join(lines) + ("\n" if trailing_newline or not lines else "")
    if out == "\n" and not lines:
        out = ""
    return (out.replace("\n", "\r\n") if crlf else out), move_to
