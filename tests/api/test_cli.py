"""The `ff` CLI: help for each command, `admin status`, the log formats, configuration
precedence, `serve()`'s graceful shutdown on SIGTERM, and (as the installed console script,
in a subprocess) `--version` and the global options on either side of the subcommand."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from importlib import metadata
from pathlib import Path

import pytest
import trio

import ff
from ff.cli import JsonLinesFormatter, TextFormatter, build_parser, main
from ff.config import ConfigError
from ff.core.records import CreateExecutionArgs
from ff.serve import ServeOptions, load_config, redact_url, serve
from ff.server import Server
from tests.api.conftest import running_api
from tests.engine.conftest import engine_config
from tests.http.httptoy import RawClient

ROOT = Path(__file__).resolve().parents[2]
FF = Path(sys.executable).with_name("ff")  # the console script of the environment under test


def ff_command(*argv: str) -> list[str]:
    """The installed `ff` console script (tools/setup.sh installs it into the venv)."""
    assert FF.is_file(), f"no `ff` console script beside {sys.executable}"
    return [str(FF), *argv]


@pytest.fixture(autouse=True)
def keep_root_logging() -> Iterator[None]:
    """`main()` installs the JSON-lines handler on the root logger; put pytest's back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("argv", [
    [], ["serve"], ["worker"], ["bench"], ["admin"], ["admin", "status"],
])
def test_help_for_each_command(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: ff {' '.join(argv)}".rstrip())


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("serve", "worker", "bench", "admin"):
        assert f"\n    {command} " in out


def test_admin_status(server_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    async def boot() -> None:
        async with Server.running(engine_config(server_url, lanes=("default", "mail"))):
            pass

    trio.run(boot)
    assert main(["admin", "status", "--valkey-url", server_url, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["partitions"] == {"num_flow_partitions": 4, "num_budget_partitions": 2,
                                    "num_quota_partitions": 2}
    assert status["lanes"] == ["default", "mail"]
    assert status["library"]["loaded"] == status["library"]["expected"]
    assert status["server"]["flavour"] in ("valkey", "redis")

    assert main(["admin", "status", "--valkey-url", server_url]) == 0
    text = capsys.readouterr().out
    assert "lanes: default, mail" in text
    assert "partitions: num_budget_partitions=2, num_flow_partitions=4" in text


def test_admin_status_without_a_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("FF_VALKEY_URL", raising=False)
    monkeypatch.setenv("FF_DATA_DIR", str(tmp_path))
    assert main(["admin", "status"]) == 1
    assert "no Valkey address" in capsys.readouterr().err
    assert main(["admin", "status", "--valkey-url", "redis://127.0.0.1:1/0"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("ff admin status: error: cannot use Valkey") and "\n" not in err


def test_json_lines_formatter() -> None:
    formatter = JsonLinesFormatter()
    record = logging.LogRecord("ff.test", logging.WARNING, __file__, 1, "hello %s", ("you",),
                               None)
    record.execution_id = "{fp:1}:x"
    event = json.loads(formatter.format(record))
    assert event["level"] == "warning" and event["logger"] == "ff.test"
    assert event["msg"] == "hello you" and event["execution_id"] == "{fp:1}:x"
    assert event["ts"].endswith("Z")
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record.exc_info = sys.exc_info()
    line = formatter.format(record)
    assert "\n" not in line and "ValueError" in json.loads(line)["exc"]


def test_text_formatter() -> None:
    record = logging.LogRecord("ff.worker", logging.INFO, __file__, 1, "worker summary", (),
                               None)
    record.done, record.lane_id, record.error = 12, "default", "two words"
    line = TextFormatter().format(record)
    assert line.endswith(' info    ff.worker: worker summary done=12 lane_id=default '
                         'error="two words"')


def test_version_comes_from_the_flowfabric_distribution() -> None:
    installed = metadata.version("flowfabric")
    assert ff.__version__ == installed
    done = subprocess.run(ff_command("--version"), capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout) == (0, f"ff {installed}\n")


@pytest.mark.parametrize("argv, level, log_format", [
    (["worker", "m"], None, None),  # None: FF_LOG_LEVEL / FF_LOG_FORMAT, else info / json
    (["worker", "m", "--log-level", "warning"], "warning", None),
    (["--log-level", "error", "worker", "m"], "error", None),  # not reset by `worker`
    (["--log-format", "text", "admin", "--log-level", "debug", "status"], "debug", "text"),
    (["admin", "status", "--log-format", "text"], None, "text"),
])
def test_global_options_parse_in_any_position(argv: list[str], level: str,
                                              log_format: str) -> None:
    args = build_parser()[0].parse_args(argv)
    assert (args.log_level, args.log_format) == (level, log_format)


async def test_worker_takes_log_options_after_its_module(server_url: str,
                                                        tmp_path: Path) -> None:
    """`ff worker MODULE --log-level debug --log-format text` runs, and the options apply:
    the per-task lines (debug) show up, as text."""
    log_path = tmp_path / "worker.log"
    async with Server.running(engine_config(server_url)) as server:
        with log_path.open("wb") as log_file:
            process = await trio.lowlevel.open_process(
                ff_command("worker", "tests.worker.procworker", "--valkey-url", server_url,
                           "--log-level", "debug", "--log-format", "text"),
                cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            created = await server.create_execution(CreateExecutionArgs(
                execution_kind="slow", input_payload=b'{"seconds": 0}',
                payload_encoding="json"))
            with trio.fail_after(15):
                while "task finished" not in log_path.read_text():
                    await trio.sleep(0.05)
            assert await server.get_execution_state(created.execution_id) == "completed"
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(10):
                assert await process.wait() == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    lines = log_path.read_text().splitlines()
    finished = [line for line in lines if "ff.worker: task finished" in line]
    assert len(finished) == 1 and " debug " in finished[0]
    assert "outcome=completed" in finished[0]
    assert not any(line.startswith("{") for line in lines)


def test_flags_win_over_the_environment() -> None:
    env = {"FF_LISTEN_ADDR": "0.0.0.0:1", "FF_LANES": "a", "FF_API_TOKEN": "env",
           "FF_DATA_DIR": "/env"}
    config = load_config(ServeOptions(listen="127.0.0.1:2", lanes="b, c", api_token="flag",
                                      data_dir="/flag", valkey_url="redis://h:1/0"), env)
    assert (config.listen_host, config.listen_port, config.lanes) == ("127.0.0.1", 2, ("b", "c"))
    assert (config.api_token, config.data_dir, config.valkey_url) == (
        "flag", "/flag", "redis://h:1/0")
    assert load_config(ServeOptions(), env).lanes == ("a",)
    assert load_config(ServeOptions(api_token=""), env).api_token is None
    with pytest.raises(ConfigError, match="--listen"):
        load_config(ServeOptions(listen="x"), {})
    assert redact_url("redis://user:pw@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"


async def test_sigterm_stops_accepting_and_finishes_in_flight_requests(server_url: str) -> None:
    config = engine_config(server_url, listen_host="127.0.0.1", listen_port=0)
    body = b'{"execution_kind": "in-flight"}'
    async with trio.open_nursery() as nursery:
        port = await nursery.start(partial(serve, config, shutdown_grace=5.0))
        idle = await RawClient.connect(port)
        assert (await idle.request("GET", "/healthz")).status == 200
        busy = await RawClient.connect(port)
        await busy.send(b"POST /v1/executions HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s"
                        % (len(body), body[:10]))
        await trio.sleep(0.1)

        os.kill(os.getpid(), signal.SIGTERM)
        with trio.fail_after(2):
            assert await idle.closed_by_peer()
        with pytest.raises(OSError):
            await trio.open_tcp_stream("127.0.0.1", port)
        await busy.send(body[10:])
        reply = await busy.read_reply(b"POST")
        assert reply.status == 201 and reply.headers["connection"] == "close"
        created = reply.json()["Created"]["execution_id"]
    # serve() returned on its own: the nursery closed without being cancelled.
    async with running_api(server_url) as api:
        assert await api.server.get_execution_state(created) == "waiting"
