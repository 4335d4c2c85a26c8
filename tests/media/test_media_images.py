"""Image input, image generation and edits end to end (flowrun -> openai SDK -> HTTP ->
emulator), with the images checked on disk by Pillow."""

from __future__ import annotations

import base64
import io
import sys

import openai
import pytest
from flowkit import assert_conforms, record, run_flow, step_error
from media_kit import assert_rejected_before_any_request, make_image, make_pdf, post_raw
from PIL import Image

from flowrun.emulator.images import prompt_colour
from flowrun.errors import SpecError

# --------------------------------------------------------------------------- image input


def test_a_local_image_is_sent_as_a_data_url_of_its_real_type(tmp_path, emu):
    lying = tmp_path / "photo.jpg"  # a PNG with a .jpg name
    data = make_image(lying, "PNG", (40, 30))
    flow = f"""
    name: look
    steps:
      look:
        input:
          - text: What is this?
          - image: "{lying}"
            detail: low
    """
    result = run_flow(tmp_path, emu, flow)
    assert result.status == "succeeded", step_error(result, "look")
    part = emu.posts("look")[0]["body"]["input"][0]["content"][1]
    assert part == {"type": "input_image", "detail": "low",
                    "image_url": "data:image/png;base64," + base64.b64encode(data).decode()}
    [got] = emu.inputs("look")
    assert (got["mime"], got["width"], got["height"], got["source"]) == ("image/png", 40, 30, "data_url")


def test_urls_and_file_ids_pass_through_and_upload_uses_vision(tmp_path, emu):
    local = tmp_path / "chart.webp"
    make_image(local, "WEBP")
    with emu.sdk() as sdk:
        file_id = sdk.files.create(file=("ref.png", make_image(None, "PNG")), purpose="vision").id
    flow = f"""
    name: refs
    steps:
      look:
        input:
          - image: https://example.com/cat.png
          - image: {file_id}
            detail: high
          - image: "{local}"
            upload: true
    """
    result = run_flow(tmp_path, emu, flow)
    assert result.status == "succeeded", step_error(result, "look")
    journal = emu.journal()  # the test's own upload, flowrun's upload, the model request
    assert [e["path"] for e in journal] == ["/v1/files", "/v1/files", "/v1/responses"]
    content = journal[2]["body"]["input"][0]["content"]
    assert content[0] == {"type": "input_image", "detail": "auto", "image_url": "https://example.com/cat.png"}
    assert content[1] == {"type": "input_image", "detail": "high", "file_id": file_id}
    uploaded = content[2]["file_id"]
    with emu.sdk() as sdk:
        assert sdk.files.retrieve(uploaded).purpose == "vision"
    sources = [(e["source"], e.get("mime")) for e in emu.inputs("look")]
    assert sources == [("url", None), ("file_id", "image/png"), ("file_id", "image/webp")]


@pytest.mark.parametrize("kind,needle", [("pdf", "is application/pdf, not an image"),
                                         ("bmp", "is image/bmp, not an image"),
                                         ("truncated", "not a readable image")])
def test_images_the_model_cannot_take_fail_before_any_request(tmp_path, emu, kind, needle):
    path = tmp_path / f"pic.{kind}"
    if kind == "pdf":
        make_pdf(path, ["x"])
    elif kind == "bmp":
        make_image(path, "BMP")
    else:
        path.write_bytes(make_image(None, "PNG", (200, 200))[:80])
    flow = f"""
    name: bad
    steps:
      look:
        input: [{{image: "{path}"}}]
    """
    result = run_flow(tmp_path, emu, flow)
    assert_rejected_before_any_request(result, emu, "look", needle, str(path))


def test_the_emulator_rejects_bad_images_and_file_ids(emu):
    png = base64.b64encode(make_image(None, "PNG")).decode()
    with emu.sdk() as sdk:
        pdf_id = sdk.files.create(file=("a.pdf", b"%PDF-1.4\n%%EOF"), purpose="user_data").id
        bad = {
            "data:image/jpeg;base64," + png: "says 'image/jpeg' but the data is image/png",
            "data:image/png;base64,%%%": "does not decode",
            "data:image/svg+xml;base64," + png: "unsupported image type",
        }
        for url, needle in bad.items():
            with pytest.raises(openai.BadRequestError, match=needle):
                sdk.responses.create(model="m", input=[{"role": "user", "content": [
                    {"type": "input_image", "detail": "auto", "image_url": url}]}])
        for part, needle in [({"type": "input_image", "detail": "auto", "file_id": "file-nope"}, "no file"),
                             ({"type": "input_image", "detail": "auto", "file_id": pdf_id}, "not an image"),
                             ({"type": "input_file", "file_id": "file-nope"}, "no file"),
                             ({"type": "input_file", "filename": "x.pdf",
                               "file_data": "data:application/pdf;base64," + png}, "data is image/png")]:
            with pytest.raises(openai.BadRequestError, match=needle):
                sdk.responses.create(model="m", input=[{"role": "user", "content": [part]}])
        ok = sdk.responses.create(model="m", input=[{"role": "user", "content": [
            {"type": "input_image", "detail": "auto", "image_url": "data:image/png;base64," + png}]}])
        assert ok.status == "completed"


