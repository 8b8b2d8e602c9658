"""Submits one `publish_post`, waits until it is suspended for review, shows the pending
waitpoint, plays the reviewer (reads the token through the operator route and signals
`approve`, or `reject` with --reject), and prints the result.

    python submit.py [--server http://127.0.0.1:9090] [--token TOKEN] [--reject]

The reviewer step is what `ff signal EXECUTION_ID --name approve` does from a shell.
"""

from __future__ import annotations

import argparse
import json
import os

import trio

from ff.client import ApiClient
from ff.core.records import CreateExecutionArgs

DONE = {"completed", "failed", "cancelled", "expired", "skipped"}


async def wait_for(api: ApiClient, eid: str, states: set[str]) -> str:
    with trio.fail_after(30):
        while (state := await api.get_execution_state(eid)) not in states:
            await trio.sleep(0.1)
    return state


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="http://127.0.0.1:9090")
    parser.add_argument("--token", default=os.environ.get("FF_API_TOKEN"))
    parser.add_argument("--reject", action="store_true")
    args = parser.parse_args()
    async with ApiClient(args.server, token=args.token) as api:
        created = await api.create_execution(CreateExecutionArgs(
            execution_kind="publish_post", input_payload=json.dumps({"topic": "approvals"}),
            payload_encoding="json"))
        eid = created.execution_id
        print(f"submitted  {eid}")
        await wait_for(api, eid, {"suspended"} | DONE)
        [waitpoint] = await api.pending_waitpoints(eid)
        print(f"suspended  waitpoint {waitpoint.waitpoint_id} waits for "
              f"{waitpoint.required_signal_names} (token kid {waitpoint.token_kid})")
        token = await api.waitpoint_token(eid, waitpoint.waitpoint_id)
        assert token is not None
        name, payload = ("reject", {"reason": "needs a diagram"}) if args.reject else (
            "approve", None)
        sent = await api.signal(eid, waitpoint_id=waitpoint.waitpoint_id, name=name,
                                token=token, payload=payload, source_type="human",
                                source_identity="reviewer@example.com")
        print(f"signalled  {name}: {sent.effect}")
        state = await wait_for(api, eid, DONE)
        result = await api.get_execution_result(eid) or b""
        print(f"{state:<10} {result.decode()}")


if __name__ == "__main__":
    trio.run(main)
