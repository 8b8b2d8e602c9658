"""LLM budget example: every `llm_call` stands in for a model call that uses 250 tokens and
reports them to the token budget the flow carries. Run by `ff worker worker` from this
directory.

The budget is enforced twice: a report that would pass the hard limit is refused whole
(`HardBreach`: nothing added, the handler fails the call with `budget_exceeded`), and once
usage reaches the limit the scheduler stops handing out the flow's remaining calls (they
wait as `rate_limited` until the budget is reset). The quota (5 per second) paces the
claims; the worker gives each call's quota slot back when the call ends.
"""

from __future__ import annotations

from typing import Any

import trio

from ff.worker import ClaimedTask, Worker

worker = Worker(worker_id="llm", lanes=["default"], max_concurrent=4)

TOKENS_PER_CALL = 250


async def call_model(prompt: str) -> tuple[str, int]:
    """The stand-in for a paid model call: a short wait, a canned answer, its token count."""
    await trio.sleep(0.05)
    return f"a short summary of {prompt!r}", TOKENS_PER_CALL


@worker.handler("llm_call")
async def llm_call(task: ClaimedTask, payload: dict[str, str]) -> dict[str, Any]:
    answer, tokens = await call_model(payload["prompt"])
    spent = await task.report_usage({"tokens": tokens})
    if spent.hard_breach:
        await task.fail(f"token budget exhausted at {spent.current_usage}/{spent.limit}",
                        "budget_exceeded", retryable=False)
        return {}  # the task has ended: this value is not stored
    return {"answer": answer, "tokens": tokens}
