"""The Responses step: build the request, call the model (plain, streamed or in the
background, with retries), run the tool loop, and read the result.

Chaining: ``continue: X`` sends ``previous_response_id``; ``mode: manual`` resends X's
whole conversation (its input items plus its output items) and, with ``store: false``,
asks for ``reasoning.encrypted_content`` so reasoning survives the round trip. Inside a
step's tool loop, turns chain by ``previous_response_id`` unless ``store`` is false.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..cache import through_cache
from ..client import TERMINAL
from ..citations import citations
from ..context import StepContext
from ..durable import StepLedger, ledger_of
from ..errors import ConnectionFailed, ExecutionError, OutputError, RequestRejected, ToolLoopLimit
from ..output import output_text, parse_structured, reasoning_summary, refusal, text_format
from ..parts import build_input
from ..ratelimit import budget_waits
from ..results import SUCCEEDED
from ..retry import with_retries
from ..secrets import StreamMasker
from ..tracing import current as tracer
from ..tools import EVENT_HANDLERS, build_tools, handle_items, load_builtins
from .conversations import conversation_scope
from .options import compacted, merge_text, option_params, prompt_param

ENCRYPTED_REASONING = "reasoning.encrypted_content"
MAX_STREAM_RESUMES = 5


def state_params(sc: StepContext) -> dict[str, Any]:
    """``store``, ``include`` and ``metadata`` (with the step id the emulator's scripts
    key on) - shared by every step kind that calls the model."""
    out: dict[str, Any] = {}
    store = sc.param("store")
    if store is not None:
        out["store"] = store
    include = list(sc.step.include)
    if store is False and ENCRYPTED_REASONING not in include:
        include.append(ENCRYPTED_REASONING)
    if include:
        out["include"] = include
    metadata = {k: sc.render(v) for k, v in sc.step.metadata.items()}
    metadata["flowrun_step"] = sc.step_id
    if "index" in sc.loop:
        metadata["flowrun_item"] = str(sc.loop["index"])
    out["metadata"] = metadata
    if sc.state.get("conversation"):
        out["conversation"] = sc.state["conversation"]
    return out


def base_request(sc: StepContext, tools: list[dict[str, Any]]) -> dict[str, Any]:
    """Request parameters shared by every turn of the step."""
    step = sc.step
    req: dict[str, Any] = {"model": sc.model}
    instructions = sc.param("instructions")
    if instructions:
        req["instructions"] = sc.render(instructions)
    for name in ("temperature", "top_p", "max_output_tokens", "truncation"):
        value = sc.param(name)
        if value is not None:
            req[name] = value
    reasoning = sc.param("reasoning")
    if reasoning is not None:
        req["reasoning"] = reasoning.model_dump(exclude_none=True)
    req.update(state_params(sc))
    options = option_params(sc)
    text = options.pop("text", None)
    req.update(options)
    if step.output_schema is not None:
        req["text"] = text_format(sc.step_id, step.output_schema)
    if text:
        merge_text(req, text)
    if tools:
        req["tools"] = tools
        if step.tool_choice is not None:
            req["tool_choice"] = _tool_choice(sc, step.tool_choice, tools)
        if step.parallel_tool_calls is not None:
            req["parallel_tool_calls"] = step.parallel_tool_calls
    return req


def _tool_choice(sc: StepContext, choice: str, tools: list[dict[str, Any]]) -> Any:
    """``tool_choice`` in the request's shape: an option, a function (by name), a hosted
    tool (by type) or an MCP server (by label)."""
    if choice in ("auto", "none", "required"):
        return choice
    for tool in tools:
        if tool.get("type") == "function" and tool.get("name") == choice:
            return {"type": "function", "name": choice}
        if tool.get("type") == "mcp" and tool.get("server_label") == choice:
            return {"type": "mcp", "server_label": choice}
        if tool.get("type") == choice:
            return {"type": choice}
    names = [t.get("name") or t.get("server_label") or t.get("type") for t in tools]
    raise ExecutionError(
        f"tool_choice {choice!r} is not one of this step's tools ({', '.join(map(str, names))}); "
        "use auto, none, required or one of those names",
        sc.step_id,
    )


def as_input(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Output items made fit to send back as input items."""
    out = []
    for item in items:
        item = {k: v for k, v in item.items() if v is not None}
        if item.get("type") == "reasoning" and "encrypted_content" not in item:
            continue  # stateless reasoning items cannot be resent without their content
        out.append(item)
    return out


