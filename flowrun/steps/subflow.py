"""The sub-flow step: run another flow file with inputs from ``with:``; its outputs become
this step's ``output`` (and ``text`` when there is exactly one output)."""

from __future__ import annotations

import json
from typing import Any

from ..context import RunContext, StepContext
from ..errors import ExecutionError
from ..run_inputs import resolve_inputs
from ..store import RunStore, unique_name


async def run_subflow(sc: StepContext, rel: str, given: dict[str, Any], key: str) -> dict[str, Any]:
    """Run the sub-flow at ``rel`` (relative to the flow file); returns its outputs."""
    from ..runner import Runner

    sub = sc.run.plan.subflow(rel)
    inputs = resolve_inputs(sub.flow, {}, given, cwd=sc.run.cwd, flow_dir=sub.base_dir)
    parent = sc.run.store
    store = RunStore(parent.dir / "subflows", unique_name(key), parent.redactor)
    ctx = RunContext(
        plan=sub,
        client=sc.run.client,
        store=store,
        redactor=sc.run.redactor,
        inputs=inputs,
        interactive=sc.run.interactive,
        slots=None,
        secrets=sc.run.secrets,
        cwd=sc.run.cwd,
        cache=sc.run.cache,
    )
    result = await Runner(ctx).run()
    sc.result.add_usage(result.usage)  # the sub-flow's tokens count for the calling step
    if result.status != "succeeded":
        raise ExecutionError(f"sub-flow {rel} {result.status}: {result.error}", sc.step_id)
    return result.outputs


async def execute(sc: StepContext) -> None:
    given = sc.render_deep(dict(sc.step.with_ or {}))
    outputs = await run_subflow(sc, sc.step.flow, given, sc.key)
    sc.result.output = outputs
    if len(outputs) == 1:
        only = next(iter(outputs.values()))
        sc.result.text = only if isinstance(only, str) else json.dumps(only)
    else:
        sc.result.text = json.dumps(outputs, ensure_ascii=False, default=str)
