"""PDF input end to end: flowrun -> openai SDK -> HTTP -> emulator, checked through the
emulator's report of what its model received."""

from __future__ import annotations

import base64
import sys

from flowkit import run_flow, step_error
from media_kit import assert_rejected_before_any_request, make_big_pdf, make_image, make_pdf, sha256

PAGES = ["Alpha page: revenue grew twelve percent.", "Bravo page: margins held.",
         "Charlie page: risks include currency."]

SUMMARY_FLOW = """
name: pdf
inputs:
  report: {type: file}
steps:
  summary:
    input:
      - text: Summarise this.
      - file: "{{ inputs.report }}"
        filename: report.pdf
"""


def test_generated_pdf_reaches_the_model_intact(tmp_path, emu):
    pdf = make_pdf(tmp_path / "quarterly.pdf", PAGES)
    result = run_flow(tmp_path, emu, SUMMARY_FLOW, {"report": str(pdf)})
    assert result.status == "succeeded", step_error(result, "summary")

    [got] = emu.inputs("summary")
    assert got["kind"] == "file" and got["source"] == "data_url" and got["filename"] == "report.pdf"
    assert got["mime"] == "application/pdf" and got["bytes"] == pdf.stat().st_size
    assert got["sha256"] == sha256(pdf)
    assert got["pages"] == 3
    assert [t.strip() for t in got["text"]] == PAGES

    # the request carried it inline as base64 file_data, byte for byte
    [post] = emu.posts("summary")
    part = post["body"]["input"][0]["content"][1]
    assert part["type"] == "input_file" and part["filename"] == "report.pdf"
    assert part["file_data"].startswith("data:application/pdf;base64,")
    assert base64.b64decode(part["file_data"].split(",", 1)[1]) == pdf.read_bytes()

    # and the default reply shows what the model "saw"
    text = result.steps["summary"].result.text
    assert f"[file report.pdf: 3 pages, sha256 {sha256(pdf)[:12]}: Alpha page: revenue grew" in text


UPLOAD_FLOW = """
name: upload
inputs:
  report: {type: file}
steps:
  first:
    input:
      - file: "{{ inputs.report }}"
        upload: true
      - text: Summarise.
  second:
    needs: [first]
    input:
      - file: "{{ inputs.report }}"
        upload: true
      - text: Again.
"""


def _uploads(emu):
    return [e for e in emu.journal() if e["method"] == "POST" and e["path"].endswith("/files")]


def test_upload_true_sends_a_file_id_with_purpose_user_data(tmp_path, emu):
    pdf = make_pdf(tmp_path / "report.pdf", PAGES[:2])
    result = run_flow(tmp_path, emu, UPLOAD_FLOW, {"report": str(pdf)})
    assert result.status == "succeeded", step_error(result, "first")

    # uploaded once for the whole run, before the first model request
    journal = emu.journal()
    assert [e["path"] for e in journal] == ["/v1/files", "/v1/responses", "/v1/responses"]
    assert journal[0]["headers"]["content-type"].startswith("multipart/form-data")
    ids = {p["body"]["input"][0]["content"][0].get("file_id") for p in emu.posts()}
    [file_id] = ids
    assert file_id and file_id.startswith("file-")

    with emu.sdk() as sdk:  # the Files API records the purpose it was given
        stored = sdk.files.retrieve(file_id)
        assert stored.purpose == "user_data" and stored.filename == "report.pdf"
        assert sdk.files.content(file_id).content == pdf.read_bytes()

    first = emu.inputs("first")[0]
    assert first["source"] == "file_id" and first["file_id"] == file_id
    assert first["pages"] == 2 and first["sha256"] == sha256(pdf)
    assert "[file report.pdf: 2 pages" in result.steps["first"].result.text


def test_upload_on_azure_uses_purpose_assistants(tmp_path, emu):
    pdf = make_pdf(tmp_path / "report.pdf", PAGES)
    result = run_flow(tmp_path, emu, UPLOAD_FLOW, {"report": str(pdf)}, provider=emu.azure_provider())
    assert result.status == "succeeded", step_error(result, "first")
    [upload] = _uploads(emu)
    assert upload["path"] == "/openai/v1/files"
    with emu.sdk(azure=True) as sdk:
        listing = sdk.files.list()
        assert [(f.filename, f.purpose) for f in listing.data] == [("report.pdf", "assistants")]
    assert emu.inputs("first")[0]["pages"] == 3