async def _on_event(sc: StepContext, event: dict[str, Any]) -> None:
    etype = event.get("type", "")
    if etype == "response.output_text.delta":
        _stream_text(sc, event.get("delta", ""))
    elif etype in ("response.output_text.done", "response.completed"):
        _stream_text(sc, "", final=True)
    handler = EVENT_HANDLERS.get(etype)
    if handler is not None:
        result = handler(sc, event)
        if asyncio.iscoroutine(result):
            await result


def _stream_text(sc: StepContext, delta: str, final: bool = False) -> None:
    """Pass streamed text to the hooks with secrets masked (:class:`StreamMasker`: what
    could be the start of a secret split across deltas is held back until the part is
    done)."""
    masker = sc.state.get("stream")
    if masker is None:
        masker = sc.state["stream"] = StreamMasker(sc.run.redactor)
    shown = masker.feed(delta) + (masker.flush() if final else "")
    if shown:
        sc.run.hooks.on_text_delta(sc.key, shown)


def _restart_stream(sc: StepContext) -> None:
    """A retried call streams its text again from the start: what the failed attempt held
    back is dropped unseen, and the hooks forget what it showed."""
    masker = sc.state.pop("stream", None)
    if masker is not None:
        masker.reset()
    sc.run.hooks.on_text_reset(sc.key)


async def _reattach(sc: StepContext, response_id: str) -> dict[str, Any] | None:
    """The background response a killed run had started, polled to its end; None when
    the service no longer has it, or it was cancelled or failed (then it is created again)."""
    client = sc.run.client
    try:
        if sc.param("stream"):  # its events again from the first, then live to the end
            sc.status("running", f"re-attaching to background response {response_id}")
            response = await client.resume_stream(response_id, None, lambda e: _on_event(sc, e))
        else:
            response = await client.retrieve(response_id)
            sc.status("running", f"re-attached to background response {response_id}")
            response = await _poll(sc, response)
    except RequestRejected as exc:
        if exc.status == 404:
            return None
        raise
    return None if response.get("status") in ("cancelled", "failed") else response


async def _poll(sc: StepContext, response: dict[str, Any]) -> dict[str, Any]:
    client = sc.run.client
    interval = sc.step.poll_interval
    cap = getattr(getattr(client, "provider", None), "poll_interval_cap", None)
    if cap is not None:
        interval = min(interval, cap)
    try:
        while response.get("status") not in TERMINAL:
            await asyncio.sleep(interval)
            response = await client.retrieve(response["id"])
    except asyncio.CancelledError:
        await asyncio.shield(_cancel_quietly(client, response["id"]))
        raise
    return response


async def _background(sc: StepContext, params: dict[str, Any], attach: str | None = None) -> dict[str, Any]:
    client = sc.run.client
    if attach:
        found = await _reattach(sc, attach)
        if found is not None:
            return found
    asked = params
    params = {**params, "background": True, "store": True}
    if sc.param("stream"):
        recorded: list[str] = []

        def on_event(event: dict[str, Any]) -> Any:
            # recorded at the first event: a run killed mid-stream re-attaches on resume
            found = (event.get("response") or {}).get("id") if not recorded else None
            if found:
                recorded.append(found)
                ledger_of(sc).pending(sc.state.get("turn", 0), asked, found)
            return _on_event(sc, event)

        try:
            return await client.stream(params, on_event)
        except ConnectionFailed as exc:
            response_id, last = getattr(exc, "resume", (None, -1))
            if not response_id:
                raise
            for _ in range(MAX_STREAM_RESUMES):
                sc.status("running", f"stream dropped; resuming after event {last}")
                try:
                    return await client.resume_stream(response_id, last, lambda e: _on_event(sc, e))
                except ConnectionFailed as again:
                    last = getattr(again, "resume", (None, last))[1]
            raise
    response = await client.create(params)
    sc.result.response_id = response["id"]
    # recorded at once: a run killed while this runs polls it on resume, never recreates it
    ledger_of(sc).pending(sc.state.get("turn", 0), asked, response["id"])
    return await _poll(sc, response)


