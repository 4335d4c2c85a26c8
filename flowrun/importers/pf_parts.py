"""Pieces of a Prompt flow conversion: Jinja literals, role blocks of a chat template,
Python node files without the ``promptflow`` package, and the conversion report."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROLE_LINE = re.compile(r"^[ \t]*#[ \t]*(system|user|assistant|function|tool)[ \t]*:[ \t]*$",
                       re.I | re.M)
_PF_IMPORT = re.compile(r"^(?P<indent>[ \t]*)from[ \t]+promptflow(?:\.[\w.]+)?[ \t]+import[ \t]+",
                        re.M)
_PF_MODULE = re.compile(r"^(?P<indent>[ \t]*)import[ \t]+promptflow(?:\.[\w.]+)?[ \t]*$", re.M)
COMPAT = "_promptflow_compat"

COMPAT_SOURCE = '''"""Stand-ins for the ``promptflow`` names the converted Python files import, written by
``flowrun import promptflow``: the flow runs without the promptflow package."""


def tool(func=None, **_options):
    """``@tool`` and ``@tool(...)``: the function itself."""
    return func if callable(func) else (lambda f: f)


class _StandIn:
    """A placeholder for a promptflow class (connections, Image, ...): holds what it is given."""

    def __init__(self, *args, **kwargs):
        self.args = args
        self.__dict__.update(kwargs)


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    cls = type(name, (_StandIn,), {})
    globals()[name] = cls
    return cls


def not_converted(node, reason):
    """The step of a node that could not be converted: fails, saying why."""
    raise RuntimeError(f"Prompt flow node {node!r} was not converted ({reason}); "
                       "see IMPORT-REPORT.md")
'''


@dataclass
class Loss:
    """Something of the source flow that did not carry over (or only partly)."""

    line: int | None
    node: str | None
    what: str

    def format(self, file: str) -> str:
        where = f"{file}:{self.line}" if self.line else file
        return f"{where}: {self.node + ': ' if self.node else ''}{self.what}"


@dataclass
class Report:
    """What ``flowrun import promptflow`` did: steps made, what was lost, validation."""

    source: str
    flow_file: str
    steps: dict[str, str] = field(default_factory=dict)  # step id -> "llm -> model step"
    lost: list[Loss] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def clean(self) -> bool:
        return self.valid and not self.lost

    def lose(self, line: int | None, node: str | None, what: str) -> None:
        self.lost.append(Loss(line, node, what))

    def format(self) -> str:
        src = f"{self.source}/flow.dag.yaml"
        out = [f"# Imported {src}", "", f"Flow: {self.flow_file} "
               f"({'valid' if self.valid else 'INVALID'}; "
               f"{'converted cleanly' if self.clean else f'{len(self.lost)} item(s) not converted'})",
               "", "## Steps"]
        out += [f"- {sid}: {how}" for sid, how in self.steps.items()]
        out += ["", "## Not converted (or only in part)"]
        out += [f"- {loss.format(src)}" for loss in self.lost] or ["- nothing"]
        if self.notes:
            out += ["", "## Notes"] + [f"- {n}" for n in self.notes]
        if self.problems:
            out += ["", "## Validation problems"] + [f"- {p}" for p in self.problems]
        return "\n".join(out) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "flow": self.flow_file, "valid": self.valid,
                "clean": self.clean, "steps": self.steps,
                "lost": [{"line": x.line, "node": x.node, "what": x.what} for x in self.lost],
                "notes": self.notes, "problems": self.problems}


def jinja_literal(value: Any) -> str:
    """``value`` as a Jinja expression."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(jinja_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {jinja_literal(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value))


def template_names(text: str) -> set[str] | None:
    """The variables a Jinja template reads, or None if it does not parse."""
    from jinja2 import Environment, meta
    from jinja2.exceptions import TemplateSyntaxError

    try:
        return set(meta.find_undeclared_variables(Environment().parse(text)))
    except TemplateSyntaxError:
        return None


def split_roles(text: str) -> tuple[str | None, str, str | None]:
    """A chat template's ``# system:`` block (instructions) and the rest (input), plus a
    note of what was lost. Role markers inside Jinja blocks, or turns past one system and
    one user block, stay in the input as text."""
    marks = list(ROLE_LINE.finditer(text))
    if not marks:
        return None, text, None
    blocks = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        blocks.append((m.group(1).lower(), text[m.end():end].strip("\n")))
    head = text[: marks[0].start()].strip()
    roles = [r for r, _ in blocks]
    if roles in (["user"], ["system", "user"]) and all(template_names(b) is not None for _, b in blocks):
        system = blocks[0][1] if roles[0] == "system" else None
        user = blocks[-1][1]
        if head:
            user = head + "\n" + user if system is None else user
            system = head + "\n" + system if system is not None else None
        return system, user, None
    if roles[0] == "system" and len(roles) > 1 and "system" not in roles[1:]:
        system = blocks[0][1]
        rest = text[marks[1].start():]
        if template_names(system) is not None and template_names(rest) is not None:
            return (head + "\n" + system if head else system), rest, (
                f"chat turns {', '.join(roles[1:])} kept as text (with their '# role:' lines) "
                "in one input: a flowrun step sends one user input")
    if roles == ["system"] and template_names(blocks[0][1]) is not None:
        return None, (head + "\n" if head else "") + blocks[0][1], (
            "the template has only a '# system:' block; it is sent as the input")
    return None, text, ("role markers could not be split from the template's Jinja blocks; "
                        "the whole template is the input, '# role:' lines included")


def tool_function(source: str) -> tuple[str | None, str | None]:
    """The ``@tool`` function of a Python node file (or its only function), or why not."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return None, f"Python syntax error at line {exc.lineno}: {exc.msg}"
    funcs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for fn in funcs:
        for dec in fn.decorator_list:
            target = dec.func if isinstance(dec, ast.Call) else dec
            name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
            if name == "tool":
                return fn.name, None
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    if len(funcs) == 1:
        return funcs[0].name, None
    if classes:
        return None, "a class-based tool (ToolProvider): call one of its methods from a function"
    return None, "no @tool function in the file"


def without_promptflow(source: str) -> tuple[str, bool]:
    """``source`` with its ``promptflow`` imports pointed at the stand-in module."""
    out = _PF_IMPORT.sub(lambda m: f"{m.group('indent')}from {COMPAT} import ", source)
    out = _PF_MODULE.sub(lambda m: f"{m.group('indent')}import {COMPAT} as promptflow", out)
    return out, out != source


def module_name(rel: Path) -> str:
    """The import name of a copied node file (``tools/x.py`` -> ``tools.x``)."""
    parts = list(rel.with_suffix("").parts)
    return ".".join(re.sub(r"\W", "_", p) for p in parts)
