"""The hosted search tools inside POST /responses on the emulator, with the real SDK:
the items and stream events conform to the spec, the options change what is searched,
and the answer cites what was found."""

from __future__ import annotations

import json
import time
import urllib.request

import openai
import pytest
from flowkit import assert_conforms, parse_sse, write

from flowrun.emulator.vector_stores import PROCESSING_S
from flowrun.emulator.web_search import CorpusError, set_web_corpus


def _store(client, pages):
    ids = [client.files.create(file=(n, t.encode()), purpose="assistants").id for n, t in pages.items()]
    vs = client.vector_stores.create(name="t", file_ids=ids)
    time.sleep(PROCESSING_S + 0.05)
    return vs.id


def _sse(emu, body):
    """A streamed POST /responses, as raw server-sent events."""
    request = urllib.request.Request(emu.base_url + "/responses", method="POST",
                                     data=json.dumps({"model": "gpt-4.1", "stream": True, **body}).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request) as resp:
        return parse_sse(resp.read().decode())


def _message(response):
    return next(o for o in response["output"] if o["type"] == "message")["content"][0]


def test_file_search_answer_cites_the_file_and_conforms(client):
    vs = _store(client, {"leave.md": "New employees get 25 days of paid vacation per year.",
                         "it.md": "Laptops are replaced every three years."})
    tool = {"type": "file_search", "vector_store_ids": [vs]}
    plain = client.post("/responses", cast_to=object, body={"model": "gpt-4.1", "input": "vacation days?",
                                                            "tools": [tool]})
    assert_conforms("Response", plain)
    call = plain["output"][0]
    assert call["type"] == "file_search_call" and call["queries"] == ["vacation days?"]
    assert call["results"] is None  # not asked for
    part = _message(plain)
    [ann] = part["annotations"]
    assert ann["type"] == "file_citation" and ann["filename"] == "leave.md"
    assert part["text"][:ann["index"]].endswith("25 days of paid vacation per year.")
    asked = client.post("/responses", cast_to=object, body={
        "model": "gpt-4.1", "input": "vacation days?", "tools": [tool], "include": ["file_search_call.results"]})
    assert [r["filename"] for r in asked["output"][0]["results"]] == ["leave.md"]


def test_file_search_streams_conforming_events(emu, client):
    vs = _store(client, {"a.md": "The parking lottery runs every quarter."})
    events = _sse(emu, {"input": "parking lottery", "tools": [{"type": "file_search", "vector_store_ids": [vs]}]})
    types = [e["type"] for e in events]
    assert types[2:6] == ["response.output_item.added", "response.file_search_call.in_progress",
                          "response.file_search_call.searching", "response.file_search_call.completed"]
    assert "response.output_text.annotation.added" in types
    for event in events:
        assert_conforms("ResponseStreamEvent", event)


def test_unknown_vector_store_is_404(client):
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt-4.1", input="x",
                                tools=[{"type": "file_search", "vector_store_ids": ["vs_nope"]}])


def test_web_search_options_and_sources(client):
    body = {"model": "gpt-4.1", "input": "Contoso revenue", "include": ["web_search_call.action.sources"],
            "tools": [{"type": "web_search", "search_context_size": "low",
                       "filters": {"allowed_domains": ["news.example.com"]}}]}
    answer = client.post("/responses", cast_to=object, body=body)
    assert_conforms("Response", answer)
    action = answer["output"][0]["action"]
    assert action["query"] == "Contoso revenue"
    assert action["sources"] and all(s["url"].startswith("https://news.example.com/") for s in action["sources"])
    part = _message(answer)
    assert len(part["annotations"]) == 1  # low: one page
    ann = part["annotations"][0]
    assert ann["url"] == action["sources"][0]["url"]
    assert "Contoso" in part["text"][ann["start_index"]:ann["end_index"]]
    wide = client.post("/responses", cast_to=object, body={**body, "include": [], "tools": [
        {"type": "web_search", "search_context_size": "high"}]})
    assert "sources" not in wide["output"][0]["action"]
    hosts = {a["url"].split("/")[2] for a in _message(wide)["annotations"]}
    assert len(_message(wide)["annotations"]) == 5 and "contoso.example.com" in hosts