# --------------------------------------------------------------------------- generation and edits

ROUND_TRIP = """
name: roundtrip
defaults: {model: gpt-4.1}
steps:
  gen:
    input: Draw a red lighthouse.
    stream: true
    tools:
      - image_generation: {size: 1024x1536, quality: low, partial_images: 2}
  edit_chain:
    continue: gen
    input: Make the beam yellow.
    tools: [image_generation]
  edit_ref:
    input:
      - text: Add a boat.
      - image: "{{ steps.gen.images[0] }}"
    tools:
      - image_generation: {output_format: png}
outputs:
  original: "{{ steps.gen.images[0] }}"
"""


def _open(path):
    img = Image.open(path)
    img.load()
    return img


def test_generate_then_edit_round_trip(tmp_path, emu):
    result = run_flow(tmp_path, emu, ROUND_TRIP)
    assert result.status == "succeeded", {s: step_error(result, s) for s in result.steps}
    run_dir = result.run_dir.resolve()

    [gen_path] = result.steps["gen"].result.images
    gen = _open(gen_path)
    assert gen.format == "PNG" and gen.size == (1024, 1536)
    assert gen.getpixel((3, 3))[:3] == prompt_colour("Draw a red lighthouse.")
    assert result.outputs["original"] == gen_path and run_dir in __import__("pathlib").Path(gen_path).parents

    # partial images: saved, real PNGs of the same size, coarser than the final image
    rec = record(result)["steps"]
    partials = rec["gen"]["partial_images"]
    assert len(partials) == 2
    for p in partials:
        img = _open(p)
        assert img.format == "PNG" and img.size == (1024, 1536) and img.tobytes() != gen.tobytes()
    assert rec["gen"]["image_generation"][0]["revised_prompt"] == "Draw a red lighthouse."
    assert rec["gen"]["image_generation"][0]["action"] == "generate"

    # continue: the emulator sees the earlier image through previous_response_id and edits it
    [chain_post] = emu.posts("edit_chain")
    assert chain_post["body"]["previous_response_id"] == result.steps["gen"].result.response_id
    [chain_path] = result.steps["edit_chain"].result.images
    chained = _open(chain_path)
    assert chained.size == gen.size
    assert chained.getpixel((3, 3)) == gen.getpixel((3, 3))           # the original shows through
    assert chained.getpixel((3, 1530))[:3] == prompt_colour("Make the beam yellow.")  # the edit band
    assert rec["edit_chain"]["image_generation"][0]["action"] == "edit"

    # an earlier step's image as input: sent as a data URL, byte for byte, and edited
    ref_part = emu.posts("edit_ref")[0]["body"]["input"][0]["content"][1]
    assert base64.b64decode(ref_part["image_url"].split(",", 1)[1]) == open(gen_path, "rb").read()
    edited = _open(result.steps["edit_ref"].result.images[0])
    assert edited.getpixel((3, 3)) == gen.getpixel((3, 3))
    assert edited.getpixel((3, 1530))[:3] == prompt_colour("Add a boat.")

    # the tool options reached the request
    tool = emu.posts("gen")[0]["body"]["tools"][0]
    assert tool == {"type": "image_generation", "size": "1024x1536", "quality": "low", "partial_images": 2}


def test_output_formats_and_transparency(tmp_path, emu):
    flow = """
    name: formats
    steps:
      jpeg:
        input: A jpeg.
        tools: [{image_generation: {output_format: jpeg, output_compression: 70, size: 1024x1024}}]
      webp:
        input: A webp.
        tools: [{image_generation: {output_format: webp, size: 1536x1024}}]
      clear:
        input: A sticker.
        tools: [{image_generation: {background: transparent}}]
    """
    result = run_flow(tmp_path, emu, flow)
    assert result.status == "succeeded"
    jpeg = _open(result.steps["jpeg"].result.images[0])
    webp = _open(result.steps["webp"].result.images[0])
    clear = _open(result.steps["clear"].result.images[0])
    assert (jpeg.format, jpeg.size) == ("JPEG", (1024, 1024))
    assert result.steps["jpeg"].result.images[0].endswith(".jpeg")
    assert (webp.format, webp.size) == ("WEBP", (1536, 1024))
    assert clear.mode == "RGBA" and clear.getpixel((2, 2))[3] == 0
    assert record(result)["steps"]["clear"]["image_generation"][0]["background"] == "transparent"


