"""The flow engine: the completion listener (push resolution of a member's outgoing edges
the moment it ends), the two cancel dispatches (flow members, losing siblings of an
any_of/quorum group) and the scanners that are the safety net behind them.

- dependency_reconciler: `lane:<lane>:blocked:dependencies` -> ff_resolve_dependency
- flow_projector: `flow_index` -> writes `ff:flow:{fp:N}:<flow>:summary`
- cancel_reconciler: `cancel_backlog` (due) -> ff_cancel_flow_members
- edge_cancel_dispatcher: `pending_cancel_groups` -> ff_cancel_sibling_group
- edge_cancel_reconciler: `pending_cancel_groups` -> ff_reconcile_sibling_cancel_group

Every action is idempotent, so the listener, the scanners and other server replicas may
all act on the same item.
"""

from __future__ import annotations

import contextlib
import logging
from abc import abstractmethod
from collections.abc import Iterable

import msgspec
import trio

from ff import metrics
from ff.core.errors import ExecutionNotActiveError, NotFoundError
from ff.core.ids import ExecutionId
from ff.core.keys import DAG_COMPLETIONS_CHANNEL, ExecKeys, FlowKeys, IndexKeys
from ff.core.partitions import PartitionConfig
from ff.core.states import TERMINAL_PUBLIC_STATES
from ff.engine.runner import RESTART_DELAY_S, Scanner, pipelined, survivable
from ff.scheduler import mark_lane_work
from ff.script import execution as execution_fns
from ff.script import flow as flow_fns
from ff.script.library import FunctionLibrary, text
from ff.transient import is_transient

log = logging.getLogger("ff.engine.flows")

MEMBER_BATCH = 100
MEMBER_BATCHES_IN_FLIGHT = 4
LISTENER_CONCURRENCY = 64
BATCH = 50
RECONCILE_MEMBERS = 500

SIBLING_CANCELS = metrics.Counter(
    "ff_sibling_cancel_dispatched_total", "Siblings cancelled for a fired any_of/quorum group.",
    ("reason",))
SIBLING_RECONCILES = metrics.Counter(
    "ff_sibling_cancel_reconcile_total", "Actions of the edge-cancel reconciler.", ("action",))


def flow_keys_of(flow_id: str, member: str) -> FlowKeys:
    """A flow's keys, on the partition of one of its members (they share it)."""
    return FlowKeys(flow_id, ExecutionId.parse(member).tag)


async def _cancel_one(library: FunctionLibrary, eid: str, reason: str) -> None:
    """Cancel as the operator; an execution already ended or gone needs nothing more."""
    with contextlib.suppress(ExecutionNotActiveError, NotFoundError):
        await execution_fns.cancel_execution(library, eid, reason=reason,
                                             source="operator_override")


async def _cancel_one_by_one(library: FunctionLibrary, keys: FlowKeys, members: list[str],
                             reason: str) -> list[str]:
    """Member by member (after a batch failed): returns the ids that failed."""
    failed = []
    for eid in members:
        try:
            await _cancel_one(library, eid, reason)
            await flow_fns.ack_cancel_member(library, keys, eid)
        except Exception as exc:
            if not survivable(exc):
                raise
            log.warning("cancel of flow member %s failed: %s", eid, exc)
            failed.append(eid)
    return failed


async def cancel_flow_members(library: FunctionLibrary, keys: FlowKeys,
                              members: Iterable[str], reason: str) -> list[str]:
    """Cancels members owed a cancel in batches of MEMBER_BATCH (one atomic call each,
    which also acks them in the flow's backlog), MEMBER_BATCHES_IN_FLIGHT at a time; a
    batch that fails is retried member by member. Returns the ids that could not be
    cancelled (they stay in the backlog for the cancel_reconciler)."""
    failed: list[str] = []
    limiter = trio.CapacityLimiter(MEMBER_BATCHES_IN_FLIGHT)
    ordered = list(members)

    async def batch(chunk: list[str]) -> None:
        async with limiter:
            try:
                await flow_fns.cancel_flow_members(library, keys, reason, chunk)
            except Exception as exc:
                if not survivable(exc):
                    raise
                failed.extend(await _cancel_one_by_one(library, keys, chunk, reason))

    async with trio.open_nursery() as nursery:
        for start in range(0, len(ordered), MEMBER_BATCH):
            nursery.start_soon(batch, ordered[start:start + MEMBER_BATCH])
    return failed


async def cancel_siblings(library: FunctionLibrary, keys: FlowKeys, downstream: str) -> int:
    """Cancels the losing upstream siblings of a fired cancel_remaining group and drains
    the group, in one call. A failure leaves it for the edge_cancel_dispatcher."""
    done = await flow_fns.cancel_sibling_group(library, keys, downstream)
    if done.cancelled:
        SIBLING_CANCELS.labels(reason=done.reason).inc(done.cancelled)
    return done.cancelled


