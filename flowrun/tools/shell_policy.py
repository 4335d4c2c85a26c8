"""The shell policy: which of the model's commands may run, and as what argv.

A command is checked before anything starts:

* without ``shell: true`` it is split into words as a POSIX shell would (``shlex``) and run
  directly; shell syntax (``|``, ``;``, ``&&``, ``>``, ...) is refused, since nothing would
  interpret it;
* with ``shell: true`` it runs as ``/bin/sh -c COMMAND``; each simple command in it (split
  at ``;``, ``&``, ``&&``, ``||``, ``|``, parentheses and newlines) must match ``allow``,
  and command substitution (``$(...)``, backticks, ``<(...)``) is refused outright;
* a command matches ``allow`` when its words start with one of the prefixes, word for
  word (``pytest`` allows ``pytest -q tests/``, not ``/tmp/x/pytest``; ``[git, diff]``
  allows ``git diff HEAD``, not ``git push``). ``"*"`` allows everything.
"""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
_SEPARATORS = {";", "&", "&&", "||", "|", "(", ")", ";;", "|&"}
_SUBSTITUTION = ("$(", "`", "<(", ">(")


class Refused(Exception):
    """The command may not run; the message (for the model) says why."""


@dataclass
class Planned:
    """A command that passed the policy: the argv to run (program not yet resolved)."""

    argv: list[str]
    shown: str  # the command as the model wrote it


def prefixes(allow: list[Any]) -> list[list[str]] | None:
    """The allowed argv prefixes; None means everything is allowed (``"*"``)."""
    out = []
    for entry in allow:
        if entry == "*":
            return None
        out.append(shlex.split(entry) if isinstance(entry, str) else list(entry))
    return out


def matches(words: list[str], allowed: list[list[str]] | None) -> bool:
    if allowed is None:
        return True
    return any(words[: len(p)] == p for p in allowed if p)


def _describe(allowed: list[list[str]] | None) -> str:
    if not allowed:
        return "no commands are allowed"
    return "allowed: " + ", ".join(shlex.join(p) for p in allowed)


def _tokens(command: str) -> list[str]:
    lexer = shlex.shlex(command.replace("\n", " ; "), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError as exc:
        raise Refused(f"cannot parse the command: {exc}") from None


def simple_commands(command: str) -> list[list[str]]:
    """The simple commands of a shell command line (see the module docstring)."""
    out: list[list[str]] = [[]]
    for tok in _tokens(command):
        if tok in _SEPARATORS:
            out.append([])
        else:
            out[-1].append(tok)
    return [c for c in out if c]


def plan(command: str | list[str], policy: Any, allowed: list[list[str]] | None) -> Planned:
    """Check ``command`` against the policy; the argv to run, or :class:`Refused`."""
    if isinstance(command, list):  # local_shell: already an argv
        words = [str(w) for w in command]
        if not words:
            raise Refused("the command is empty")
        shown = shlex.join(words)
        if not matches(words, allowed):
            raise Refused(f"{shown!r} is not allowed by this step's shell policy ({_describe(allowed)})")
        return Planned(words, shown)
    if not command.strip():
        raise Refused("the command is empty")
    if policy.shell:
        if allowed is not None:
            for marker in _SUBSTITUTION:
                if marker in command:
                    raise Refused(f"command substitution ({marker}) is not allowed by the shell policy")
            parts = simple_commands(command)
            if not parts:
                raise Refused("the command is empty")
            for words in parts:
                if not matches(words, allowed):
                    raise Refused(f"{shlex.join(words)!r} is not allowed by this step's shell policy "
                                  f"({_describe(allowed)})")
        return Planned(["/bin/sh", "-c", command], command)
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise Refused(f"cannot parse the command: {exc}") from None
    operators = [t for t in _tokens(command) if t and all(c in "();<>|&" for c in t)]
    if operators:
        raise Refused(f"the command uses shell syntax ({operators[0]}), but this step runs commands "
                      "without a shell; send one plain command (program and arguments)")
    if not words:
        raise Refused("the command is empty")
    if not matches(words, allowed):
        raise Refused(f"{command!r} is not allowed by this step's shell policy ({_describe(allowed)})")
    return Planned(words, command)


def resolve_program(argv: list[str], path: str, cwd: Path) -> list[str]:
    """``argv`` with its program made absolute: a name from ``path``, a path with a ``/``
    from ``cwd``. Raises :class:`Refused` when there is no such program."""
    program = argv[0]
    if "/" in program:
        full = Path(program) if program.startswith("/") else cwd / program
        if not full.is_file():
            raise Refused(f"no such program: {program}")
        return [str(full), *argv[1:]]
    found = shutil.which(program, path=path)
    if found is None:
        raise Refused(f"{program}: command not found (PATH={path})")
    return [found, *argv[1:]]