def test_user_location_favours_pages_about_the_place(client):
    def first(location):
        tool = {"type": "web_search", "search_context_size": "low"}
        if location:
            tool["user_location"] = {"type": "approximate", **location}
        answer = client.post("/responses", cast_to=object,
                             body={"model": "gpt-4.1", "input": "Contoso news", "tools": [tool]})
        return _message(answer)["annotations"][0]["url"]

    assert first({"city": "London", "country": "GB"}) == "https://news.example.com/contoso-london-office"
    assert first(None) != "https://news.example.com/contoso-london-office"


def test_web_search_streams_conforming_events(emu):
    events = _sse(emu, {"input": "Fabrikam bicycles", "tools": [{"type": "web_search"}]})
    assert "response.web_search_call.searching" in [e["type"] for e in events]
    for event in events:
        assert_conforms("ResponseStreamEvent", event)


def test_own_corpus_urls_from_front_matter_html_and_path(emu, client, tmp_path):
    write(tmp_path / "pages/front.md", "---\nurl: https://docs.example.net/guide\ntitle: The guide\n---\n"
          "Zebras are striped.\n")
    write(tmp_path / "pages/page.html", '<html><head><title>Giraffes</title>'
          '<link rel="canonical" href="https://zoo.example.net/giraffes"></head>'
          "<body><p>Giraffes are tall zebras' neighbours.</p><script>zebra()</script></body></html>")
    write(tmp_path / "pages/wiki.example.net/animals/index.md", "# Animals\n\nZebras and giraffes live here.\n")
    set_web_corpus(emu.server.emulator, tmp_path / "pages")
    answer = client.post("/responses", cast_to=object, body={"model": "gpt-4.1", "input": "zebras",
                                                             "tools": [{"type": "web_search"}]})
    got = {(a["url"], a["title"]) for a in _message(answer)["annotations"]}
    assert got == {("https://docs.example.net/guide", "The guide"), ("https://zoo.example.net/giraffes", "Giraffes"),
                   ("https://wiki.example.net/animals/", "Animals")}
    write(tmp_path / "bad/nohost.md", "# No URL\n")
    with pytest.raises(CorpusError, match="nohost.md: no URL"):
        set_web_corpus(emu.server.emulator, tmp_path / "bad")


def test_scripted_search_kinds(emu, client):
    vs = _store(client, {"a.md": "The kitchen fridge is cleared every Friday."})
    emu.script({"steps": {"s": [{"file_search": {"query": "fridge cleared", "text": "From the handbook:"}}],
                          "w": [{"web_search": {"query": "Litware acquisition"}}]}})
    fs = client.responses.create(model="gpt-4.1", input="anything", metadata={"flowrun_step": "s"},
                                 tools=[{"type": "file_search", "vector_store_ids": [vs]}])
    assert fs.output[0].queries == ["fridge cleared"]
    assert fs.output_text.startswith("From the handbook:") and "Friday" in fs.output_text
    ws = client.responses.create(model="gpt-4.1", input="anything", metadata={"flowrun_step": "w"},
                                 tools=[{"type": "web_search"}])
    assert ws.output[1].content[0].annotations[0].url == "https://news.example.com/contoso-acquires-litware"
    with pytest.raises(openai.BadRequestError, match="no web_search tool"):
        client.responses.create(model="gpt-4.1", input="x", metadata={"flowrun_step": "w"})


def test_no_search_when_the_tool_may_not_be_used(client):
    tools = [{"type": "web_search"}]
    none = client.responses.create(model="gpt-4.1", input="Contoso", tools=tools, tool_choice="none")
    assert [o.type for o in none.output] == ["message"]
    first = client.responses.create(model="gpt-4.1", input="Contoso", tools=tools)
    assert first.output[0].type == "web_search_call"
    again = client.responses.create(model="gpt-4.1", previous_response_id=first.id, tools=tools,
                                    input="and now?")
    assert again.output[0].type == "web_search_call"  # a new user message: a new search
    answered = client.responses.create(model="gpt-4.1", tools=tools, input=[
        {"role": "user", "content": "Contoso"},
        {"type": "function_call", "call_id": "call_x", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_x", "output": "ok"}])
    assert [o.type for o in answered.output] == ["message"]  # answers the tool output, no search
