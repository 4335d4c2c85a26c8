"""Chaining through server-side Conversations (``conversation:`` on a step or in defaults).

The third way to chain, beside ``continue:`` (``previous_response_id`` or manual): every
request of the step names a Conversation, and the service appends the step's input and
output items to it, so a later request sees them all without flowrun resending anything.

- ``conversation: new`` on a step creates a Conversation for that step (for each item of
  a ``for_each``); ``steps.X.conversation`` is its id.
- ``conversation: STEP`` joins STEP's conversation (and waits for STEP).
- ``conversation: conv_...`` uses an existing Conversation.
- ``conversation: new`` in ``defaults`` creates one Conversation for the run, created on
  first use; every step that does not set its own joins it (``none`` opts out).

A resumed run goes on in the Conversations its earlier attempts created: the run-wide one,
and a step's own one when the step had stored turns (an interrupted tool loop).

Requests in one Conversation are never interleaved: a step holds the Conversation's lock
for its whole tool loop, so steps that run at the same time take turns.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from ..errors import ExecutionError
from ..rundb import loads
from ..results import SUCCEEDED
from ..spec_options import CONVERSATION_NEW, CONVERSATION_NONE

CONVERSATION_ID_PREFIX = "conv_"


@dataclass
class _RunConversations:
    """Per run: the run-wide Conversation (``defaults``) and one lock per Conversation."""

    shared: str | None = None
    creating: asyncio.Lock = field(default_factory=asyncio.Lock)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)


def _of(run: Any) -> _RunConversations:
    state = getattr(run, "_conversations", None)
    if state is None:
        state = _RunConversations()
        run._conversations = state
    return state


async def _create(sc: Any) -> str:
    metadata = {"flowrun_step": sc.step_id}
    created = await sc.run.client.create_conversation(metadata)
    sc.status("running", f"conversation {created['id']} created")
    return created["id"]


def _in_requests(turns: dict[int, dict[str, Any]]) -> str | None:
    """The Conversation the stored requests of a step's turns named."""
    for turn in sorted(turns):
        request = loads(turns[turn].get("request")) or {}
        if isinstance(request, dict) and request.get("conversation"):
            return str(request["conversation"])
    return None


def _recorded_own(sc: Any) -> str | None:
    """On resume: the Conversation an earlier attempt created for this step (or item) that
    did not finish, so its interrupted tool loop goes on in it (a step that succeeded and
    runs again - its request changed - starts a new one)."""
    journal = getattr(sc.run.store, "journal", None)
    row = journal.prior.steps.get(sc.key) if journal is not None else None
    if row is not None and row["status"] == SUCCEEDED:
        return None
    ledger = sc.state.get("ledger")
    return _in_requests(getattr(ledger, "turns", None) or {})


def _recorded_shared(sc: Any) -> str | None:
    """On resume: the run-wide Conversation an earlier attempt created (``defaults``),
    named by the steps that joined it."""
    journal = getattr(sc.run.store, "journal", None)
    prior = getattr(journal, "prior", None)
    if prior is None:
        return None
    joined = {sid for sid in sc.run.plan.order if sc.run.plan.step(sid).conversation is None}
    for row in prior.steps.values():
        if row["step_id"] in joined and row["result"]:
            found = (loads(row["result"]) or {}).get("conversation_id")
            if found:
                return str(found)
    for key, turns in prior.turns.items():
        row = prior.steps.get(key)
        if (row["step_id"] if row else key.split(".")[0]) in joined:
            found = _in_requests(turns)
            if found:
                return found
    return None


async def resolve(sc: Any) -> str | None:
    """The Conversation id the step's requests name, creating one when asked (None: the
    step chains otherwise). A resumed run goes on in the Conversations its earlier
    attempts created."""
    own, default = sc.step.conversation, sc.flow.defaults.conversation
    if own is None:
        if default != CONVERSATION_NEW:
            return None
        state = _of(sc.run)
        async with state.creating:
            if state.shared is None:
                state.shared = _recorded_shared(sc) or await _create(sc)
        return state.shared
    value = str(sc.render(own)).strip()
    if value == CONVERSATION_NONE:
        return None
    if value == CONVERSATION_NEW:
        return _recorded_own(sc) or await _create(sc)
    if value.startswith(CONVERSATION_ID_PREFIX):
        return value
    outcome = sc.run.outcomes.get(value)
    prior = outcome.result if outcome else None
    if prior is None or prior.status != SUCCEEDED or not prior.conversation_id:
        raise ExecutionError(f"cannot join the conversation of {value!r}: it did not succeed "
                             "in a conversation", sc.step_id)
    return prior.conversation_id


@contextlib.asynccontextmanager
async def conversation_scope(sc: Any) -> AsyncIterator[str | None]:
    """Resolve the step's Conversation, put it in ``sc.state`` (``state_params`` sends it)
    and hold its lock while the step runs."""
    conversation_id = await resolve(sc)
    if conversation_id is None:
        yield None
        return
    lock = _of(sc.run).locks.setdefault(conversation_id, asyncio.Lock())
    async with lock:
        sc.state["conversation"] = conversation_id
        sc.result.conversation_id = conversation_id
        yield conversation_id
