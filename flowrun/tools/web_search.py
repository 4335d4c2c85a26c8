"""The hosted web search tool: the service searches and cites; flowrun asks and records.

``tools: [web_search]`` or ``{web_search: {search_context_size, user_location: {country,
region, city, timezone}, filters: {allowed_domains}}}`` sends ``{"type": "web_search",
...}`` (``user_location`` with ``type: approximate``). Add
``web_search_call.action.sources`` to the step's ``include`` to get every source the
search used, not only the cited ones. Each ``web_search_call`` is recorded under
``web_search`` in the run record (its action: query, and sources when asked for); the
answer's ``url_citation`` annotations are ``steps.X.citations`` (:mod:`flowrun.citations`).
"""

from __future__ import annotations

from typing import Any

from . import register_event, register_item, register_tool

RECORD_KEY = "web_search"


@register_tool("web_search")
async def build(sc: Any, name: str, tool: Any) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {"type": "web_search"}
    options = tool.web_search
    if options is None:
        return [entry]
    if options.search_context_size is not None:
        entry["search_context_size"] = options.search_context_size
    if options.user_location is not None:
        entry["user_location"] = {"type": "approximate",
                                  **sc.render_deep(options.user_location.model_dump(exclude_none=True))}
    if options.filters is not None:
        entry["filters"] = {"allowed_domains": [sc.render(d) for d in options.filters.allowed_domains]}
    return [entry]


@register_item("web_search_call")
async def on_call(sc: Any, item: dict[str, Any], response: dict[str, Any]) -> None:
    """Keep the call in the record; the service already searched."""
    calls = sc.result.extra.setdefault(RECORD_KEY, {"calls": []})["calls"]
    calls.append({"id": item.get("id"), "status": item.get("status"), "action": item.get("action")})
    return None


@register_event("response.web_search_call.searching")
def on_searching(sc: Any, event: dict[str, Any]) -> None:
    sc.status("running", "web search: searching")