def test_transparent_jpeg_is_refused_before_sending(tmp_path, emu):
    flow = """
    name: bad
    steps:
      draw:
        input: x
        tools: [{image_generation: {background: transparent, output_format: jpeg}}]
    """
    # validate refuses it (tests/fixtures/broken/image-options-rejected.yaml), so no run starts
    with pytest.raises(SpecError, match="png or webp"):
        run_flow(tmp_path, emu, flow)
    assert emu.bodies() == []


AZURE_DRAW_FLOW = """
name: az
steps:
  draw:
    input: Draw a cat.
    tools: [image_generation]
"""


def test_azure_sends_the_image_deployment_header(tmp_path, emu):
    result = run_flow(tmp_path, emu, AZURE_DRAW_FLOW, provider=emu.azure_provider("my-gpt-image-1"))
    assert result.status == "succeeded", step_error(result, "draw")
    [post] = emu.posts("draw")
    assert post["path"] == "/openai/v1/responses"
    assert post["headers"]["x-ms-oai-image-generation-deployment"] == "my-gpt-image-1"
    assert _open(result.steps["draw"].result.images[0]).format == "PNG"


def test_azure_without_an_image_deployment_fails_before_sending(tmp_path, emu):
    result = run_flow(tmp_path, emu, AZURE_DRAW_FLOW, provider=emu.azure_provider(None))
    assert_rejected_before_any_request(result, emu, "draw", "AZURE_OPENAI_IMAGE_DEPLOYMENT")


def test_model_chosen_names_cannot_escape_the_run_directory(tmp_path, emu):
    emu.script({"steps": {"draw": [{"image": {"prompt": "p", "id": "../../../etc/passwd", "count": 2}}],
                          "many": [{"image": {"prompt": "q", "id": "..\\..\\evil/../x.png"}}]}})
    flow = """
    name: escape
    steps:
      draw:
        input: Draw.
        stream: true
        tools: [{image_generation: {partial_images: 1}}]
      many:
        for_each: [1, 2]
        input: "Draw {{ item }}."
        tools: [image_generation]
    """
    result = run_flow(tmp_path, emu, flow)
    assert result.status == "succeeded", step_error(result, "draw")
    run_dir = result.run_dir.resolve()
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".png", ""))
    images = [p for p in written if p.suffix == ".png"]
    assert len(images) == 2 + 2 + 2  # two images and a partial of each in draw, one per item in many
    for p in images:
        assert run_dir / "artifacts" in p.resolve().parents
        assert ".." not in p.name and "/" not in p.name and "\\" not in p.name
        assert _open(p).format == "PNG"
    assert not (tmp_path / "etc").exists() and not list(tmp_path.parent.glob("etc/passwd*"))
    names = sorted(p.name for p in (run_dir / "artifacts" / "draw").iterdir())
    assert names == ["passwd.partial0.png", "passwd.png", "passwd_2.partial0.png", "passwd_2.png"]
    assert sorted(p.name for p in (run_dir / "artifacts").glob("many.*/*")) == ["x.png.png", "x.png.png"]


def test_a_failed_image_call_fails_the_step(tmp_path, emu):
    emu.script({"steps": {"draw": [{"image": {"status": "failed"}}]}})
    flow = """
    name: fail
    steps:
      draw:
        input: Draw.
        tools: [image_generation]
    """
    result = run_flow(tmp_path, emu, flow)
    assert result.status == "failed" and "image generation" in step_error(result, "draw")
    assert "failed" in step_error(result, "draw")


def test_scripted_images_text_and_revised_prompt(tmp_path, emu):
    emu.script({"steps": {"draw": [{"image": {"prompt": "a blue fox", "revised_prompt": "A blue fox, flat style",
                                              "text": "Here is your fox.", "size": "512x512"}}]}})
    flow = """
    name: scripted
    steps:
      draw:
        input: Draw anything.
        tools: [image_generation]
    """
    result = run_flow(tmp_path, emu, flow)
    assert result.status == "succeeded", step_error(result, "draw")
    res = result.steps["draw"].result
    assert res.text == "Here is your fox."
    img = _open(res.images[0])
    assert img.size == (512, 512) and img.getpixel((2, 2))[:3] == prompt_colour("a blue fox")
    assert record(result)["steps"]["draw"]["image_generation"][0]["revised_prompt"] == "A blue fox, flat style"


# --------------------------------------------------------------------------- the emulator's answers