async def settle(library: FunctionLibrary, partitions: PartitionConfig, member: str,
                 resolution: flow_fns.Resolution, flow_id: str | None = None) -> None:
    """Acts on a resolution at once: dispatches the sibling cancels it asked for, then
    marks the lanes of the children it made eligible in their work hints, so a claim
    finds them now. A hint that cannot be marked is only logged: the lane_hints scanner
    marks it within an interval. `member` is on the flow's partition."""
    if resolution.cancel_groups:
        if flow_id is None:
            flow_id = text(await library.client.execute("HGET", ExecKeys(member).core,
                                                        "flow_id"))
        keys = flow_keys_of(flow_id, member)
        for downstream in resolution.cancel_groups:
            await cancel_siblings(library, keys, downstream)
    partition = ExecutionId.parse(member).partition
    for lane in resolution.promoted_lanes:
        try:
            await mark_lane_work(library.client, partitions, lane, partition)
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("work hint for lane %s not marked (lane_hints will): %s", lane, exc)


class Completion(msgspec.Struct):
    execution_id: str
    flow_id: str
    outcome: str = ""


class CompletionListener:
    """Subscribes to ff:dag:completions and resolves the outgoing edges of each member
    that ends, each message in its own task (at most LISTENER_CONCURRENCY at once; the
    subscription is read no faster). Lost messages are the dependency_reconciler's."""

    def __init__(self, client, library: FunctionLibrary, partitions: PartitionConfig) -> None:
        self.client = client
        self.library = library
        self.partitions = partitions
        self._slots = trio.Semaphore(LISTENER_CONCURRENCY)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        started = False
        async with trio.open_nursery() as nursery:
            while True:
                try:
                    async with self.client.subscribe(DAG_COMPLETIONS_CHANNEL) as subscription:
                        if not started:
                            started = True
                            task_status.started()
                        async for _, message in subscription:
                            await self._slots.acquire()
                            nursery.start_soon(self._handle, message)
                except Exception as exc:
                    if not survivable(exc):
                        raise
                    log.warning("completion listener: %s; resubscribing", exc)
                    if not started:
                        started = True
                        task_status.started()
                    await trio.sleep(RESTART_DELAY_S)

    async def _handle(self, message: bytes) -> None:
        try:
            completion = msgspec.json.decode(message, type=Completion)
            member = ExecutionId.parse(completion.execution_id)
            resolution = await flow_fns.resolve_completion(
                self.library, completion.flow_id, member)
            await settle(self.library, self.partitions, member, resolution,
                         completion.flow_id)
        except Exception as exc:
            if not survivable(exc) and not isinstance(exc, msgspec.ValidationError
                                                        | msgspec.DecodeError):
                raise
            log.warning("completion listener: %r: %s", message[:200], exc)
        finally:
            self._slots.release()


class DependencyReconciler(Scanner):
    """Resolves the edges of dependency-blocked children whose upstream has ended (the
    safety net for lost completion notifications)."""

    name = "dependency_reconciler"

    async def cycle(self, now_ms: int) -> int:
        lanes = await self.engine.known_lanes()
        targets = [IndexKeys(p).lane(lane, "blocked:dependencies")
                   for p in range(self.engine.partitions.num_flow_partitions) for lane in lanes]
        replies = await pipelined(self.client, [("ZRANGE", key, 0, BATCH - 1) for key in targets])
        handled = 0
        for members in replies:
            for raw in members:
                eid = text(raw)
                if await self.act(eid, lambda eid=eid: self._resolve(eid)):
                    handled += 1
        return handled

    async def _resolve(self, eid: str) -> None:
        resolution = await flow_fns.resolve_dependency(self.library, eid)
        await settle(self.library, self.engine.partitions, eid, resolution)


SUMMARY_STATES = ("completed", "failed", "cancelled", "expired", "skipped", "active",
                  "suspended", "waiting", "delayed", "rate_limited", "waiting_children")


def derived_flow_state(counts: dict[str, int]) -> str:
    """The projector's reading of a flow from its members' public states."""
    total = sum(counts.values())
    if total and sum(counts.get(s, 0) for s in TERMINAL_PUBLIC_STATES) == total:
        lost = sum(counts.get(s, 0) for s in ("failed", "cancelled", "expired"))
        return "failed" if lost else "completed"
    if counts.get("active"):
        return "running"
    if any(counts.get(s) for s in ("suspended", "delayed", "rate_limited", "waiting_children")):
        return "blocked"
    return "open"


