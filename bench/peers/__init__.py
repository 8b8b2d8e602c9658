"""Peer job-queue libraries, measured in the same run as ff (`ff bench --peers`).

Each peer lives in `bench/peers/<name>.py`, a standalone program that runs in its own
virtualenv (the peers pin redis-py versions that conflict with each other and with the
project's), started as `<venv>/bin/python bench/peers/<name>.py --url ... --n ...`. It
starts the library's recommended worker, submits N no-op jobs carrying the same 4 KiB
payload, waits until every job is done, verifies each one through the library's own
result records and prints one JSON result line. The harness bounds it in time and kills
its whole process group on overrun.

`python -m bench.peers install [--dir DIR]` creates the virtualenvs (one per peer, pinned
versions from `REQUIREMENTS`, also listed in bench/requirements-peers.txt). A peer whose
virtualenv is missing is skipped and noted in the report. Peers are never a dependency of ff.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

PEERS_DIR_DEFAULT = "/tmp/ff-bench-peers"
HERE = Path(__file__).resolve().parent

# name -> pip requirements of its virtualenv (hiredis: every client gets the C parser).
REQUIREMENTS: dict[str, list[str]] = {
    "arq": ["arq==0.28.0", "hiredis"],
    "saq": ["saq[redis]==0.26.4", "typing_extensions", "hiredis"],
    "taskiq": ["taskiq==0.13.0", "taskiq-redis==1.2.4", "hiredis"],
    "rq": ["rq==2.12.0", "hiredis"],
    "dramatiq": ["dramatiq[redis]==2.2.1", "hiredis"],
    "celery": ["celery[redis]==5.7.0", "hiredis"],
}
PEERS = tuple(REQUIREMENTS)


def peers_dir(override: str | None = None) -> Path:
    return Path(override or os.environ.get("FF_BENCH_PEERS_DIR") or PEERS_DIR_DEFAULT)


def peer_python(name: str, override: str | None = None) -> Path:
    return peers_dir(override) / name / "bin" / "python"


async def run_peer(name: str, url: str, cfg: Any, progress: Any,
                   directory: str | None = None) -> Any:
    """Runs one peer program under the run's time bound; returns its SystemResult."""
    from bench.harness import SystemResult, last_json_line, run_bounded, tail

    python = peer_python(name, directory)
    result = SystemResult(name, n=cfg.n)
    if not python.exists():
        result.status = "skipped"
        result.notes.append(f"no virtualenv at {python.parent.parent} "
                            "(run `python -m bench.peers install`)")
        return result
    # Two measurements' worth of time for ff/baseline; a peer does one, plus its startup.
    limit = cfg.timeout + 60
    cmd = [str(python), str(HERE / f"{name}_peer.py"), "--url", url, "--n", str(cfg.n),
           "--workers", str(cfg.slots), "--concurrency", str(cfg.submit_concurrency),
           "--payload-bytes", str(cfg.payload_bytes), "--timeout", str(cfg.timeout)]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = str(HERE)
    env["BENCH_URL"] = url  # module-level brokers/apps in the peer programs read it
    async with progress.track(f"peer {name}", None):
        outcome = await run_bounded(cmd, timeout=limit, env=env, cwd=HERE)
    data = last_json_line(outcome.stdout)
    if outcome.timed_out:
        result.status = "timeout"
        result.notes.append(f"killed after {limit:.0f}s; stderr: {tail(outcome.stderr)}")
        if data:
            result.notes.append(f"last report: {data}")
        return result
    if data is None:
        result.status = "failed"
        result.notes.append(f"exit {outcome.returncode}, no result; stderr: "
                            f"{tail(outcome.stderr)}")
        return result
    merged = SystemResult.from_dict({"system": name, **data})
    if outcome.returncode != 0 and merged.status == "ok":
        merged.status = "failed"
        merged.notes.append(f"exit {outcome.returncode}: {tail(outcome.stderr)}")
    return merged


def install(directory: str | None = None, names: list[str] | None = None) -> int:
    """Creates one virtualenv per peer under `directory` and installs its pins."""
    failed = []
    for name in names or list(PEERS):
        venv = peers_dir(directory) / name
        print(f"== {name}: {venv}", flush=True)
        steps = [[sys.executable, "-m", "venv", str(venv)],
                 [str(venv / "bin" / "pip"), "install", "-q", *REQUIREMENTS[name]]]
        for step in steps:
            if subprocess.run(step).returncode != 0:
                failed.append(name)
                break
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.peers")
    sub = parser.add_subparsers(dest="command", required=True)
    inst = sub.add_parser("install", help="create the peers' virtualenvs")
    inst.add_argument("--dir", default=None, help=f"default $FF_BENCH_PEERS_DIR or "
                                                  f"{PEERS_DIR_DEFAULT}")
    inst.add_argument("names", nargs="*", help=f"some of: {' '.join(PEERS)} (default all)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in PEERS]
    if unknown:
        parser.error(f"unknown peer(s): {' '.join(unknown)}")
    return install(args.dir, args.names or None)
