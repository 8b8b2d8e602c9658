"""Attempt streams: append-to-tail latency and one worker's append throughput.

    python -m bench.stream_bench [--runs 3] [--frames 3000] [--rate 1000]

One private valkey-server, one `ff serve` process (HTTP on loopback), an appender process
(an ff Worker holding a lease, `task.append_frame` at `--rate` frames/s, each payload the
sender's CLOCK_MONOTONIC in ns) and this process as the tailer, over HTTP, in two forms:
Server-Sent Events (one response per attempt) and the long-poll loop of `ApiClient.tail`.
Latency = tailer's receipt - appender's call, both on the one system-wide monotonic clock.

Baseline, same run, same RESP client: the appender XADDs to a plain stream at the same rate
and the tailer waits in XREAD BLOCK on a dedicated connection (no lease, no Lua, no HTTP).
Throughput: frames/s of one worker appending as fast as it can (`append_frame` then
`flush`), beside XADD pipelined in the same batch size (256) through the same client.
Writes `bench/results/streams-<sha>-<time>.{json,md}`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from bench.harness import (
    REPO_ROOT,
    git_sha,
    host_info,
    percentiles,
    server_version_from_info,
    utc_now,
)
from ff.client import ApiClient
from ff.embedded import EmbeddedServer
from ff.resp import Client
from ff.worker import Worker

LANE = "bench-streams"
SECRET = "cd" * 32
BATCH = 256


def summary(latencies_ms: list[float]) -> dict[str, float]:
    found = percentiles(latencies_ms, (0.5, 0.99, 1.0))
    return {"n": len(latencies_ms), "p50_ms": found["p50"], "p99_ms": found["p99"],
            "max_ms": found["p100"]}


# -- the appender process ----------------------------------------------------------------


async def _paced(n: int, rate: float, send: Any) -> None:
    start = time.monotonic()
    for i in range(n):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await trio.sleep(delay)
        await send(str(time.monotonic_ns()))


async def append_role(url: str, mode: str, n: int, rate: float, key: str) -> dict[str, Any]:
    if mode == "raw":
        async with Client.from_url(url) as client:
            await trio.sleep(0.3)  # the tailer is blocked by now
            await _paced(n, rate, lambda p: client.execute("XADD", key, "*", "payload", p))
            await client.execute("XADD", key, "*", "payload", "end")
        return {}
    if mode == "raw_throughput":
        async with Client.from_url(url) as client:
            started = time.perf_counter()
            for offset in range(0, n, BATCH):
                pipe = client.pipeline()
                for _ in range(min(BATCH, n - offset)):
                    pipe.execute_command("XADD", key, "MAXLEN", "10000", "*", "payload", "x" * 32)
                await pipe.run()
            return {"frames_per_s": n / (time.perf_counter() - started)}
    async with Worker.connect(url, worker_id="bench-appender", lanes=[LANE],
                              lease_ttl_ms=30_000) as worker:
        task = None
        while task is None:
            task = await worker.claim_next()
        if mode == "throughput":
            started = time.perf_counter()
            for _ in range(n):
                await task.append_frame("x" * 32)
            await task.flush()
            rate_done = n / (time.perf_counter() - started)
            await task.complete()
            return {"frames_per_s": rate_done}
        await trio.sleep(0.3)
        await _paced(n, rate, task.append_frame)
        await task.complete()
        return {}


def start_appender(url: str, mode: str, n: int, rate: float, key: str = "") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.stream_bench", "--append", mode, "--url", url,
         "--frames", str(n), "--rate", str(rate), "--key", key],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)


def appender_result(proc: subprocess.Popen) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"appender failed ({proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])


# -- the tailer (this process) -----------------------------------------------------------


async def tail_sse(port: int, eid: str) -> list[float]:
    latencies: list[float] = []
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    path = f"/v1/executions/{eid}/attempts/0/stream/tail?limit=1000"
    await stream.send_all(f"GET {path} HTTP/1.1\r\nhost: b\r\naccept: text/event-stream\r\n"
                          "\r\n".encode())
    buffer = b""
    with trio.fail_after(120):
        while chunk := await stream.receive_some(65536):
            now = time.monotonic_ns()
            buffer += chunk
            *events, buffer = buffer.split(b"\n\n")
            for event in events:
                if b"event: frame" not in event:
                    continue
                data = json.loads(event.split(b"data: ", 1)[1].split(b"\r\n")[0])
                if data["fields"].get("source") == "worker":
                    latencies.append((now - int(data["fields"]["payload"])) / 1e6)
    await stream.aclose()
    return latencies


async def tail_long_poll(api: ApiClient, eid: str) -> list[float]:
    latencies: list[float] = []
    async for frame in api.tail(eid, 0, block_ms=10_000, limit=1000):
        now = time.monotonic_ns()
        if frame.fields.get("source") == "worker":
            latencies.append((now - int(frame.fields["payload"])) / 1e6)
    return latencies


async def tail_raw(url: str, key: str, appender: subprocess.Popen) -> list[float]:
    latencies: list[float] = []
    after = "0-0"
    async with Client.from_url(url) as client, client.dedicated() as conn:
        while True:
            reply = await conn.execute("XREAD", "COUNT", 1000, "BLOCK", 10_000, "STREAMS", key,
                                       after, timeout=15)
            now = time.monotonic_ns()
            entries = next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
            for entry_id, fields in entries:
                after = entry_id.decode()
                payload = fields[1].decode()
                if payload == "end":
                    return latencies
                latencies.append((now - int(payload)) / 1e6)


# -- orchestration -------------------------------------------------------------------------


async def one_run(url: str, port: int, frames: int, rate: float, run: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with ApiClient(f"http://127.0.0.1:{port}") as api:
        for form in ("sse", "long_poll"):
            created = await api.create_execution({"execution_kind": "bench", "lane_id": LANE})
            proc = start_appender(url, "latency", frames, rate)
            with trio.fail_after(30):  # attempt 0 exists once the appender holds the lease
                while await api.get_execution_state(created.execution_id) != "active":
                    await trio.sleep(0.01)
            if form == "sse":
                latencies = await tail_sse(port, created.execution_id)
            else:
                latencies = await tail_long_poll(api, created.execution_id)
            appender_result(proc)
            results[f"ff_{form}"] = summary(latencies)
        key = f"bench:raw:{run}"
        proc = start_appender(url, "raw", frames, rate, key)
        results["baseline_xread"] = summary(await tail_raw(url, key, proc))
        appender_result(proc)
        await api.create_execution({"execution_kind": "bench", "lane_id": LANE})
        results["ff_append_throughput"] = appender_result(
            start_appender(url, "throughput", 50_000, 0))["frames_per_s"]
        results["baseline_xadd_throughput"] = appender_result(
            start_appender(url, "raw_throughput", 50_000, 0, f"bench:tp:{run}"))["frames_per_s"]
    return results


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, first in runs[0].items():
        if isinstance(first, dict):
            out[name] = {k: statistics.median(r[name][k] for r in runs) for k in first}
        else:
            out[name] = statistics.median(r[name] for r in runs)
    return out


async def wait_healthy(port: int) -> None:
    async with ApiClient(f"http://127.0.0.1:{port}") as api:
        with trio.fail_after(30):
            while True:
                try:
                    await api.health()
                    return
                except Exception:
                    await trio.sleep(0.1)


async def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        valkey = EmbeddedServer(Path(tmp))
        await valkey.start()
        port = 19000 + os.getpid() % 500
        env = {**os.environ, "FF_WAITPOINT_HMAC_SECRET": SECRET, "FF_LOG_LEVEL": "warning",
               "FF_LANES": LANE}
        server = subprocess.Popen(
            [sys.executable, "-m", "ff.cli", "serve", "--valkey-url", valkey.url, "--listen",
             f"127.0.0.1:{port}"], cwd=REPO_ROOT, env=env)
        try:
            await wait_healthy(port)
            async with Client.from_url(valkey.url) as client:
                info = (await client.execute("INFO", "server")).decode()
            server_version = server_version_from_info(info)
            load = os.getloadavg()
            runs = [await one_run(valkey.url, port, args.frames, args.rate, i)
                    for i in range(args.runs)]
        finally:
            server.terminate()
            server.wait(timeout=30)
            await valkey.stop()
    return {"server_version": server_version, "load_average": load, "runs": runs,
            "median": median_of(runs)}


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    sha, stamp = git_sha(), utc_now().replace(":", "").replace("-", "")
    host = host_info()
    med = result["median"]
    doc = {"scenario": "streams", "git_sha": sha, "host": host, "frames": args.frames,
           "rate": args.rate, "runs": args.runs, **result}
    out = REPO_ROOT / "bench" / "results" / f"streams-{sha}-{stamp}"
    out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    base = med["baseline_xread"]
    lines = [f"# Attempt streams: append to tail ({sha})", "",
             f"Host: {json.dumps(host)}; {result['server_version']}; load average before "
             f"the runs {result['load_average'][0]:.2f} (a 2-core machine shared with other "
             "developers' test runs)", "",
             f"Median of {args.runs} runs; {args.frames} frames per run at {args.rate:.0f}/s; "
             "one appender process (ff Worker), the tailer in another, `ff serve` in a third.",
             "", "| path | p50 ms | p99 ms | max ms | p50 vs baseline |",
             "|---|---:|---:|---:|---:|"]
    for name in ("ff_sse", "ff_long_poll", "baseline_xread"):
        row = med[name]
        lines.append(f"| {name} | {row['p50_ms']:.3f} | {row['p99_ms']:.3f} | "
                     f"{row['max_ms']:.3f} | {row['p50_ms'] / base['p50_ms']:.1f}x |")
    ratio = med["ff_append_throughput"] / med["baseline_xadd_throughput"]
    lines += ["", "| append throughput, one worker | frames/s |", "|---|---:|",
              f"| ff `task.append_frame` + flush | {med['ff_append_throughput']:,.0f} |",
              f"| raw XADD, pipelined by {BATCH} | {med['baseline_xadd_throughput']:,.0f} |",
              f"| ratio | {ratio:.0%} |", ""]
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stream_bench")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--append", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--key", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.append:
        print(json.dumps(trio.run(append_role, args.url, args.append, args.frames, args.rate,
                                  args.key)))
        return
    report(trio.run(orchestrate, args), args)


if __name__ == "__main__":
    main()
