"""Artifacts are written atomically: a run killed with ``kill -9`` while an image is being
written (:mod:`flowrun.crash_points` event ``artifact``, phase ``inside``: the bytes are
in a temp file, not yet renamed) leaves no torn file under the image's name, and
``flowrun resume`` removes the temp file and saves the image whole."""

from __future__ import annotations

import base64
import json
import os

import pytest
from flowkit import write
from storekit import Zygote, resume_here, wait_until

from flowrun.store import RunStore


@pytest.fixture()
def zygote():
    z = Zygote()
    yield z
    z.close()


def test_image_killed_mid_write_leaves_no_torn_file_and_resume_clears_the_temp(tmp_path, emu, zygote):
    write(tmp_path / "flow.yaml", """
        name: draw
        steps:
          gen: {input: Draw a red lighthouse., tools: [image_generation]}
        outputs: {image: "{{ steps.gen.images[0] }}"}
    """)
    runs = tmp_path / "runs"
    ready = tmp_path / "paused.json"
    argv = ["run", str(tmp_path / "flow.yaml"), "--provider", "emulator", "--base-url", emu.base_url,
            "--json", "--run-dir", str(runs)]
    pid = zygote.start(argv, tmp_path, tmp_path / "out.json",
                       {"FLOWRUN_TEST_PAUSE_AT": "artifact:1:inside", "FLOWRUN_TEST_PAUSE_READY": str(ready)})
    try:
        wait_until(lambda: ready.exists(), timeout=60)
    finally:
        assert zygote.kill9(pid) == -9
    name = json.loads(ready.read_text())["detail"]
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    folder = run_dir / "artifacts" / "gen"
    assert not (folder / name).exists()  # never under its real name before it is whole
    (temp,) = folder.glob(".*.tmp")
    assert temp.name.startswith(f".{name}.{pid}.") and temp.stat().st_size > 0

    again = resume_here(emu, runs)

    assert again.status == "succeeded"
    assert not temp.exists() and list(run_dir.rglob("*.tmp")) == []
    image = again.outputs["image"]
    data = open(image, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" or data[:3] == b"\xff\xd8\xff" or data[:4] == b"RIFF"
    response = json.loads((run_dir / "responses" / "gen.json").read_text())
    (item,) = [i for i in response["output"] if i["type"] == "image_generation_call"]
    assert data == base64.b64decode(item["result"])


def test_clear_stale_files_keeps_live_writes_and_real_artifacts(tmp_path):
    store = RunStore(tmp_path, "r1")
    folder = store.dir / "artifacts" / "gen"
    row_folder = store.dir / "rows" / "3" / "artifacts" / "gen"
    for f in (folder, row_folder):
        f.mkdir(parents=True)
    dead = [folder / ".img.png.999999.1.tmp", row_folder / ".img.png.999999.1.tmp"]
    mine = folder / f".other.png.{os.getpid()}.1.tmp"  # this process is writing it
    real = [folder / "img.png", folder / "notes.1.2.tmp"]  # artifact names never start with a dot
    for p in [*dead, mine, *real]:
        p.write_bytes(b"x")
    store.clear_stale_files()
    assert [p.exists() for p in dead] == [False, False]
    assert mine.exists() and all(p.exists() for p in real)
