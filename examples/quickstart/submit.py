"""Submits one execution per handler of worker.py to a running `ff serve` over HTTP and
prints each result once it has completed.

    python submit.py [--server http://127.0.0.1:9090] [--token TOKEN]
"""

from __future__ import annotations

import argparse
import json
import os
from urllib.parse import quote

import trio

from ff.client import HttpClient

JOBS = [
    ("greet", {"name": "Ada"}),
    ("word_count", {"text": "the quick brown fox jumps over the lazy dog The End"}),
]
DONE = {"completed", "failed", "cancelled", "expired", "skipped"}


async def run_one(client: HttpClient, kind: str, payload: dict[str, str]) -> None:
    created = (await client.request("POST", "/v1/executions", json={
        "execution_kind": kind, "input_payload": json.dumps(payload),
        "payload_encoding": "json",
    })).raise_for_status().json()
    eid = created["Created"]["execution_id"]
    path = f"/v1/executions/{quote(eid, safe='')}"
    with trio.fail_after(30):
        while (state := (await client.request("GET", f"{path}/state")).json()) not in DONE:
            await trio.sleep(0.1)
    result = b""
    if state == "completed":
        result = (await client.request("GET", f"{path}/result")).raise_for_status().body
    print(f"{kind:<11} {eid}  {state}  {result.decode()}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="http://127.0.0.1:9090")
    parser.add_argument("--token", default=os.environ.get("FF_API_TOKEN"))
    args = parser.parse_args()
    async with HttpClient(args.server, token=args.token) as client, \
            trio.open_nursery() as nursery:
        for kind, payload in JOBS:
            nursery.start_soon(run_one, client, kind, payload)


if __name__ == "__main__":
    trio.run(main)
