"""The Python step: call ``module:function`` with ``with:`` as keyword arguments, no model.

The function is found like a ``python:`` tool's (beside the flow file first, then among
installed packages). A sync function runs in a thread, an async one is awaited. Its return
value is the step's ``output``; ``text`` is the value itself when it is a string, else its
JSON. Prompt flow's ``python`` nodes import to steps of this kind.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

from ..context import StepContext
from ..errors import ExecutionError
from ..tools.functions import load_callable, run_in_thread


async def execute(sc: StepContext) -> None:
    ref = sc.step.python
    try:
        fn = load_callable(ref, sc.base_dir)
    except ValueError as exc:
        raise ExecutionError(f"python {ref}: {exc}", sc.step_id) from None
    kwargs = sc.render_deep(dict(sc.step.with_ or {}))
    try:
        inspect.signature(fn).bind(**kwargs)
    except TypeError as exc:
        raise ExecutionError(f"python {ref}: {exc}", sc.step_id) from None
    except ValueError:  # no signature (a builtin): let the call itself say
        pass
    try:
        if inspect.iscoroutinefunction(fn):
            value = await fn(**kwargs)
        else:
            value = await run_in_thread(fn, **kwargs)
            if inspect.isawaitable(value):
                value = await value
    except ExecutionError:
        raise
    except Exception as exc:
        raise ExecutionError(f"python {ref} raised {type(exc).__name__}: {exc}", sc.step_id) from None
    sc.result.output = value
    sc.result.text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                                     default=str)
