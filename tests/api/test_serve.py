"""`ff serve` as a subprocess: embedded Valkey, signals, ordered shutdown, restart on the same
data, and one-line exits for configuration errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from ff.client import ApiClient, HttpError
from ff.embedded import free_loopback_port

pytestmark = pytest.mark.slow

FF = [sys.executable, "-m", "ff.cli"]


def serve_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FF_")}
    env.update({"FF_DATA_DIR": str(data_dir), "FF_FLOW_PARTITIONS": "8", **extra})
    return env


def processes_using(data_dir: Path) -> list[int]:
    """Pids working in `data_dir` (valkey-server chdirs to its --dir and retitles itself)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = (entry / "cwd").resolve(strict=True)
        except OSError:
            continue
        if cwd == data_dir / "valkey":
            found.append(int(entry.name))
    return found


async def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    with trio.fail_after(20):
        async with ApiClient(url, timeout=1) as client:
            while True:
                assert process.poll() is None, process.stderr and process.stderr.read().decode()
                try:
                    await client.health()
                    return
                except HttpError:
                    await trio.sleep(0.05)


async def stop(process: subprocess.Popen[bytes], signum: int = signal.SIGTERM) -> tuple[int, str]:
    process.send_signal(signum)
    with trio.fail_after(20):
        while process.poll() is None:
            await trio.sleep(0.05)
    assert process.stderr is not None
    return process.returncode, process.stderr.read().decode()


def start(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = serve_env(data_dir, FF_LISTEN_ADDR=f"127.0.0.1:{port}")
    return subprocess.Popen([*FF, "serve"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, cwd=data_dir.parent)


async def test_serve_embedded_end_to_end(tmp_path: Path) -> None:
    data_dir = (tmp_path / "data").resolve()
    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}"

    process = start(data_dir, port)
    try:
        await wait_healthy(url, process)
        assert processes_using(data_dir), "the embedded valkey-server should be running"
        async with ApiClient(url) as client:
            created = await client.create_execution({"execution_kind": "kept",
                                                     "input_payload": "x"})
            info = await client.get_execution(created.execution_id)
            assert info.execution_kind == "kept"
    finally:
        code, stderr = await stop(process)
    assert code == 0, stderr
    events = [json.loads(line) for line in stderr.splitlines()]
    messages = [event["msg"] for event in events]
    running = next(e for e in events if e["msg"] == "embedded valkey running")
    assert running["data_dir"] == str(data_dir / "valkey")
    assert (data_dir / "valkey.url").read_text().strip() == running["url"]
    order = ["HTTP API listening", "shutdown requested", "HTTP API stopped; stopping the engine",
             "server stopped"]
    assert [m for m in messages if m in order] == order
    assert processes_using(data_dir) == []

    process = start(data_dir, port)
    try:
        await wait_healthy(url, process)
        async with ApiClient(url) as client:
            info = await client.get_execution(created.execution_id)
            assert (info.execution_kind, info.public_state) == ("kept", "waiting")
    finally:
        code, stderr = await stop(process, signal.SIGINT)
    assert code == 0, stderr
    assert processes_using(data_dir) == []


def run_ff(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FF, *args], env=env, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("extra, args, fragment", [
    ({"FF_FLOW_PARTITIONS": "many"}, (), "FF_FLOW_PARTITIONS: expected an integer"),
    ({"FF_LISTEN_ADDR": "nowhere"}, (), "FF_LISTEN_ADDR"),
    ({"FF_CORS_ORIGINS": ""}, (), "FF_CORS_ORIGINS is set but empty"),
    ({"FF_WAITPOINT_HMAC_SECRET": "xyz"}, (), "FF_WAITPOINT_HMAC_SECRET"),
    ({"FF_VALKEY_URL": "redis://127.0.0.1:1/0"}, (), "FF_WAITPOINT_HMAC_SECRET is required"),
    ({}, ("--listen", "9090"), "--listen: expected host:port"),
    ({}, ("--lanes", " , "), "--lanes"),
])
def test_serve_config_errors_exit_1_with_one_line(
    tmp_path: Path, extra: dict[str, str], args: tuple[str, ...], fragment: str
) -> None:
    result = run_ff("serve", *args, env=serve_env(tmp_path / "data", **extra))
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ff serve: error: ") and fragment in lines[0], lines[0]
    assert not (tmp_path / "data").exists(), "nothing may start before the config is valid"


def test_serve_with_unreachable_valkey_exits_1(tmp_path: Path) -> None:
    port = free_loopback_port()  # nothing listens there
    env = serve_env(tmp_path, FF_VALKEY_URL=f"redis://127.0.0.1:{port}/0",
                    FF_WAITPOINT_HMAC_SECRET="ab" * 16)
    result = run_ff("serve", env=env)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ff serve: error: cannot use Valkey"), result.stderr
    assert "Traceback" not in result.stderr
