"""The flow language of the workspace tools: ``workspace:`` on a step, and the ``shell``,
``apply_patch`` and ``custom`` tool kinds.

Part of :mod:`flowrun.spec` (which imports these into its unions); import them from there.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import BeforeValidator, Field, field_validator, model_validator

from .spec import Duration, StrictModel


class WorkspaceSpec(StrictModel):
    """The directory the step's workspace tools (shell, apply_patch) may read and change."""

    dir: str | None = None
    """A directory to work on; a template (``{{ inputs.repo }}``), relative paths from where
    flowrun runs, then from the flow file. Unset: a fresh, empty directory in the run directory."""
    copy_: bool = Field(True, alias="copy")
    """Copy ``dir`` into the run directory first and work on the copy, leaving ``dir``
    untouched (``steps.X.diff`` holds the change to apply). ``false`` changes ``dir`` itself."""
    ignore: list[str] | None = None
    """Glob patterns of paths left out of ``steps.X.diff`` (default: .git, __pycache__,
    .pytest_cache, *.pyc, .mypy_cache, .ruff_cache)."""


def _workspace_shorthand(value: Any) -> Any:
    """``workspace: PATH`` is short for ``workspace: {dir: PATH}``."""
    return {"dir": value} if isinstance(value, str) else value


WorkspaceDecl = Annotated[
    WorkspaceSpec,
    BeforeValidator(_workspace_shorthand, json_schema_input_type=Union[str, WorkspaceSpec]),
]


class ShellPolicy(StrictModel):
    """What the model's shell commands may do. Commands run in the step's workspace."""

    allow: list[Union[str, Annotated[list[str], Field(min_length=1)]]] = Field(default_factory=list)
    """Argv prefixes that may run, e.g. ``[pytest, "git diff", [python, -m, pytest]]`` (a
    string is split like a shell would). ``"*"`` allows every command. Anything else is
    refused back to the model (or asked about, with ``approve: ask``)."""
    approve: Literal["ask", "refuse"] = "refuse"
    """Commands outside ``allow``: ``ask`` the person at the terminal (refused when the run
    is not interactive), or ``refuse``."""
    shell: bool = False
    """Run each command through ``/bin/sh -c`` (pipes, ``&&``, redirection). Every simple
    command in it must still match ``allow``; ``$(...)`` and backticks are refused.
    Default: the command is split into an argv and run directly, no shell."""
    timeout: Duration = 60.0
    """Seconds one command may run; then its whole process group is killed."""
    max_output: int = Field(20_000, ge=100, le=1_000_000)
    """Characters of stdout and of stderr kept per command (the middle is cut)."""
    env: dict[str, str] = Field(default_factory=dict)
    """The commands' environment: nothing else is passed (``HOME`` and ``TMPDIR`` point
    at a private temp directory unless given). Values are templates, e.g.
    ``PATH: "{{ env.PATH }}"``; secrets used here are masked in the output. Programs are
    looked up on this PATH (default /usr/local/bin:/usr/bin:/bin)."""
    api: Literal["shell", "local_shell"] = "shell"
    """The tool type sent to the model: ``shell`` (GPT-5.1 and later) or ``local_shell``
    (codex-mini)."""

    @field_validator("allow")
    @classmethod
    def _prefixes(cls, value: list[Any]) -> list[Any]:
        import shlex

        for entry in value:
            if isinstance(entry, str):
                try:
                    words = shlex.split(entry)
                except ValueError as exc:
                    raise ValueError(f"allow entry {entry!r}: {exc}") from None
                if not words:
                    raise ValueError("an allow entry is empty")
        return value


class ShellTool(StrictModel):
    """Shell commands the model asks for, run by flowrun in the step's workspace."""

    shell: ShellPolicy
    """The policy: allowed argv prefixes, shell interpretation, timeout, output cap, env."""


class ApplyPatchOptions(StrictModel):
    """Options of the apply_patch tool (none yet)."""


class ApplyPatchTool(StrictModel):
    """File edits the model sends as V4A diffs, applied by flowrun inside the workspace."""

    apply_patch: ApplyPatchOptions | None = None
    """Options; empty for defaults."""


class Grammar(StrictModel):
    """A grammar the model's input to a custom tool must follow."""

    syntax: Literal["lark", "regex"]
    """``lark`` (a Lark grammar with a ``start`` rule) or ``regex`` (the whole input matches)."""
    definition: str = Field(min_length=1)
    """The grammar text."""

    @model_validator(mode="after")
    def _compiles(self) -> Grammar:
        if self.syntax == "regex":
            try:
                re.compile(self.definition)
            except re.error as exc:
                raise ValueError(f"grammar: not a valid regular expression: {exc}") from None
        return self


class CustomOptions(StrictModel):
    """A custom tool: the model sends free-form text, a function or program gets it."""

    python: str | None = Field(None, json_schema_extra={"pattern": r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"})
    """``module:function`` called with the model's text as its one argument; its return
    value (text, or JSON) goes back to the model."""
    command: list[str] | None = Field(None, min_length=1)
    """An argv list (never a shell string) run with the model's text on stdin; its stdout
    goes back to the model. Relative paths from the flow file's directory."""
    description: str | None = None
    """What the tool does and what text it takes, for the model."""
    grammar: Grammar | None = None
    """Constrain the model's text with a grammar (sent as the tool's format)."""
    timeout: Duration | None = None
    """Seconds one call may take."""

    @model_validator(mode="after")
    def _one_target(self) -> CustomOptions:
        if (self.python is None) == (self.command is None):
            raise ValueError("a custom tool needs exactly one of python (module:function) or command (argv)")
        if self.python is not None and not re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", self.python):
            raise ValueError(f"{self.python!r} is not module:function (for example tools.text:count)")
        return self


class CustomTool(StrictModel):
    """A tool whose input is free-form text (optionally constrained by a grammar)."""

    custom: CustomOptions
    """What runs the tool and the grammar of its input."""