def test_a_file_id_input_is_sent_as_is(tmp_path, emu):
    pdf = make_pdf(tmp_path / "spec.pdf", PAGES[:1])
    with emu.sdk() as sdk:
        file_id = sdk.files.create(file=("spec.pdf", pdf.read_bytes()), purpose="user_data").id
    flow = f"""
    name: byid
    steps:
      read:
        input:
          - file: {file_id}
          - text: What does it say?
    """
    result = run_flow(tmp_path, emu, flow)
    assert result.status == "succeeded", step_error(result, "read")
    [post] = emu.posts("read")
    assert post["body"]["input"][0]["content"][0] == {"type": "input_file", "file_id": file_id}
    [got] = emu.inputs("read")
    assert got["pages"] == 1 and got["sha256"] == sha256(pdf) and got["filename"] == "spec.pdf"


def test_an_unknown_file_id_is_rejected_by_the_emulator(tmp_path, emu):
    flow = """
    name: missing
    steps:
      read:
        input: [{file: file-doesnotexist}, {text: hi}]
    """
    result = run_flow(tmp_path, emu, flow)
    assert result.status == "failed"
    error = step_error(result, "read")
    assert "400" in error and "file-doesnotexist" in error and "input[0].content[0].file_id" in error


def test_over_100_pages_is_rejected_before_any_request(tmp_path, emu):
    pdf = make_pdf(tmp_path / "long.pdf", [f"page {i}" for i in range(101)])
    flow = """
    name: long
    inputs:
      doc: {type: file}
    steps:
      read:
        input:
          - file: "{{ inputs.doc }}"
            upload: true
          - text: Summarise.
    """
    result = run_flow(tmp_path, emu, flow, {"doc": str(pdf)})
    assert_rejected_before_any_request(result, emu, "read", "101 pages", "limit of 100", str(pdf))


def test_pages_count_across_all_files_of_the_request(tmp_path, emu):
    a = make_pdf(tmp_path / "a.pdf", [f"a{i}" for i in range(60)])
    b = make_pdf(tmp_path / "b.pdf", [f"b{i}" for i in range(41)])
    flow = f"""
    name: two
    steps:
      read:
        input: [{{file: "{a}"}}, {{file: "{b}"}}, {{text: Compare.}}]
    """
    result = run_flow(tmp_path, emu, flow)
    assert_rejected_before_any_request(result, emu, "read", "101 pages", "a.pdf (60 pages)", "b.pdf (41 pages)")


def test_files_over_32_mb_together_are_rejected_before_any_request(tmp_path, emu):
    a = make_big_pdf(tmp_path / "big-a.pdf", 16.5)
    b = make_big_pdf(tmp_path / "big-b.pdf", 16.5)
    flow = f"""
    name: big
    steps:
      read:
        input: [{{file: "{a}"}}, {{file: "{b}", upload: true}}, {{text: Compare.}}]
    """
    result = run_flow(tmp_path, emu, flow)
    assert_rejected_before_any_request(result, emu, "read", "over the limit of 32.0 MB", "big-a.pdf", "big-b.pdf")


def test_a_file_part_must_be_a_pdf_whatever_its_name(tmp_path, emu):
    fake = tmp_path / "report.pdf"
    make_image(fake, "PNG")
    flow = f"""
    name: fake
    steps:
      read:
        input: [{{file: "{fake}"}}]
    """
    result = run_flow(tmp_path, emu, flow)
    assert_rejected_before_any_request(result, emu, "read", str(fake), "is image/png, not a PDF", "image part")


def test_an_unreadable_pdf_is_rejected_before_any_request(tmp_path, emu):
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n" + b"garbage " * 100)
    flow = f"""
    name: broken
    steps:
      read:
        input: [{{file: "{broken}"}}]
    """
    result = run_flow(tmp_path, emu, flow)
    assert_rejected_before_any_request(result, emu, "read", str(broken), "not a readable PDF")


def test_a_missing_file_is_a_clear_step_error(tmp_path, emu):
    flow = """
    name: missing
    steps:
      read:
        input: [{file: no/such/report.pdf}]
    """
    result = run_flow(tmp_path, emu, flow)
    assert_rejected_before_any_request(result, emu, "read", "no/such/report.pdf", "file not found")


def test_without_pypdf_the_emulator_reports_what_to_install(tmp_path, emu, monkeypatch):
    pdf = make_pdf(tmp_path / "nopypdf.pdf", ["Only without pypdf."])
    monkeypatch.setitem(sys.modules, "pypdf", None)  # as if the media extra were missing
    result = run_flow(tmp_path, emu, SUMMARY_FLOW, {"report": str(pdf)})
    assert result.status == "succeeded", step_error(result, "summary")  # flowrun counts pages by pattern
    [got] = emu.inputs("summary")
    assert "pages" not in got and "pypdf is not installed" in got["note"] and got["sha256"] == sha256(pdf)
    assert result.steps["summary"].result.text.endswith("[file report.pdf]")
