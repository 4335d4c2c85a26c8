"""Helpers for the Ray tests: a dataset run on the Ray engine (in-process, or as the CLI
in a subprocess), results lines compared without the emulator's random response ids."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from dataset_kit import flow_file
from flowkit import cli_env

from flowrun.dataset.launch import run_dataset


def ray_run(tmp_path: Path, emu: Any, cluster: Any, dataset: Path, *, flow: Path | None = None,
            workers: int = 2, concurrency: int = 8, rpm: float | None = None, tpm: float | None = None,
            results: Path | None = None, runs: str = "runs", artifacts_dir: Path | None = None) -> Any:
    """``flowrun run FLOW --dataset FILE --engine ray --ray-address ADDR --json`` in-process,
    on the test emulator (``emu``), or with ``emu=None`` on the emulator the driver serves."""
    engine = {"name": "ray", "address": cluster.address, "workers": workers,
              "artifacts_dir": str(artifacts_dir) if artifacts_dir else None}
    return run_dataset(str(flow or flow_file(tmp_path)), str(dataset), str(results) if results else None,
                       (), (), None, "emulator", emu.base_url if emu else None, True, concurrency,
                       str(tmp_path / runs),
                       None, rpm, tpm, engine=engine)


def ray_cli(tmp_path: Path, emu: Any, cluster: Any, flow: Path, dataset: Path, results: Path,
            *extra: str) -> subprocess.Popen[bytes]:
    """The same run as the CLI, in a subprocess (to kill it, or its workers, mid-run)."""
    return subprocess.Popen(
        [sys.executable, "-m", "flowrun.cli", "run", str(flow), "--dataset", str(dataset), "--json",
         "--provider", "emulator", "--base-url", emu.base_url, "--results", str(results),
         "--run-dir", str(tmp_path / "runs"), "--engine", "ray", "--ray-address", cluster.address, *extra],
        cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def comparable(path: Path) -> set[str]:
    """The results lines as a set, each without its steps' response ids (random per request)."""
    out = set()
    for text in Path(path).read_text(encoding="utf-8").splitlines():
        line = json.loads(text)
        for step in (line.get("steps") or {}).values():
            step.pop("response_id", None)
        out.add(json.dumps(line, sort_keys=True))
    return out
