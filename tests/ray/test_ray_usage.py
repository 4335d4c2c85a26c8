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


def test_the_budget_keeper_learns_from_any_workers_headers_and_429s():
    """The keeper (the actor's class, called directly): headers one worker reports set the
    pool every worker draws from; a 429 one worker meets pauses them all."""
    import asyncio
    import time

    from flowrun.ray_engine.budget import BudgetKeeper

    async def scenario():
        keeper = BudgetKeeper(None, None, None, learn=True)
        first = await keeper.admit("gpt-4.1", 100, 50)  # nothing known yet: admitted at once
        await keeper.settle(first, {"x-ratelimit-limit-requests": "120", "x-ratelimit-remaining-requests": "0",
                                    "x-ratelimit-reset-requests": "300ms"},
                            {"input_tokens": 90, "output_tokens": 40, "total_tokens": 130})
        assert (await keeper.describe())["rpm"] == 120.0  # learned from the headers
        started = time.monotonic()
        second = await keeper.admit("gpt-4.1", 100, 50)  # remaining 0: waits for the reset
        waited = time.monotonic() - started
        await keeper.refused(second, 429, 0.2)
        started = time.monotonic()
        await keeper.admit("gpt-4.1", 100, 50)
        return waited, time.monotonic() - started, await keeper.describe()

    waited, paused, described = asyncio.run(scenario())
    assert waited >= 0.25 and paused >= 0.15
    assert described["requests"] == 3 and described["rejected"] == 1


def test_an_unreachable_cluster_is_a_usage_error_at_once(tmp_path):
    from flowrun.ray_engine.local_cluster import free_port

    data = csv_file(tmp_path / "t.csv", tickets(2))
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    result = invoke("run", str(flow_file(tmp_path)), "--dataset", str(data), "--engine", "ray",
                    "--ray-address", address, "--provider", "emulator", "--run-dir", str(tmp_path / "runs"))
    assert result.exit_code == 2
    assert f"cannot reach the Ray cluster at {address}" in result.stderr
