"""The embedded server starts, answers, survives a crash with its data, and stops."""

import pytest
import trio

from ff.embedded import EmbeddedServer, EmbeddedServerError, find_server_binary


async def _raw(port: int, payload: bytes) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(payload)
        return await stream.receive_some(4096)


@pytest.mark.compat
async def test_start_kill_restart_keeps_acknowledged_data(fault_server: EmbeddedServer) -> None:
    assert (await _raw(fault_server.port, b"SET k v\r\n")).startswith(b"+OK")
    await trio.sleep(1.2)  # appendfsync everysec: the write is on disk after one second
    fault_server.kill()
    assert fault_server.process is None
    await fault_server.start()
    assert await _raw(fault_server.port, b"GET k\r\n") == b"$1\r\nv\r\n"


async def test_stop_is_idempotent_and_terminates(tmp_path) -> None:
    server = EmbeddedServer(tmp_path / "s")
    await server.start()
    process = server.process
    await server.stop()
    await server.stop()
    assert process is not None and process.poll() is not None


def test_unknown_binary_is_a_clear_error() -> None:
    with pytest.raises(EmbeddedServerError, match="not on PATH"):
        find_server_binary("no-such-server-binary")


async def test_start_failure_reports_the_server_message(tmp_path) -> None:
    server = EmbeddedServer(tmp_path / "bad", extra_args=("--no-such-option", "1"))
    with pytest.raises(EmbeddedServerError, match="exited with code"):
        await server.start()