class FlowProjector(Scanner):
    """Writes each flow's summary (`ff:flow:..:summary`: member counts per public state
    from a sample of 50, the derived state) and drops finished or deleted flows from the
    partition's flow index."""

    name = "flow_projector"
    sample = 50

    async def cycle(self, now_ms: int) -> int:
        handled = 0
        for p in range(self.engine.partitions.num_flow_partitions):
            index = IndexKeys(p)
            flows = [text(f) async for f in self.client.sscan_iter(index.flow_index, count=100)]
            for flow_id in flows:
                if await self.act(flow_id, lambda f=flow_id, i=index: self._project(
                        f, i, now_ms)):
                    handled += 1
        return handled

    async def _project(self, flow_id: str, index: IndexKeys, now_ms: int) -> None:
        keys = FlowKeys(flow_id, index.tag)
        flow_state = await self.client.execute("HGET", keys.core, "public_flow_state")
        if flow_state is None:
            await self.client.execute("SREM", index.flow_index, flow_id)
            return
        total = int(await self.client.execute("SCARD", keys.members))
        sampled = [text(m) for m in await self.client.execute(
            "SRANDMEMBER", keys.members, self.sample)]
        states = await pipelined(self.client, [
            ("HGET", ExecKeys(m).core, "public_state") for m in sampled])
        counts: dict[str, int] = {}
        for state in states:
            counts[text(state)] = counts.get(text(state), 0) + 1
        derived = derived_flow_state(counts)
        fields: list[str | int] = [
            "total_members", total, "sampled_members", len(sampled),
            "public_flow_state", derived, "last_summary_update_at", now_ms]
        for state in SUMMARY_STATES:
            fields += [f"members_{state}", counts.get(state, 0)]
        await self.client.execute("HSET", keys.summary, *fields)
        if sampled and len(sampled) == total and derived in ("completed", "failed"):
            await self.client.execute("SREM", index.flow_index, flow_id)


class CancelReconciler(Scanner):
    """Finishes flow cancels whose grace has passed: the members the live dispatch did
    not reach (a crash, a shutdown that aborted it) are cancelled and acked."""

    name = "cancel_reconciler"

    async def cycle(self, now_ms: int) -> int:
        handled = 0
        for p in range(self.engine.partitions.num_flow_partitions):
            index = IndexKeys(p)
            due = await self.client.execute(
                "ZRANGE", index.cancel_backlog, "-inf", now_ms, "BYSCORE", "LIMIT", 0, BATCH)
            for raw in due:
                flow_id = text(raw)
                if await self.act(flow_id, lambda f=flow_id, i=index: self._drain(f, i)):
                    handled += 1
        return handled

    async def _drain(self, flow_id: str, index: IndexKeys) -> None:
        keys = FlowKeys(flow_id, index.tag)
        reason = await self.client.execute("HGET", keys.core, "cancel_reason")
        if reason is None:
            await self.client.execute("DEL", keys.pending_cancels)
            await self.client.execute("ZREM", index.cancel_backlog, flow_id)
            return
        owed = [text(m) for m in await self.client.execute(
            "SRANDMEMBER", keys.pending_cancels, RECONCILE_MEMBERS)]
        if not owed:
            await self.client.execute("ZREM", index.cancel_backlog, flow_id)
            return
        await cancel_flow_members(self.library, keys, owed, text(reason) or "flow_cancelled")


class _GroupScanner(Scanner):
    """Walks a sample of each partition's pending_cancel_groups (`<flow_id>|<eid>`)."""

    async def cycle(self, now_ms: int) -> int:
        handled = 0
        for p in range(self.engine.partitions.num_flow_partitions):
            index = IndexKeys(p)
            groups = await self.client.execute(
                "SRANDMEMBER", index.pending_cancel_groups, BATCH)
            for raw in groups:
                flow_id, _, downstream = text(raw).partition("|")
                keys = FlowKeys(flow_id, index.tag)
                if await self.act(text(raw), lambda k=keys, d=downstream: self.handle(k, d)):
                    handled += 1
        return handled

    @abstractmethod
    async def handle(self, keys: FlowKeys, downstream: str) -> None:
        """Implemented by each subclass."""


class EdgeCancelDispatcher(_GroupScanner):
    name = "edge_cancel_dispatcher"

    async def handle(self, keys: FlowKeys, downstream: str) -> None:
        await cancel_siblings(self.library, keys, downstream)


class EdgeCancelReconciler(_GroupScanner):
    name = "edge_cancel_reconciler"

    async def handle(self, keys: FlowKeys, downstream: str) -> None:
        action = await flow_fns.reconcile_sibling_cancel_group(self.library, keys, downstream)
        SIBLING_RECONCILES.labels(action=action.action).inc()


FLOW_SCANNER_TYPES: tuple[type[Scanner], ...] = (
    DependencyReconciler, FlowProjector, CancelReconciler, EdgeCancelDispatcher,
    EdgeCancelReconciler,
)
