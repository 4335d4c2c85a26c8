"""web_search and file_search in flows, end to end: flowrun -> openai SDK -> HTTP ->
emulator. The requests are read from the emulator's journal; the results from
``steps.X.citations`` and the run record."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from flowkit import EXAMPLES, Recorder, record, run_file, run_flow, step_error, write

from flowrun.emulator.vector_stores import vector_stores

HANDBOOK = EXAMPLES / "data" / "handbook"

FILE_FLOW = """
name: fs
inputs:
  dept: {type: string, default: hr}
steps:
  ask:
    input: How many vacation days do new employees get?
    tools:
      - file_search:
          files:
            - "docs/*.md"
            - {file: docs/extra.txt, attributes: {dept: "it", year: 2026}}
          max_num_results: 4
          filters: {type: ne, key: dept, value: "{{ inputs.dept }}"}
          ranking_options: {score_threshold: 0.1}
    include: [file_search_call.results]
outputs:
  cited: "{{ steps.ask.citations | map(attribute='filename') | list }}"
"""


def _docs(tmp_path: Path) -> None:
    write(tmp_path / "docs/leave.md", "# Leave\n\nNew employees get 25 vacation days per year.\n")
    write(tmp_path / "docs/laptops.md", "# Laptops\n\nLaptops are replaced every three years.\n")
    write(tmp_path / "docs/extra.txt", "Extra vacation days can be bought in January.\n")


def _posts(emu, suffix):
    return [e for e in emu.journal() if e["method"] == "POST" and e["path"].endswith(suffix)]


def test_file_search_request_store_and_citations(emu, tmp_path):
    _docs(tmp_path)
    hooks = Recorder()
    result = run_flow(tmp_path, emu, FILE_FLOW, hooks=hooks)
    assert result.status == "succeeded", step_error(result, "ask")
    [body] = emu.bodies("ask")
    [tool] = body["tools"]
    store_id = tool["vector_store_ids"][0]
    assert tool == {"type": "file_search", "vector_store_ids": [store_id], "max_num_results": 4,
                    "filters": {"type": "ne", "key": "dept", "value": "hr"},
                    "ranking_options": {"score_threshold": 0.1}}
    assert body["include"] == ["file_search_call.results"]
    # the store: created with an expiry, files in one batch, with their attributes
    [create] = _posts(emu, "/vector_stores")
    assert create["body"]["expires_after"] == {"anchor": "last_active_at", "days": 7}
    [batch] = _posts(emu, f"/vector_stores/{store_id}/file_batches")
    attrs = {f.get("attributes", {}).get("dept") for f in batch["body"]["files"]}
    assert len(batch["body"]["files"]) == 3 and attrs == {None, "it"}
    uploads = [e for e in emu.journal() if e["path"].endswith("/files") and e["method"] == "POST"
               and "vector_stores" not in e["path"]]
    assert len(uploads) == 3
    # ne dept=hr: the untagged pages have no dept, so only extra.txt passes
    assert result.outputs["cited"] == ["extra.txt"]
    citation = result.steps["ask"].result.citations[0]
    assert citation["type"] == "file" and citation["text"] == "Extra vacation days can be bought in January."
    rec = record(result)["steps"]["ask"]
    assert rec["citations"] == result.steps["ask"].result.citations
    assert rec["file_search"]["calls"][0]["results"][0]["filename"] == "extra.txt"
    assert rec["file_search"]["vector_stores"][0]["created"] is True
    assert any(d and "files ready" in d for d in hooks.details())  # progress through the status hook
    # deleted at the end of the run, with the uploaded files
    deletes = emu.paths("DELETE")
    assert f"/v1/vector_stores/{store_id}" in deletes
    assert sum(1 for p in deletes if p.startswith("/v1/files/file-")) == 3
    assert store_id not in vector_stores(emu.server.emulator).stores


def test_keep_and_reuse_by_name(emu, tmp_path):
    _docs(tmp_path)
    flow = """
    name: keep
    steps:
      ask:
        input: laptops
        tools: [{file_search: {files: ["docs/*.md"], vector_store: team-docs, keep: true, expires_after: 30}}]
    outputs:
      cited: "{{ steps.ask.citations[0].filename }}"
    """
    first = run_flow(tmp_path, emu, flow)
    assert first.status == "succeeded", step_error(first, "ask")
    assert first.outputs["cited"] == "laptops.md"
    [create] = _posts(emu, "/vector_stores")
    assert create["body"]["name"] == "team-docs" and create["body"]["expires_after"]["days"] == 30
    assert not [p for p in emu.paths("DELETE") if "vector_stores" in p]  # kept
    emu.server.emulator.journal.clear()
    second = run_flow(tmp_path, emu, flow)  # same files: found by name, nothing uploaded
    assert second.status == "succeeded" and second.outputs["cited"] == "laptops.md"
    assert not _posts(emu, "/files") and not _posts(emu, "/vector_stores")
    assert record(second)["steps"]["ask"]["file_search"]["vector_stores"][0]["reused"] is True
    emu.server.emulator.journal.clear()
    write(tmp_path / "docs/laptops.md", "# Laptops\n\nLaptops are now replaced every four years.\n")
    third = run_flow(tmp_path, emu, flow)  # changed files: the store's files are replaced
    assert third.status == "succeeded"
    store_id = create["body"] and record(first)["steps"]["ask"]["file_search"]["vector_stores"][0]["id"]
    assert len([p for p in emu.paths("DELETE") if p.startswith(f"/v1/vector_stores/{store_id}/files/")]) == 2
    assert "four years" in third.steps["ask"].result.citations[0]["text"]


def test_existing_store_id_is_used_and_never_deleted(emu, client, tmp_path):
    fid = client.files.create(file=("p.md", b"The parking lottery runs every quarter."), purpose="assistants").id
    vs = client.vector_stores.create(name="mine", file_ids=[fid])
    result = run_flow(tmp_path, emu, f"""
    name: byid
    steps:
      ask:
        input: parking lottery
        tools: [{{file_search: {{vector_store: {vs.id}}}}}]
    """)
    assert result.status == "succeeded", step_error(result, "ask")
    assert emu.bodies("ask")[0]["tools"][0]["vector_store_ids"] == [vs.id]
    assert result.steps["ask"].result.citations[0]["file_id"] == fid
    assert not [p for p in emu.paths("DELETE") if "vector_stores" in p]


def test_one_store_per_run_for_steps_and_items(emu, tmp_path):
    _docs(tmp_path)
    result = run_flow(tmp_path, emu, """
    name: shared
    tools:
      docs: {file_search: {files: ["docs/*"]}}
    steps:
      many:
        for_each: [new employees, laptops, january]
        input: "{{ item }}"
        tools: [docs]
      inline:
        input: laptops
        tools: [{file_search: {files: ["docs/*"]}}]
    outputs:
      cited: "{{ steps.many | map(attribute='citations') | map('first') | map(attribute='filename') | list }}"
    """)
    assert result.status == "succeeded", (result.error, step_error(result, "many"), step_error(result, "inline"))
    assert len(_posts(emu, "/vector_stores")) == 1 and len(_posts(emu, "/file_batches")) == 1
    assert result.outputs["cited"] == ["leave.md", "laptops.md", "extra.txt"]


def test_unreadable_file_fails_the_step_naming_it(emu, tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/ok.md").write_text("fine")
    (tmp_path / "docs/blob.md").write_bytes(b"\x00\x01binary")
    result = run_flow(tmp_path, emu, """
    name: bad
    steps:
      ask: {input: x, tools: [{file_search: {files: ["docs/*.md"]}}]}
    """)
    assert result.status == "failed"
    error = step_error(result, "ask")
    assert "1 file(s) could not be indexed" in error and "blob.md" in error and "binary" in error
    assert not emu.posts("ask")  # no model request
    assert [p for p in emu.paths("DELETE") if "vector_stores" in p]  # cleaned up anyway


def test_missing_file_is_a_clear_error(emu, tmp_path):
    result = run_flow(tmp_path, emu, """
    name: missing
    steps:
      ask: {input: x, tools: [{file_search: {files: ["nope/*.md"]}}]}
    """)
    assert result.status == "failed"
    assert "file_search: files: nope/*.md: no such file" in step_error(result, "ask")
    assert not _posts(emu, "/vector_stores")


def test_web_search_request_and_citations(emu, tmp_path):
    result = run_flow(tmp_path, emu, """
    name: web
    inputs:
      site: {type: string, default: news.example.com}
    steps:
      look:
        input: Contoso Litware acquisition
        tools:
          - web_search:
              search_context_size: high
              user_location: {country: US, city: Seattle}
              filters: {allowed_domains: ["{{ inputs.site }}"]}
        include: [web_search_call.action.sources]
    outputs:
      urls: "{{ steps.look.citations | map(attribute='url') | list }}"
    """)
    assert result.status == "succeeded", step_error(result, "look")
    [body] = emu.bodies("look")
    assert body["tools"] == [{"type": "web_search", "search_context_size": "high",
                              "user_location": {"type": "approximate", "country": "US", "city": "Seattle"},
                              "filters": {"allowed_domains": ["news.example.com"]}}]
    assert body["include"] == ["web_search_call.action.sources"]
    urls = result.outputs["urls"]
    assert urls[0] == "https://news.example.com/contoso-acquires-litware"
    assert all(u.startswith("https://news.example.com/") for u in urls)
    first = result.steps["look"].result.citations[0]
    assert first["title"] == "Contoso buys Litware to add acoustic sensing"
    text = result.steps["look"].result.text
    assert text[first["start_index"]:first["end_index"]] == first["text"] and "240 million" in first["text"]
    calls = record(result)["steps"]["look"]["web_search"]["calls"]
    assert calls[0]["action"]["sources"][0]["url"] == urls[0]


def test_builtin_web_search_by_name_and_corpus_from_the_environment(emu, tmp_path, monkeypatch):
    write(tmp_path / "corpus/intranet.example.net/menu.md", "# Menu\n\nSoup of the day: tomato.\n")
    monkeypatch.setenv("FLOWRUN_EMULATOR_WEB_CORPUS", str(tmp_path / "corpus"))
    result = run_flow(tmp_path, emu, """
    name: env
    steps:
      look: {input: soup of the day, tools: [web_search]}
    """)
    assert result.status == "succeeded", step_error(result, "look")
    assert emu.bodies("look")[0]["tools"] == [{"type": "web_search"}]
    [citation] = result.steps["look"].result.citations
    assert citation["url"] == "https://intranet.example.net/menu" and citation["text"] == "Soup of the day: tomato."


def test_handbook_example_cites_the_right_page(emu, tmp_path):
    """The 50-page example set: each question's answer cites the one page holding the fact."""
    shutil.copytree(HANDBOOK, tmp_path / "data" / "handbook")
    questions = {
        "How many weeks of parental leave do partners get?": "hr-parental-leave.md",
        "How often are laptops replaced?": "it-laptops.md",
        "What is the hotel limit per night in London?": "finance-hotels.md",
        "How long are new employees on probation?": "hr-probation.md",
        "Where is bicycle storage?": "facilities-parking.md",
        "What is the daily meals allowance while travelling?": "finance-meals-allowance.md",
        "How do I report a phishing email?": "security-phishing.md",
        "How many characters must a password have?": "it-passwords.md",
    }
    flow = write(tmp_path / "qa.yaml", f"""
    name: qa
    tools:
      handbook: {{file_search: {{files: ["data/handbook/*.md"], max_num_results: 5}}}}
    steps:
      ask:
        for_each: {json.dumps(list(questions))}
        input: "{{{{ item }}}}"
        tools: [handbook]
    outputs:
      cited: "{{{{ steps.ask | map(attribute='citations') | map('first') | map(attribute='filename') | list }}}}"
    """)
    result = run_file(flow, emu, run_root=tmp_path / "runs")
    assert result.status == "succeeded", step_error(result, "ask")
    assert dict(zip(questions, result.outputs["cited"])) == questions
    assert len(_posts(emu, "/file_batches")) == 1
