"""The computer-use step: a sub-agent that drives a real browser (Playwright) for the
``computer-use-preview`` model.

The loop (the Azure guide's, made dependable):

1. Open a fresh browser context on ``start_url`` and send the task with a screenshot,
   the tool ``{"type": "computer_use_preview", "display_width", "display_height",
   "environment": "browser"}``, ``truncation: auto`` and a reasoning summary.
2. For each ``computer_call``: settle its ``pending_safety_checks`` (policy
   ``safety_checks``), carry out its action in the browser (:mod:`flowrun.browser`),
   follow a new tab, take a screenshot and answer with a ``computer_call_output``
   (``call_id``, ``output: {type: computer_screenshot, image_url: data URL}``,
   ``acknowledged_safety_checks``, ``current_url``), chained by ``previous_response_id``
   (or, with ``store: false``, by resending the conversation).
   What the screenshot cannot say - a blocked navigation, a download, a failed action,
   a dismissed dialog - follows the output as a user message ``[flowrun] ...``.
3. Stop when a response has no computer call: its message is the step's ``text``. A model
   still acting after ``max_turns`` actions fails the step.

Every screenshot is saved as ``artifacts/<step>/NNNN-<action>.png`` (``0000-start.png``
first), and ``timeline.json`` beside them lists turn, action, clamped coordinates, URL,
screenshot and events; the run record holds the same under ``computer_use`` (with the
blocked requests, downloads and safety-check decisions), kept up to date as the loop
runs so a failed step still shows how far it got. Screenshots are the step's
``images``, downloads its ``files``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from ..ask import ask_yes_no
from ..browser import BrowserError, BrowserSession, describe, origin, parse_allowed, url_allowed
from ..context import StepContext
from ..errors import ExecutionError, FlowrunError, OutputError, ToolLoopLimit
from ..output import output_text, reasoning_summary, refusal
from ..spec import SafetyAcknowledge
from ..tracing import current as tracer
from .responses import as_input, call_model, next_turn, state_params

RECORD_KEY = "computer_use"
DEFAULT_INSTRUCTIONS = (
    "You are an agent that controls a web browser with the mouse and keyboard to carry out "
    "the user's task. After each action you receive a screenshot; check that the action "
    "worked before the next one. Stay on the task and on the sites you were given. When the "
    "task is done, stop using the computer and answer with what you found."
)


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _reportable_url(url: str) -> str | None:
    return url if url.startswith(("http://", "https://")) else None


class SafetyRefused(ExecutionError):
    """The step stopped at a safety check the model raised."""


class Timeline:
    """Screenshots, the timeline file and the step's record entry, kept in step."""

    def __init__(self, sc: StepContext, info: dict[str, Any]):
        self.sc = sc
        self.store = sc.run.store
        self.entries: list[dict[str, Any]] = []
        self.record: dict[str, Any] = {**info, "turns": 0, "timeline": self.entries,
                                       "blocked": [], "downloads": [], "safety_checks": []}
        sc.result.extra[RECORD_KEY] = self.record
        self.path = self.store.artifact_path(sc.key, "timeline.json")
        self.record["timeline_file"] = self._relative(self.path)

    def _relative(self, path: Any) -> str:
        return path.relative_to(self.store.dir).as_posix()

    def screenshot(self, turn: int, name: str, png: bytes) -> str:
        path = self.store.save_artifact(self.sc.key, f"{turn:04d}-{name}.png", png)
        self.sc.result.images.append(str(path))
        return self._relative(path)

    def add(self, entry: dict[str, Any]) -> None:
        self.entries.append(entry)
        self.write()

    def write(self) -> None:
        text = json.dumps(self.store.redactor.deep(self.entries), indent=2, ensure_ascii=False, default=str)
        self.store.write_file(self.path, text + "\n")


# ---------------------------------------------------------------- safety checks