async def _cancel_quietly(client: Any, response_id: str) -> None:
    try:
        await client.cancel(response_id)
    except Exception:
        pass


async def call_model(sc: StepContext, params: dict[str, Any], attach: str | None = None) -> dict[str, Any]:
    """One model turn, with retries, streaming or background as the step asks.
    ``attach``: the id of a background response an earlier attempt started."""
    client = sc.run.client
    tries = 0

    async def attempt() -> dict[str, Any]:
        nonlocal tries
        tries += 1
        sc.result.attempts += 1
        if tries > 1 and sc.param("stream"):
            _restart_stream(sc)
        if sc.step.background:
            return await _background(sc, params, attach)
        if sc.param("stream"):
            return await client.stream(params, lambda e: _on_event(sc, e))
        return await client.create(params)

    ledger = ledger_of(sc)
    turn = sc.state.get("turn")

    def on_retry(n: int, err: Exception, wait: float) -> None:
        sc.status("retrying", f"retry {n} in {wait:.1f}s: {err}")
        ledger.event(turn, "retry", time.time(), wait, f"retry {n}: {err}")

    def on_budget_wait(started: float, seconds: float, model: str) -> None:
        ledger.event(turn, "budget", started, seconds, model or None)

    token = budget_waits.set(on_budget_wait)
    try:
        with tracer().model_call(sc, params) as span:
            response = await with_retries(attempt, sc.retries, on_retry)
            span.done(response)
            await _settle(sc, response)
    finally:
        budget_waits.reset(token)
    return response


async def _settle(sc: StepContext, response: dict[str, Any]) -> None:
    """Save the response; a failed, cancelled or incomplete one fails the step."""
    await sc.run.store.keep_response(sc.key, response, sc.state.get("turn"))
    status = response.get("status")
    if status == "failed":
        err = response.get("error") or {}
        raise ExecutionError(f"the response failed: {err.get('message') or err}", sc.step_id)
    if status == "cancelled":
        raise ExecutionError("the response was cancelled", sc.step_id)
    if status == "incomplete":
        reason = (response.get("incomplete_details") or {}).get("reason", "unknown")
        raise ExecutionError(f"the response is incomplete ({reason})", sc.step_id)


def next_turn(request: dict[str, Any], conversation: list[dict[str, Any]],
              follow_up: list[dict[str, Any]], response: dict[str, Any],
              stateless: bool) -> list[dict[str, Any]]:
    """Add ``follow_up`` to the conversation and return the next turn's input: chained by
    ``previous_response_id``, or (``store: false``) the whole conversation again."""
    conversation.extend(follow_up)
    if request.get("conversation"):  # the service appends every turn to the Conversation
        return list(follow_up)
    if stateless:
        request.pop("previous_response_id", None)
        return list(conversation)
    request["previous_response_id"] = response["id"]
    return list(follow_up)


def _compact(items: list[dict[str, Any]]) -> Any:
    """A lone user text goes as a plain string: the same request, less to encode."""
    if len(items) == 1 and items[0].get("role") == "user":
        content = items[0].get("content")
        if isinstance(content, list) and len(content) == 1 and content[0].get("type") == "input_text":
            return content[0]["text"]
    return list(items)


def _chained(sc: StepContext) -> Any:
    spec = sc.step.continue_
    if spec is None:
        return None
    outcome = sc.run.outcomes.get(spec.step)
    prior = outcome.result if outcome else None
    if prior is None or prior.status != SUCCEEDED:
        raise ExecutionError(f"cannot continue {spec.step!r}: it did not succeed", sc.step_id)
    return prior


async def _call_chained(sc: StepContext, request: dict[str, Any], params: dict[str, Any],
                        conversation: list[dict[str, Any]], attach: str | None) -> dict[str, Any]:
    """Call the model; if the response it continues is gone (404: expired, deleted, or
    another service), resend the stored conversation instead (manual chaining)."""
    try:
        return await call_model(sc, params, attach)
    except RequestRejected as exc:
        previous = params.get("previous_response_id")
        if exc.status != 404 or not previous:
            raise
    request.pop("previous_response_id", None)
    note = (f"previous response {previous} is no longer on the service (404); sent the "
            "stored conversation instead (manual chaining)")
    sc.result.extra.setdefault("chain_rebuilt", []).append(note)
    sc.notice(note)
    return await call_model(sc, {**request, "input": list(conversation)})


