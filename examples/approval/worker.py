"""Approval example: a handler drafts a post, suspends until a reviewer decides, and
resumes on the same attempt with the decision. Run by `ff worker worker` from this
directory.

The first run of the handler has no `resume_signals`: it drafts and suspends on a
waitpoint that waits for `approve` or `reject` (72 h, then the execution fails). The
reviewer's signal makes the execution runnable again; the same handler runs once more,
with `task.attempt_type == "resumed"` and the reviewer's signal in `task.resume_signals`.
"""

from __future__ import annotations

from typing import Any

from ff.worker import ClaimedTask, Worker

worker = Worker(worker_id="approval", lanes=["default"], max_concurrent=8)

REVIEW_TIMEOUT_MS = 72 * 3600 * 1000


def draft(topic: str) -> str:
    return f"ff now suspends on waitpoints: {topic}!"


@worker.handler("publish_post")
async def publish_post(task: ClaimedTask, payload: dict[str, str]) -> dict[str, Any]:
    text = draft(payload["topic"])
    if not task.resume_signals:
        await task.suspend(
            {"required_signal_names": ["approve", "reject"]},
            timeout_ms=REVIEW_TIMEOUT_MS, timeout_behavior="fail",
            reason_code="waiting_for_approval")
        return {}  # the task has ended: this value is not stored
    decision = task.resume_signals[0]
    note = decision.json() or {}
    if decision.name == "reject":
        return {"published": False, "draft": text, "reviewer": decision.source_identity,
                "reason": note.get("reason", "")}
    return {"published": True, "text": text, "reviewer": decision.source_identity}