async def settle_safety_checks(sc: StepContext, call: dict[str, Any], turn: int, url: str,
                               decisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The checks to acknowledge for ``call``; raises :class:`SafetyRefused` otherwise.
    Every decision is appended to ``decisions``."""
    pending = [c for c in call.get("pending_safety_checks") or [] if isinstance(c, dict)]
    if not pending:
        return []
    policy = sc.step.computer_use.safety_checks
    action = describe(call.get("action") or {}, sc.run.redactor)

    def decide(check: dict[str, Any], decision: str, by: str) -> None:
        decisions.append({"turn": turn, "call_id": call.get("call_id"), "id": check.get("id"),
                          "code": check.get("code"), "message": check.get("message"),
                          "action": action, "url": url, "decision": decision, "by": by})

    def listing(checks: list[dict[str, Any]]) -> str:
        return "; ".join(f"{c.get('code') or 'unknown'}: {c.get('message') or '(no message)'}"
                         for c in checks)

    refused: list[dict[str, Any]] = []
    reason = ""
    if isinstance(policy, SafetyAcknowledge):
        listed = set(policy.acknowledge)
        refused = [c for c in pending if c.get("code") not in listed]
        for c in pending:
            decide(c, "refused" if c in refused else "acknowledged", "policy")
        reason = (f"safety_checks acknowledges only {', '.join(sorted(listed))}; add the code to "
                  "acknowledge it if you trust this task")
    elif policy == "ask" and sc.run.interactive:
        approved = await ask_yes_no(
            sc.run, f"{sc.key}: the computer-use model raised a safety check before '{action}'",
            {"checks": listing(pending), "page": url or "(none)"})
        for c in pending:
            decide(c, "acknowledged" if approved else "refused", "user")
        refused = [] if approved else pending
        reason = "refused at the prompt"
    else:
        refused = pending
        for c in pending:
            decide(c, "refused", "policy")
        reason = ("safety_checks: refuse stops at any safety check" if policy == "refuse" else
                  "safety_checks: ask, but the run is not interactive (run with --interactive to be "
                  "asked, or acknowledge the codes with safety_checks: {acknowledge: [...]})")
    if refused:
        codes = ", ".join(sorted({c.get("code") or "unknown" for c in refused}))
        raise SafetyRefused(
            f"stopped at safety check{'s' if len(refused) > 1 else ''} {codes} before '{action}' "
            f"({listing(refused)}); {reason}", sc.step_id)
    return [{"id": c.get("id"), "code": c.get("code"), "message": c.get("message")} for c in pending]


# ---------------------------------------------------------------- the request


def _request(sc: StepContext, tool: dict[str, Any]) -> dict[str, Any]:
    cu = sc.step.computer_use
    step = sc.step
    req: dict[str, Any] = {
        "model": sc.render(cu.model),
        "tools": [tool],
        "truncation": cu.truncation,
        "instructions": sc.render(step.instructions) if step.instructions else DEFAULT_INSTRUCTIONS,
    }
    reasoning: dict[str, Any] = {}
    if step.reasoning is not None and step.reasoning.effort is not None:
        reasoning["effort"] = step.reasoning.effort
    if cu.reasoning_summary is not None:
        reasoning["summary"] = cu.reasoning_summary
    if reasoning:
        req["reasoning"] = reasoning
    for name in ("temperature", "top_p", "max_output_tokens"):
        value = getattr(step, name)
        if value is not None:
            req[name] = value
    req.update(state_params(sc))
    return req


def _note(events: list[dict[str, Any]]) -> str | None:
    """What the model should know beyond the screenshot, from the browser's events."""
    lines = []
    for e in events:
        kind = e["kind"]
        if kind == "blocked":
            what = "Navigation" if e.get("navigation") else f"A {e.get('resource_type') or 'request'} request"
            lines.append(f"{what} to {origin(e['url'])} was blocked: that host is not in the allowed "
                         "domains. Stay on the allowed sites.")
        elif kind == "tab":
            lines.append(f"The browser switched to another tab ({e['reason']}); it shows {e['url']}.")
        elif kind == "download":
            if "error" in e:
                lines.append(f"A download ({e['suggested_filename']}) failed.")
            else:
                lines.append(f"The file {e['suggested_filename']} was downloaded.")
        elif kind == "dialog":
            lines.append(f"The page opened a JavaScript {e['dialog']} dialog, which was dismissed.")
        elif kind == "error":
            lines.append(e["message"] + ".")
    if not lines:
        return None
    return "[flowrun] " + " ".join(lines)


# ---------------------------------------------------------------- the step


async def execute(sc: StepContext) -> None:
    cu = sc.step.computer_use
    task = sc.render(cu.task)
    start_url = sc.render(cu.start_url) if cu.start_url else None
    if start_url and not start_url.startswith(("http://", "https://")):
        raise ExecutionError(f"start_url must be an http(s) URL, got {start_url!r}", sc.step_id)
    allowed = parse_allowed([sc.render(d) for d in cu.allowed_domains], start_url)
    if start_url and not url_allowed(start_url, allowed):
        raise ExecutionError(
            f"start_url {start_url} is not in allowed_domains ({', '.join(map(str, allowed))})",
            sc.step_id)
    width, height = cu.display.width, cu.display.height
    tool = {"type": "computer_use_preview", "display_width": width, "display_height": height,
            "environment": cu.environment}
    request = _request(sc, tool)
    timeline = Timeline(sc, {"start_url": start_url, "allowed_domains": [str(a) for a in allowed],
                             "display": {"width": width, "height": height}})
    record = timeline.record

    def save_download(name: str) -> Any:
        return sc.run.store.artifact_path(sc.key, f"download-{name}", "download")

    session = BrowserSession(width=width, height=height, headless=cu.headless, allowed=allowed,
                             save_download=save_download, redactor=sc.run.redactor)
    try:
        sc.status("running", "starting the browser")
        async with session:
            await _loop(sc, session, timeline, request, task, start_url)
    except BrowserError as exc:
        exc.step_id = exc.step_id or sc.step_id
        raise
    except FlowrunError:
        raise
    except Exception as exc:  # Playwright failing outside an action: never a raw exception
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BrowserError(f"the browser failed: {text}", sc.step_id) from None
    finally:
        record["blocked"] = session.blocked
        record["downloads"] = session.downloads
        for d in session.downloads:
            if d.get("path") and d["path"] not in sc.result.files:
                sc.result.files.append(d["path"])
        record["final_url"] = _reportable_url(session.url) if session.page is not None else None
        timeline.write()


async def _loop(sc: StepContext, session: BrowserSession, timeline: Timeline,
                request: dict[str, Any], task: str, start_url: str | None) -> None:
    cu = sc.step.computer_use
    result = sc.result
    record = timeline.record
    await session.start(start_url)
    png = await session.screenshot()
    shot = timeline.screenshot(0, "start", png)
    events = session.take_events()
    timeline.add({"turn": 0, "action": None, "description": f"open {start_url or 'about:blank'}",
                  "url": session.url, "screenshot": shot, **({"events": events} if events else {})})
    first = [{"role": "user", "content": [
        {"type": "input_text", "text": task},
        {"type": "input_image", "image_url": data_url(png), "detail": "auto"},
    ]}]
    stateless = sc.param("store") is False
    conversation: list[dict[str, Any]] = list(first)
    send = first
    actions = 0
    summaries: list[str] = []
    while True:
        sc.status("running", f"turn {actions + 1}: waiting for the model")
        response = await call_model(sc, {**request, "input": send})
        result.response_id = response.get("id")
        result.response_ids.append(response["id"])
        result.add_usage(response.get("usage"))
        produced = response.get("output") or []
        conversation.extend(as_input(produced))
        summary = reasoning_summary(response)
        if summary:
            summaries.append(summary)
            result.reasoning_summary = "\n".join(summaries)
        calls = [i for i in produced if i.get("type") == "computer_call"]
        if not calls:
            break
        outputs: list[dict[str, Any]] = []
        notes: list[str] = []
        for call in calls:
            if actions >= cu.max_turns:
                raise ToolLoopLimit(
                    f"the model was still using the computer after max_turns={cu.max_turns} actions "
                    f"(last page: {session.url or 'none'}); raise max_turns or narrow the task",
                    sc.step_id)
            actions += 1
            record["turns"] = actions
            url_before = session.url
            acknowledged = await settle_safety_checks(sc, call, actions, url_before,
                                                      record["safety_checks"])
            steps = call.get("actions") or ([call["action"]] if call.get("action") else [])
            done_list = []
            with tracer().local_tool(sc, call):
                for action in steps:
                    sc.status("running", f"turn {actions}: {describe(action, sc.run.redactor)}")
                    done_list.append(await session.perform(action))
                png = await session.screenshot()
            events = session.take_events()
            name = steps[0].get("type", "action") if len(steps) == 1 else "actions"
            shot = timeline.screenshot(actions, str(name), png)
            entry: dict[str, Any] = {
                "turn": actions, "call_id": call.get("call_id"),
                "action": steps[0] if len(steps) == 1 else steps,
                "description": "; ".join(describe(a, sc.run.redactor) for a in steps),
                "url": session.url, "screenshot": shot,
            }
            performed = [d for d in done_list if d]
            if performed:
                entry["performed"] = performed[0] if len(steps) == 1 else performed
            if summary:
                entry["reasoning"] = summary
            if acknowledged:
                entry["acknowledged_safety_checks"] = [a.get("code") for a in acknowledged]
            if events:
                entry["events"] = events
            timeline.add(entry)
            output: dict[str, Any] = {
                "type": "computer_call_output", "call_id": call["call_id"],
                "output": {"type": "computer_screenshot", "image_url": data_url(png)},
            }
            if acknowledged:
                output["acknowledged_safety_checks"] = acknowledged
            current = _reportable_url(session.url)
            if current:
                output["current_url"] = current
            outputs.append(output)
            note = _note(events)
            if note:
                notes.append(note)
            for e in events:
                if e["kind"] == "blocked":
                    sc.notice(f"blocked {'navigation' if e.get('navigation') else 'request'} to "
                              f"{origin(e['url'])} (not in allowed_domains)")
        follow_up = outputs + [{"role": "user", "content": [{"type": "input_text", "text": n}]}
                               for n in notes]
        send = next_turn(request, conversation, follow_up, response, stateless)

    result.items = produced
    result.conversation = conversation
    refused = refusal(response)
    if refused is not None:
        raise OutputError(f"the model refused: {refused}", sc.step_id)
    result.text = output_text(response)
