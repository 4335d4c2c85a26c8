"""What ``validate`` checks of the request options (:mod:`flowrun.spec_options`) and
``prompt``: how ``conversation:`` combines with the other ways to chain, and the steps it
joins. Each check returns :class:`~flowrun.preflight.Finding` objects relative to the step;
:mod:`flowrun.plan` places them in the file.
"""

from __future__ import annotations

from typing import Any

from .preflight import Finding
from .spec_options import CONVERSATION_NEW, CONVERSATION_NONE
from .steps.conversations import CONVERSATION_ID_PREFIX


def _joined_step(value: str | None) -> str | None:
    """The step id a ``conversation:`` value names (None for new / none / an id)."""
    if value is None or value in (CONVERSATION_NEW, CONVERSATION_NONE):
        return None
    if value.startswith(CONVERSATION_ID_PREFIX) or "{{" in value:
        return None
    return value


def conversation_deps(step: Any) -> set[str]:
    """Steps this one waits for because it joins their conversation."""
    joined = _joined_step(step.conversation)
    return {joined} if joined else set()


def _in_conversation(step: Any, defaults: Any) -> bool:
    own = step.conversation
    return own not in (None, CONVERSATION_NONE) or (own is None and defaults.conversation == CONVERSATION_NEW)


def defaults_findings(defaults: Any) -> list[Finding]:
    """``conversation`` in defaults is ``new`` or ``none``: a step id there would have
    every step join it, itself included."""
    value = defaults.conversation
    if value is None or value in (CONVERSATION_NEW, CONVERSATION_NONE) or value.startswith(CONVERSATION_ID_PREFIX):
        return []
    return [Finding(("conversation",), f"conversation: {value!r} in defaults would make every step "
                    "join it", "in defaults write conversation: new (one conversation for the run); "
                    "join a step's conversation on the steps themselves")]


def conversation_findings(sid: str, step: Any, flow: Any) -> list[Finding]:
    """``conversation`` with ``continue`` or ``store: false``; the step it joins."""
    out: list[Finding] = []
    defaults = flow.defaults
    own = step.conversation
    if step.prompt is not None and step.kind != "responses":
        out.append(Finding(("prompt",), f"prompt is for steps that call the model; this is a {step.kind} step",
                           "move prompt to a step with input (or with prompt alone)"))
    if not _in_conversation(step, defaults) or step.kind != "responses":
        if own not in (None, CONVERSATION_NONE) and step.kind != "responses":
            out.append(Finding(("conversation",), f"conversation is for steps that call the model; "
                               f"this is a {step.kind} step", "remove conversation from this step"))
        return out
    origin = "" if own is not None else " (from defaults)"
    if step.continue_ is not None:
        hint = ("use one way to chain: drop continue (the conversation already holds the history), "
                "or drop conversation" if own is not None else
                "add `conversation: none` to this step to chain it with continue instead")
        out.append(Finding(("continue",), f"continue and conversation{origin} are two ways to chain "
                           "a step; a request takes one of previous_response_id and conversation", hint))
    store = step.store if step.store is not None else defaults.store
    if store is False:
        out.append(Finding(("conversation",) if own is not None else ("store",),
                           f"conversation{origin} with store: false: a conversation keeps its items "
                           "at the service", "drop store: false, or chain with "
                           "`continue: {step: X, mode: manual}` instead"))
    joined = _joined_step(own)
    if joined is None:
        return out
    other = flow.steps.get(joined)
    if other is None:
        import difflib

        close = difflib.get_close_matches(joined, sorted(flow.steps), n=1, cutoff=0.6)
        out.append(Finding(("conversation",), f"unknown step {joined!r} in conversation",
                           f"did you mean {close[0]!r}? (or new, none, a conv_... id)" if close
                           else "write new, none, a conv_... id, or the id of a step"))
    elif joined == sid:
        out.append(Finding(("conversation",), "a step cannot join its own conversation",
                           "write conversation: new"))
    elif other.for_each is not None:
        out.append(Finding(("conversation",), f"cannot join the conversation of {joined!r}: it runs "
                           "once per item (for_each), each in its own conversation",
                           "join a step that has a single conversation"))
    elif not _in_conversation(other, defaults) or other.kind != "responses":
        out.append(Finding(("conversation",), f"cannot join the conversation of {joined!r}: it is not "
                           "in a conversation", f"give {joined!r} `conversation: new`"))
    return out
