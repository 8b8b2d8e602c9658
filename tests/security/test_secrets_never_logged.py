"""Secrets never leave in a log line or an error body: a full run of `ff serve` (debug
logs) and a worker process, on a password-protected Valkey, with authorized and refused
requests, bad bodies, a secret rotation, executions run to completion and a failed start
with a wrong password. Every line both processes wrote and every answer body is scanned for
the API token, the HMAC secrets and the Valkey passwords (as given, lower and upper case)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from ff.client import ApiClient
from ff.embedded import EmbeddedServer, free_loopback_port
from tests.api.test_serve import FF, serve_env, stop, wait_healthy

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tok-Secret-7f3a9c1e5d"
HMAC_SECRET = "c0ffee" * 8
ROTATED_SECRET = "beef01" * 8
VALKEY_PASSWORD = "vk-Pass-84b2d6"
WRONG_PASSWORD = "vk-Wrong-19e7aa"
SECRETS = (TOKEN, HMAC_SECRET, ROTATED_SECRET, VALKEY_PASSWORD, WRONG_PASSWORD)


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS for form in {s, s.lower(), s.upper()} if form in text]


async def exercise(url: str, bodies: list[bytes]) -> None:
    """Authorized and refused requests of every kind a client can get wrong."""
    async with ApiClient(url, token=TOKEN) as client, ApiClient(url) as anonymous:
        ids = []
        for i in range(5):
            created = await client.create_execution(
                {"execution_kind": "slow", "input_payload": '{"seconds": 0.05}',
                 "payload_encoding": "json",
                 "lane_id": "default", "tags": {"n": str(i)}})
            ids.append(created.execution_id)
        attempts = [
            ("GET", "/v1/executions?partition=0", None, None),
            ("POST", "/v1/executions", b"{not json", None),
            ("POST", "/v1/executions", b'{"execution_kind": 5}', None),
            ("GET", f"/v1/executions/{ids[0]}/result", None, None),
            ("GET", "/v1/executions/not-an-id", None, None),
            ("POST", f"/v1/executions/{ids[0]}/signal", b'{"name": "x"}', None),
            ("POST", "/v1/admin/rotate-waitpoint-secret", b'{"new_kid": "k", '
             b'"new_secret_hex": "zz' + HMAC_SECRET.encode() + b'"}', None),
            ("GET", "/v1/lanes", None, {"authorization": f"Bearer {TOKEN}x"}),
            ("GET", "/v1/lanes", None, {"authorization": f"Basic {TOKEN}"}),
        ]
        for method, path, body, headers in attempts:
            response = await client.request(method, path, body=body, headers=headers)
            bodies.append(response.body)
            response = await anonymous.request(method, path, body=body)
            assert response.status == 401
            bodies.append(response.body)
        rotated = await client.rotate_waitpoint_secret("k2", ROTATED_SECRET)
        bodies.append(repr(rotated).encode())
        with trio.fail_after(30):
            for eid in ids:
                while await client.get_execution_state(eid) != "completed":
                    await trio.sleep(0.05)
                bodies.append((await client.request("GET", f"/v1/executions/{eid}")).body)


async def test_no_secret_in_any_log_line_or_error_body(tmp_path: Path) -> None:
    valkey = EmbeddedServer(tmp_path / "valkey", password=VALKEY_PASSWORD,
                            binary=os.environ.get("FF_TEST_SERVER") or None)
    await valkey.start()
    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}"
    env = serve_env(tmp_path / "data", FF_LISTEN_ADDR=f"127.0.0.1:{port}",
                    FF_VALKEY_URL=valkey.url, FF_API_TOKEN=TOKEN,
                    FF_WAITPOINT_HMAC_SECRET=HMAC_SECRET, FF_LOG_LEVEL="debug")
    serve_log = tmp_path / "serve.log"
    worker_log = tmp_path / "worker.log"
    bodies: list[bytes] = []
    try:
        with serve_log.open("wb") as log_file:
            process = subprocess.Popen([*FF, "serve"], env=env, stdout=log_file,
                                       stderr=subprocess.PIPE, cwd=tmp_path)
        try:
            await wait_healthy(url, process)
            with worker_log.open("wb") as log_file:
                worker = subprocess.Popen(
                    [sys.executable, "-m", "ff.worker.cli", "tests.worker.procworker",
                     "--valkey-url", valkey.url],
                    cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT,
                    env={**os.environ, "PYTHONPATH": str(ROOT), "FF_LOG_LEVEL": "debug"})
            try:
                await exercise(url, bodies)
            finally:
                worker.send_signal(2)
                worker.wait(20)
        finally:
            code, stderr = await stop(process)
        assert code == 0, stderr
        serve_text = serve_log.read_text() + stderr

        wrong = valkey.url.replace(VALKEY_PASSWORD, WRONG_PASSWORD)
        failed = subprocess.run([*FF, "serve"], capture_output=True, text=True, timeout=60,
                                cwd=tmp_path, env={**env, "FF_VALKEY_URL": wrong})
        assert failed.returncode == 1
    finally:
        await valkey.stop()

    worker_text = worker_log.read_text()
    assert "HTTP API listening" in serve_text and worker_text  # the logs really were written
    assert failed.stderr.strip()
    for name, text in (("serve", serve_text), ("worker", worker_text),
                       ("failed start", failed.stdout + failed.stderr)):
        assert leaks(text) == [], f"{name} log leaks {leaks(text)}"
    for body in bodies:
        assert leaks(body.decode("utf-8", "replace")) == [], body
