"""ff as users install it: a wheel built from this tree, installed into a fresh virtualenv
outside the source tree, runs `ff serve` (embedded Valkey) and accepts an execution. The
function library must ship inside the package for that to work."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from ff.client import ApiClient
from ff.embedded import free_loopback_port
from tests.api.test_serve import serve_env, stop, wait_healthy

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _run(*argv: str | Path, cwd: Path) -> None:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


async def test_a_wheel_in_a_fresh_virtualenv_serves(tmp_path: Path) -> None:
    wheels, venv, source = tmp_path / "wheels", tmp_path / "venv", tmp_path / "source"
    # Built from a copy: a build leaves build/ and *.egg-info beside the sources.
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".ff", "build", "*.egg-info", "__pycache__", ".mypy_cache"))
    await trio.to_thread.run_sync(lambda: _run(
        sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, source,
        cwd=tmp_path))
    [wheel] = wheels.glob("flowfabric-*.whl")
    await trio.to_thread.run_sync(lambda: _run(sys.executable, "-m", "venv", venv, cwd=tmp_path))
    await trio.to_thread.run_sync(lambda: _run(
        venv / "bin" / "python", "-m", "pip", "install", "-q", wheel, cwd=tmp_path))

    data_dir = tmp_path / "data"
    port = free_loopback_port()
    process = subprocess.Popen(
        [str(venv / "bin" / "ff"), "serve"], cwd=tmp_path, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=serve_env(data_dir, FF_LISTEN_ADDR=f"127.0.0.1:{port}"))
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", process)
        async with ApiClient(f"http://127.0.0.1:{port}") as client:
            created = await client.create_execution({"execution_kind": "email"})
            assert await client.get_execution_state(created.execution_id) == "waiting"
    finally:
        code, stderr = await stop(process)
    assert code == 0, stderr
