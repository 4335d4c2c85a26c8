"""Units: citations read from a response, the generated handbook, the emulator's
full-text helpers and the corpus flag of ``flowrun emulator``."""

from __future__ import annotations

import importlib.util

from flowkit import EXAMPLES, REPO, flowrun_cli, write

from flowrun.citations import citations
from flowrun.emulator.fulltext import best_passage, chunk_text, query_terms


def _response(text, annotations):
    return {"output": [{"type": "reasoning", "summary": []},
                       {"type": "message", "content": [{"type": "output_text", "text": text,
                                                        "annotations": annotations}]}]}


def test_every_citation_kind_with_its_text():
    text = "Intro line.\nFirst fact. Second fact.\nSee https://a.example/x for more."
    start = text.index("https")
    found = citations(_response(text, [
        {"type": "file_citation", "file_id": "file-1", "filename": "a.md", "index": text.index(" Second")},
        {"type": "file_citation", "file_id": "file-2", "filename": "b.md", "index": text.index("\nSee")},
        {"type": "url_citation", "url": "https://a.example/x", "title": "X", "start_index": start,
         "end_index": start + 19},
        {"type": "container_file_citation", "container_id": "cntr_1", "file_id": "cfile_1",
         "filename": "c.png", "start_index": 0, "end_index": 5},
        {"type": "file_path", "file_id": "file-3", "index": 0},
    ]))
    assert [c["type"] for c in found] == ["file", "file", "url", "container_file"]
    assert found[0]["text"] == "First fact."  # from the line start
    assert found[1]["text"] == "Second fact."  # from the previous citation on the line
    assert found[2] == {"type": "url", "url": "https://a.example/x", "title": "X", "text": "https://a.example/x",
                        "start_index": start, "end_index": start + 19}
    assert found[3]["text"] == "Intro" and found[3]["container_id"] == "cntr_1"


def test_bad_indexes_give_empty_text_not_errors():
    found = citations(_response("short", [{"type": "url_citation", "url": "u", "title": "t",
                                           "start_index": 3, "end_index": 99},
                                          {"type": "file_citation", "file_id": "f", "filename": "n", "index": -1}]))
    assert [c["text"] for c in found] == ["", ""]
    assert citations({"output": None}) == []


def test_handbook_is_generated_deterministically(tmp_path):
    spec = importlib.util.spec_from_file_location("make_handbook", REPO / "scripts" / "make_handbook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = module.write(tmp_path)
    committed = sorted((EXAMPLES / "data" / "handbook").glob("*.md"))
    assert len(written) == 50 == len(committed)
    assert {p.name: p.read_text() for p in written} == {p.name: p.read_text() for p in committed}


def test_chunks_overlap_and_keep_the_text():
    text = "one two  three\nfour five six seven"
    assert chunk_text(text, 4, 2) == ["one two  three\nfour", "three\nfour five six", "five six seven"]
    assert chunk_text("   ", 4, 2) == []
    assert query_terms("How do I get the VPN?") == ["get", "vpn"]
    assert query_terms("the of") == ["the", "of"]  # only stop words: keep them
    passage = best_passage("# VPN\n\nThe VPN is needed for finance.\nIt disconnects after\n12 hours.\n\nOther.",
                           ["vpn", "disconnect"])
    assert passage == "The VPN is needed for finance. It disconnects after 12 hours."


def test_emulator_command_checks_the_corpus(tmp_path):
    write(tmp_path / "pages/no-host/page.md", "# x\n")
    bad = flowrun_cli("emulator", "--port", "0", "--web-corpus", str(tmp_path / "pages"))
    assert bad.returncode == 2 and "page.md: no URL for this page" in bad.stderr
    assert "Traceback" not in bad.stderr
