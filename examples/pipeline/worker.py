"""Pipeline worker: the handlers of the flow that submit.py builds.

fetch -> {word_stats, line_stats, slow_summary} -> report. The report joins its three
upstreams as a quorum of 2 with cancel_remaining: it runs once two analyses succeeded,
the third is cancelled, and it receives the result of the analysis that completed the
quorum as its input.
"""

from __future__ import annotations

import trio

from ff.worker import ClaimedTask, Worker

worker = Worker(worker_id="pipeline", lanes=["default"], max_concurrent=8)

TEXT = "the quick brown fox\njumps over\nthe lazy dog"


@worker.handler("fetch")
async def fetch(task: ClaimedTask, payload: dict[str, str]) -> dict[str, str]:
    return {"source": payload["source"], "text": TEXT}


@worker.handler("word_stats")
async def word_stats(task: ClaimedTask, document: dict[str, str]) -> dict[str, object]:
    words = document["text"].split()
    return {"analysis": "words", "count": len(words), "distinct": len(set(words))}


@worker.handler("line_stats")
async def line_stats(task: ClaimedTask, document: dict[str, str]) -> dict[str, object]:
    await trio.sleep(0.05)
    return {"analysis": "lines", "count": len(document["text"].splitlines())}


@worker.handler("slow_summary")
async def slow_summary(task: ClaimedTask, document: dict[str, str]) -> dict[str, object]:
    await trio.sleep(30)  # loses the race: cancelled once the quorum is met
    return {"analysis": "summary", "first_words": document["text"].split()[:3]}


@worker.handler("report")
async def report(task: ClaimedTask, analysis: dict[str, object]) -> dict[str, object]:
    return {"report": f"{analysis['analysis']}: {analysis['count']}"}