def test_emulator_image_answers_conform_and_stream_in_order(emu):
    tool = {"type": "image_generation", "partial_images": 3, "size": "1024x1024", "output_format": "webp"}
    assert_conforms("Response", post_raw(emu, {"model": "gpt-4.1", "input": "Draw a kite.", "tools": [tool]}))
    with emu.sdk() as sdk:
        plain = sdk.responses.create(model="gpt-4.1", input="Draw a kite.", tools=[tool])
        call = plain.output[0]
        assert call.type == "image_generation_call" and call.status == "completed"
        assert call.revised_prompt == "Draw a kite." and call.size == "1024x1024" and call.output_format == "webp"
        assert plain.output[1].content[0].text == "[emulator] generated image: Draw a kite."

        seen = [e.type for e in sdk.responses.create(model="gpt-4.1", input="Draw a kite.", tools=[tool], stream=True)]
    events = post_raw(emu, {"model": "gpt-4.1", "input": "Draw a kite.", "tools": [tool], "stream": True})
    assert [e["type"] for e in events] == seen  # the SDK parses every event
    for e in events:
        assert_conforms("ResponseStreamEvent", e)
    kinds = [e["type"] for e in events]
    image_events = [k.rsplit(".", 1)[1] for k in kinds if k.startswith("response.image_generation_call.")]
    assert image_events == ["in_progress", "generating", "partial_image", "partial_image", "partial_image", "completed"]
    added = next(e for e in events if e["type"] == "response.output_item.added")
    assert added["item"]["status"] == "in_progress" and added["item"].get("result") is None
    partial = [e for e in events if e["type"].endswith("partial_image")]
    assert [p["partial_image_index"] for p in partial] == [0, 1, 2]
    final = events[-1]["response"]["output"][0]["result"]
    assert Image.open(io.BytesIO(base64.b64decode(final))).format == "WEBP"
    assert all(Image.open(io.BytesIO(base64.b64decode(p["partial_image_b64"]))).size == (1024, 1024) for p in partial)


def test_default_rule_needs_the_tool_and_respects_tool_choice_none(emu):
    with emu.sdk() as sdk:
        none = sdk.responses.create(model="m", input="Draw.", tools=[{"type": "image_generation"}], tool_choice="none")
        assert [o.type for o in none.output] == ["message"]
        plain = sdk.responses.create(model="m", input="Draw.")
        assert [o.type for o in plain.output] == ["message"]
        emu.script({"default": [{"image": "a fox"}]})
        with pytest.raises(openai.BadRequestError, match="no image_generation tool"):
            sdk.responses.create(model="m", input="Draw.")


def test_an_edit_of_an_uploaded_image_derives_from_it(emu):
    base = make_image(None, "PNG", (300, 200), colour=(10, 200, 30))
    with emu.sdk() as sdk:
        file_id = sdk.files.create(file=("base.png", base), purpose="vision").id
        r = sdk.responses.create(model="m", tools=[{"type": "image_generation"}], input=[{"role": "user", "content": [
            {"type": "input_text", "text": "Add a hat."},
            {"type": "input_image", "detail": "auto", "file_id": file_id}]}])
    call = r.output[0]
    assert call.action == "edit" and call.size == "300x200"
    img = Image.open(io.BytesIO(base64.b64decode(call.result)))
    assert img.getpixel((5, 5))[:3] == (10, 200, 30) and img.getpixel((5, 195))[:3] == prompt_colour("Add a hat.")
    assert r.output[1].content[0].text == "[emulator] edited image: Add a hat."


def test_manual_chaining_resends_the_image_and_the_edit_sees_it(tmp_path, emu):
    flow = """
    name: manual
    defaults: {store: false}
    steps:
      gen:
        input: Draw a boat.
        tools: [image_generation]
      edit:
        continue: {step: gen, mode: manual}
        input: Make it red.
        tools: [image_generation]
    """
    result = run_flow(tmp_path, emu, flow)
    assert result.status == "succeeded", step_error(result, "edit")
    sent = emu.posts("edit")[0]["body"]
    assert "previous_response_id" not in sent
    resent = [i for i in sent["input"] if i.get("type") == "image_generation_call"]
    gen_path = result.steps["gen"].result.images[0]
    assert len(resent) == 1 and base64.b64decode(resent[0]["result"]) == open(gen_path, "rb").read()
    gen, edited = _open(gen_path), _open(result.steps["edit"].result.images[0])
    assert edited.getpixel((3, 3)) == gen.getpixel((3, 3))
    assert edited.getpixel((3, 1020))[:3] == prompt_colour("Make it red.")


def test_without_pillow_the_emulator_says_what_to_install(emu, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)  # as if the media extra were missing
    with emu.sdk() as sdk:
        with pytest.raises(openai.BadRequestError, match=r"needs Pillow.*flowrun\[media\]"):
            sdk.responses.create(model="m", input="Draw.", tools=[{"type": "image_generation"}])