async def execute(sc: StepContext) -> None:
    from ..workspace import finish_workspace, open_workspace, uses_workspace

    if not uses_workspace(sc):
        async with conversation_scope(sc):
            return await _converse(sc)
    open_workspace(sc)
    try:
        async with conversation_scope(sc):
            await _converse(sc)
    finally:  # the diff is kept also when the step fails
        await asyncio.to_thread(finish_workspace, sc)


async def _converse(sc: StepContext) -> None:
    load_builtins()
    await through_cache(sc, first_request, _run)  # a hit fills the result: zero requests


async def _first_turn(sc: StepContext) -> tuple[dict[str, Any], Any, list[dict[str, Any]]]:
    """The request shared by every turn, the first turn's input and the conversation so
    far (the continued step's, then this step's new input)."""
    tools = await build_tools(sc)
    request = base_request(sc, tools)
    prompt = await prompt_param(sc)
    if prompt is not None:
        request["prompt"] = prompt
    new_input = await build_input(sc) if sc.step.input is not None else []
    prior = _chained(sc)
    conversation: list[dict[str, Any]] = []
    if prior is not None:
        conversation.extend(prior.conversation)
        if sc.step.continue_.mode == "previous_response_id":
            request["previous_response_id"] = prior.response_id
            send = _compact(new_input)
        else:
            send = [*prior.conversation, *new_input]
    else:
        send = _compact(new_input)
    conversation.extend(new_input)
    return request, send, conversation


async def first_request(sc: StepContext) -> dict[str, Any]:
    """The step's first request as sent (the step cache keys on it)."""
    request, send, _ = await _first_turn(sc)
    return {**request, "input": send}


async def _run(sc: StepContext) -> None:
    result = sc.result
    request, send, conversation = await _first_turn(sc)
    stateless = sc.param("store") is False
    ledger = ledger_of(sc)
    turn = 0  # the model turn; a resumed step replays the turns its ledger holds
    turns = 0
    output_items: list[dict[str, Any]] = []
    while True:
        params = {**request, "input": send} if send else dict(request)  # a prompt alone
        sc.state["turn"] = turn
        row = ledger.replay(turn, params)
        if row is not None and row["response"] is not None:
            response = row["response"]
        else:
            attach = row["response_id"] if row is not None and row["status"] == "pending" else None
            response = await _call_chained(sc, request, params, conversation, attach)
            ledger.responded(turn, params, response)
        result.response_id = response.get("id")
        result.response_ids.append(response["id"])
        result.add_usage(response.get("usage"))
        sc.status("running")
        produced = response.get("output") or []
        output_items.extend(produced)
        conversation.extend(as_input(produced))
        if row is not None and row["status"] == "done" and row["response"] is not None:
            follow_up = row["follow_up"] or []  # tools already ran, approvals already given
            StepLedger.restore_state(result, row["state"])
        else:
            follow_up = await handle_items(sc, response)
            ledger.turn_done(turn, follow_up, result)
        turn += 1
        if not follow_up:
            break
        turns += 1
        if turns > sc.max_tool_turns:  # max_tool_turns rounds of tool results were allowed
            limit = sc.max_tool_turns
            raise ToolLoopLimit(
                f"the model was still calling tools after {limit} tool turn"
                f"{'s' if limit != 1 else ''} (max_tool_turns: {limit}); raise "
                "max_tool_turns on the step or in defaults if it needs more rounds",
                sc.step_id,
            )
        if request.get("tool_choice") not in (None, "auto", "none"):
            # a forced tool choice applies to the first turn only; forcing every turn
            # would make the model call tools forever
            request["tool_choice"] = "auto"
        send = next_turn(request, conversation, follow_up, response, stateless)
        if request.get("context_management") and stateless:
            send = conversation[:] = compacted(conversation)

    result.items = output_items
    result.conversation = conversation
    result.reasoning_summary = reasoning_summary(response)
    refused = refusal(response)
    if refused is not None:
        raise OutputError(f"the model refused: {refused}", sc.step_id)
    result.text = output_text(response)
    result.citations = citations(response)
    if sc.step.output_schema is not None:
        result.output = parse_structured(result.text, sc.step.output_schema, sc.step_id,
                                         sc.run.redactor.text)
