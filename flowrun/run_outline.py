"""A run's flow as the report needs it - step order, what each step needs, its kind and
model, the flow's description and secret names - without the plan itself.

:func:`outline_of` builds it from a :class:`~flowrun.plan.Plan`; the run writes it to the
run store when it starts (:meth:`flowrun.rundb.RunDB.save_outline`), so a report made
later need not parse and plan the flow again (ruamel and the template checks take
seconds for a 1,000-step flow). A run recorded before outlines were kept is planned from
the flow text it recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .context import DEFAULT_MODEL


@dataclass
class Outline:
    order: list[str]
    needs: dict[str, list[str]]
    kinds: dict[str, str] = field(default_factory=dict)
    models: dict[str, str | None] = field(default_factory=dict)
    description: str | None = None
    secrets: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"order": self.order, "needs": self.needs, "kinds": self.kinds, "models": self.models,
                "description": self.description, "secrets": self.secrets}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Outline":
        return cls(list(data.get("order") or []), {k: list(v) for k, v in (data.get("needs") or {}).items()},
                   dict(data.get("kinds") or {}), dict(data.get("models") or {}), data.get("description"),
                   list(data.get("secrets") or []))

    def single_model(self) -> str | None:
        """The one model every step names (a dataset row's usage is one total), else None."""
        models = set(self.models.values())
        return models.pop() if len(models) == 1 else None


def _model(step: Any, defaults: Any) -> str | None:
    cu = getattr(step, "computer_use", None)
    model = (getattr(cu, "model", None) if cu is not None else None) or getattr(step, "model", None) \
        or getattr(defaults, "model", None) or DEFAULT_MODEL
    return model if isinstance(model, str) and "{" not in model else None


def outline_of(plan: Any) -> Outline:
    from .runner import secrets_used

    flow = plan.flow
    return Outline(
        order=list(plan.order),
        needs={sid: sorted(plan.needs.get(sid, ())) for sid in plan.order},
        kinds={sid: str(plan.step(sid).kind) for sid in plan.order},
        models={sid: _model(plan.step(sid), flow.defaults) for sid in plan.order},
        description=getattr(flow, "description", None),
        secrets=sorted(secrets_used(plan)),
    )


def outline_for(db: Any, row: dict[str, Any]) -> Outline | None:
    """The run's outline: as stored, else from its recorded flow text (or its flow file);
    None when neither plans (a tools module is gone, ...)."""
    stored = db.outline(row["id"])
    if stored:
        return Outline.from_json(stored)
    from .errors import FlowrunError
    from .loader import load_text
    from .plan import build_plan, load_plan

    path = row.get("flow_path")
    if row.get("flow_text"):
        try:
            base = Path(path).parent if path else None
            return outline_of(build_plan(load_text(row["flow_text"], path or "<flow>", base)))
        except (FlowrunError, OSError, ValueError):
            pass
    if path and Path(path).is_file():
        try:
            return outline_of(load_plan(path))
        except (FlowrunError, OSError, ValueError):
            return None
    return None
