"""What a step executor gets: the run it belongs to, its step, and template rendering."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .hooks import RunHooks
from .plan import Plan
from .results import StepOutcome, StepResult
from .secrets import EnvView, Redactor, SecretsView
from .spec import ModelParams, RetryPolicy, Step
from .store import RunStore
from .templating import evaluate, render, render_deep

DEFAULT_MODEL = "gpt-4.1"
DEFAULT_MAX_TOOL_TURNS = 10


@dataclass
class RunContext:
    """State shared by every step of one run (and its sub-flows)."""

    plan: Plan
    client: Any  # client.ResponsesClient
    store: RunStore
    redactor: Redactor
    inputs: dict[str, Any]
    hooks: RunHooks = field(default_factory=RunHooks)
    interactive: bool = False
    slots: asyncio.Semaphore | None = None
    outcomes: dict[str, StepOutcome] = field(default_factory=dict)
    steps_view: dict[str, Any] = field(default_factory=dict)
    secrets: SecretsView | None = None
    env: EnvView | None = None
    environ: Any = None  # where secrets and env come from (default: os.environ)
    cwd: Path = field(default_factory=Path.cwd)
    # one lock for interactive prompts, so two steps never ask at once
    prompt_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # cleanups for the end of the run (deleting a vector store, ...), newest first
    finalizers: list[Any] = field(default_factory=list)
    # the step cache (flowrun.cache.RunCache); None: no step is cached
    cache: Any = None

    def __post_init__(self) -> None:
        if self.secrets is None:
            self.secrets = SecretsView(self.redactor, self.environ)
        if self.env is None:
            self.env = EnvView(self.environ, redactor=self.redactor, declared=self.plan.flow.secrets)

    def at_end(self, cleanup: Any) -> None:
        """Run ``await cleanup()`` when the run ends, whatever its status."""
        self.finalizers.append(cleanup)

    async def run_finalizers(self) -> None:
        """The cleanups, newest first; a failing one becomes a notice, never an error."""
        while self.finalizers:
            cleanup = self.finalizers.pop()
            try:
                await cleanup()
            except Exception as exc:
                self.hooks.on_notice("run", self.redactor.text(f"cleanup failed: {exc}"))

    def template_context(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        ctx = {
            "inputs": self.inputs,
            "steps": self.steps_view,
            "secrets": self.secrets,
            "env": self.env,
        }
        if extra:
            ctx.update(extra)
        return ctx


@dataclass
class StepContext:
    """One run of one step (one item of a ``for_each``)."""

    run: RunContext
    step_id: str
    step: Step
    result: StepResult
    loop: dict[str, Any] = field(default_factory=dict)
    # functions the model may call in this step, by name (filled by tool builders)
    functions: dict[str, Any] = field(default_factory=dict)
    # per-step scratch space for tool kinds (uploaded file ids, containers, ...)
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Unique name of this run of the step: ``id`` or ``id.INDEX``."""
        return self.step_id if "index" not in self.loop else f"{self.step_id}.{self.loop['index']}"

    @property
    def flow(self) -> Any:
        return self.run.plan.flow

    @property
    def base_dir(self) -> Path:
        return self.run.plan.base_dir

    def param(self, name: str) -> Any:
        """A model parameter: the step's own value, else the flow's default."""
        value = getattr(self.step, name, None)
        if value is None:
            value = getattr(self.flow.defaults, name, None)
        return value

    @property
    def retries(self) -> RetryPolicy | None:
        return self.param("retries")

    @property
    def model(self) -> str:
        return self.render(self.param("model") or DEFAULT_MODEL)

    @property
    def max_tool_turns(self) -> int:
        return self.param("max_tool_turns") or DEFAULT_MAX_TOOL_TURNS

    def context(self) -> dict[str, Any]:
        return self.run.template_context(self.loop)

    def render(self, value: Any) -> Any:
        """Text for a template string; other values unchanged."""
        return render(value, self.context(), self.run.plan.file) if isinstance(value, str) else value

    def evaluate(self, value: Any) -> Any:
        return evaluate(value, self.context(), self.run.plan.file)

    def render_deep(self, value: Any) -> Any:
        return render_deep(value, self.context(), self.run.plan.file)

    def save_response(self, response: dict[str, Any]) -> None:
        self.run.store.save_response(self.key, response)

    def notice(self, message: str) -> None:
        """Tell the user something worth keeping (secrets masked)."""
        self.run.hooks.on_notice(self.key, self.run.redactor.text(message))

    def status(self, status: str, detail: str | None = None) -> None:
        if detail:
            detail = self.run.redactor.text(detail)
        self.run.hooks.on_step_status(self.key, status, detail, self.result.usage)


def model_params_of(step: Step, defaults: ModelParams) -> dict[str, Any]:
    """Every model parameter with the step's value or the default's."""
    out = {}
    for name in ModelParams.model_fields:
        value = getattr(step, name)
        out[name] = value if value is not None else getattr(defaults, name)
    return out
