"""The Ray engine's usage errors (exit 2, no traceback, no Ray started) and the sealing
of secrets for the workers' environment."""

from __future__ import annotations

import sys

from click.testing import CliRunner
from dataset_kit import csv_file, flow_file, tickets

from flowrun.cli import main
from flowrun.ray_engine.sealed import PREFIX, seal, unseal


def invoke(*args: str):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_engine_ray_without_a_dataset_is_a_usage_error(tmp_path):
    result = invoke("run", str(flow_file(tmp_path)), "--engine", "ray", "--provider", "emulator")
    assert result.exit_code == 2
    assert "--engine, --ray-address, --workers and --artifacts-dir go with --dataset FILE" in result.stderr


def test_ray_options_on_the_local_engine_are_a_usage_error(tmp_path):
    data = csv_file(tmp_path / "t.csv", tickets(2))
    result = invoke("run", str(flow_file(tmp_path)), "--dataset", str(data), "--workers", "2",
                    "--provider", "emulator")
    assert result.exit_code == 2
    assert "--workers goes with --engine ray" in result.stderr


def test_engine_ray_without_ray_installed_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as without it
    data = csv_file(tmp_path / "t.csv", tickets(2))
    result = invoke("run", str(flow_file(tmp_path)), "--dataset", str(data), "--engine", "ray",
                    "--provider", "emulator", "--run-dir", str(tmp_path / "runs"))
    assert result.exit_code == 2
    assert "--engine ray needs Ray, which is not installed" in result.stderr
    assert "pip install 'flowrun[ray]'" in result.stderr
    assert not (tmp_path / "runs").exists()  # refused before the run was set up


def test_sealed_secrets_need_both_halves():
    env, pads = seal({"TOKEN": "sk-abc-123-ünï", "OTHER": "x" * 40})
    assert set(env) == {PREFIX + "TOKEN", PREFIX + "OTHER"}
    assert all("sk-abc" not in v and "xxxx" not in v for v in [*env.values(), *pads.values()])
    environ = dict(env)
    assert unseal(pads, environ) == {"TOKEN": "sk-abc-123-ünï", "OTHER": "x" * 40}
    assert environ == {"TOKEN": "sk-abc-123-ünï", "OTHER": "x" * 40}  # sealed halves dropped
    again, again_pads = seal({"TOKEN": "sk-abc-123-ünï"})
    assert again[PREFIX + "TOKEN"] != env[PREFIX + "TOKEN"]  # a fresh pad each run
    assert again_pads["TOKEN"] != pads["TOKEN"]


def test_resume_with_ray_flags_of_a_local_run_is_a_usage_error(tmp_path, emu):
    data = csv_file(tmp_path / "t.csv", tickets(2))
    first = invoke("run", str(flow_file(tmp_path)), "--dataset", str(data), "--provider", "emulator",
                   "--base-url", emu.base_url, "--run-dir", str(tmp_path / "runs"), "--json")
    assert first.exit_code == 0, first.output
    result = invoke("resume", "last", "--run-dir", str(tmp_path / "runs"), "--workers", "2",
                    "--provider", "emulator", "--base-url", emu.base_url)
    assert result.exit_code == 2
    assert "did not run on Ray: --ray-address and --workers go with a dataset run on Ray" in result.stderr
