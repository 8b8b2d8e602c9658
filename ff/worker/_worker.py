"""`Worker`: connecting, registering, claiming, and the handler runtime (`run`).

    worker = Worker(worker_id="mailer", lanes=["default"])

    @worker.handler("send_email")
    async def send(task, payload):
        return {"sent": True}

    await worker.run()            # or: async with Worker.connect(...) as w: await w.claim_next()

What lives here: the worker's session (client, library check, registry entry and its
heartbeat), the claim path (grant -> lease -> `ClaimedTask`, lanes round-robin, bounded by
`max_concurrent`) and the runtime loop with its drain. Everything runs in nurseries the
worker opens; nothing outlives `async with worker` or `run()`. What must not live here:
lease fencing and renewal (`_task.py`), where leases come from (`_grants.py`).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec
import trio

from ff.admission import Admission
from ff.client import HttpClient, HttpError, HttpStatusError
from ff.config import cluster_from_env
from ff.core.errors import FFError
from ff.core.ids import validate_lane, validate_worker_id
from ff.core.keys import CONFIG_PARTITIONS
from ff.core.partitions import PartitionConfig
from ff.core.policy import capabilities_csv
from ff.core.records import LeaseHandle
from ff.embedded import URL_FILE
from ff.log_summary import LogSummary
from ff.resp import Client
from ff.resp import errors as resp_errors
from ff.scheduler import Scheduler, new_worker_instance_id
from ff.script import scheduling as scheduling_fns
from ff.script.library import FunctionLibrary, text
from ff.script.scheduling import CLAIM_BATCH_MAX
from ff.transient import is_transient
from ff.worker._grants import LeaseSource, SchedulerLeases, ServerGrants, _Identity
from ff.worker._spend import TaskSpend
from ff.worker._summary import TaskCounts
from ff.worker._task import ClaimedTask, LeaseLostError, renew_all

log = logging.getLogger("ff.worker")

Handler = Callable[[ClaimedTask, Any], Awaitable[Any]]

IDLE_BACKOFF_S = (0.05, 1.0)  # first and longest pause after a claim found nothing
CLAIMERS = 2  # claim calls in flight at once while work keeps coming
CLEANUP_TIMEOUT_S = 5.0  # bound on each shielded cleanup call (final fail, deregister)
# Errors a claim attempt may meet that say "not now", not "this worker is broken".
CLAIM_ERRORS = (FFError, resp_errors.RespError, HttpError, HttpStatusError)


def default_valkey_url() -> str | None:
    """FF_VALKEY_URL, else the URL an embedded `ff serve` left in ./.ff (or FF_DATA_DIR)."""
    url = os.environ.get("FF_VALKEY_URL", "").strip()
    if url:
        return url
    path = Path(os.environ.get("FF_DATA_DIR") or ".ff") / URL_FILE
    return (path.read_text().strip() or None) if path.is_file() else None


def _tokens(values: Any, name: str) -> tuple[str, ...]:
    """Lanes or capabilities as a tuple (capabilities sorted); a bare string is refused,
    since `lanes="default"` would otherwise mean seven one-letter lanes."""
    if isinstance(values, str):
        raise TypeError(f"{name} takes a list of strings, not a string: [{values!r}]")
    return tuple(sorted(set(values))) if name == "capabilities" else tuple(values)


class WorkerConfig(msgspec.Struct, frozen=True, kw_only=True):
    valkey_url: str | None = None
    server_url: str | None = None
    api_token: str | None = None
    worker_id: str = ""
    worker_instance_id: str | None = None
    lanes: tuple[str, ...] = ("default",)
    capabilities: tuple[str, ...] = ()
    lease_ttl_ms: int = 30_000
    max_concurrent: int = 16
    namespace: str = "default"
    grant_ttl_ms: int = 5_000
    grace_period_s: float = 30.0
    summary_interval_s: float = 10.0


class _HandlerPool:
    """The nursery handlers run in, hosted by a task of its own behind a shield, together
    with the worker's session (connections, renewals) when `run()` opened it: cancelling
    `run()` then starts a drain instead of cutting handlers off mid-call. Handlers sit in
    their own scope inside, so the grace deadline cancels them but not the connections
    their final `fail` needs."""

    def __init__(self) -> None:
        self.handlers_scope = trio.CancelScope()
        self.nursery: trio.Nursery
        self.running = 0
        self._idle = trio.Event()

    def enter(self) -> None:
        self.running += 1

    def leave(self) -> None:
        self.running -= 1
        if self.running == 0:
            self._idle.set()
            self._idle = trio.Event()

    async def wait_idle(self) -> None:
        if self.running:
            await self._idle.wait()


class Worker:
    """A worker: its identity and settings, its handlers, and (once entered) its session."""

    def __init__(
        self,
        valkey_url: str | None = None,
        *,
        server_url: str | None = None,
        worker_id: str | None = None,
        worker_instance_id: str | None = None,
        lanes: list[str] | tuple[str, ...] = ("default",),
        capabilities: list[str] | set[str] | tuple[str, ...] = (),
        lease_ttl_ms: int = 30_000,
        max_concurrent: int = 16,
        namespace: str = "default",
        api_token: str | None = None,
        grace_period_s: float = 30.0,
        summary_interval_s: float = 10.0,
    ) -> None:
        self.config = WorkerConfig(
            valkey_url=valkey_url, server_url=server_url, api_token=api_token,
            worker_id=worker_id or f"worker-{socket.gethostname()}",
            worker_instance_id=worker_instance_id, lanes=_tokens(lanes, "lanes"),
            capabilities=_tokens(capabilities, "capabilities"), lease_ttl_ms=lease_ttl_ms,
            max_concurrent=max_concurrent, namespace=namespace, grace_period_s=grace_period_s,
            summary_interval_s=summary_interval_s,
        )
        self.handlers: dict[str, Handler] = {}
        self._stack: AsyncExitStack | None = None
        self._stopping = trio.Event()
        self._wait_scopes: set[trio.CancelScope] = set()
        self._tasks: set[ClaimedTask] = set()
        self._counts = TaskCounts()
        self._failure_log = LogSummary(log, interval=summary_interval_s or 10.0)
        self._lane_cursor = 0
        self._admission: Admission | None = None

    @classmethod
    def connect(cls, valkey_url: str | None = None, **settings: Any) -> Worker:
        """A worker to use as `async with Worker.connect(url, worker_id=..., ...) as w`."""
        return cls(valkey_url, **settings)

    def configure(self, **changes: Any) -> None:
        """Change settings before connecting (the CLI applies its flags this way)."""
        if self._stack is not None:
            raise RuntimeError("configure() must be called before the worker connects")
        for name in ("lanes", "capabilities"):
            if name in changes:
                changes[name] = _tokens(changes[name], name)
        self.config = msgspec.structs.replace(self.config, **changes)

    def handler(self, kind: str) -> Callable[[Handler], Handler]:
        """Registers `async def fn(task, payload)` for executions of `kind`."""
        def register(fn: Handler) -> Handler:
            self.handlers[kind] = fn
            return fn
        return register

    @property
    def in_flight(self) -> int:
        """Claimed tasks not yet ended (each holds one of `max_concurrent` slots)."""
        return self.config.max_concurrent - self._slots.value if self._stack else 0

    # -- session ----------------------------------------------------------------------

    async def __aenter__(self) -> Worker:
        """Connect, check the function library, register, start the heartbeat."""
        if self._stack is not None:
            raise RuntimeError("the worker is already connected")
        cfg = self._validated_config()
        self.config = cfg
        async with AsyncExitStack() as stack:
            self.client = await stack.enter_async_context(Client.from_url(
                cfg.valkey_url or "", pool_size=4, cluster=cluster_from_env(),
                client_name=f"ff-worker:{cfg.worker_instance_id}"))
            self.library = FunctionLibrary(self.client)
            await self.library.ensure_loaded(replace=False)
            self._leases = await self._lease_source(stack, cfg)
            await self._register()
            stack.push_async_callback(self._deregister)
            self._slots = trio.Semaphore(cfg.max_concurrent)
            self._nursery = await stack.enter_async_context(trio.open_nursery())
            stack.push_async_callback(self._end_session)
            self._nursery.start_soon(self._heartbeat)
            self._nursery.start_soon(renew_all, self.library, lambda: self._tasks,
                                     cfg.lease_ttl_ms)
            if cfg.summary_interval_s > 0:
                self._nursery.start_soon(self._counts.log_every, cfg.summary_interval_s,
                                         lambda: len(self._tasks))
            self._stack = stack.pop_all()
        log.info("worker connected", extra={
            "worker_id": cfg.worker_id, "worker_instance_id": cfg.worker_instance_id,
            "lanes": list(cfg.lanes), "grants": "server" if cfg.server_url else "scheduler"})
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> bool | None:
        stack, self._stack = self._stack, None
        assert stack is not None
        return await stack.__aexit__(exc_type, exc, tb)

    def _validated_config(self) -> WorkerConfig:
        cfg = self.config
        url = cfg.valkey_url or default_valkey_url()
        if not url:
            raise ValueError("no Valkey URL: pass valkey_url=, set FF_VALKEY_URL, or run "
                             "`ff serve` (embedded) in this directory")
        if not cfg.lanes:
            raise ValueError("at least one lane is required")
        for lane in cfg.lanes:
            validate_lane(lane)
        instance = cfg.worker_instance_id or new_worker_instance_id()
        validate_worker_id(cfg.worker_id, "worker_id")
        validate_worker_id(instance, "worker_instance_id")
        capabilities_csv(cfg.capabilities, "worker")
        if cfg.lease_ttl_ms < 1 or cfg.max_concurrent < 1:
            raise ValueError("lease_ttl_ms and max_concurrent must be at least 1")
        if cfg.summary_interval_s < 0:
            raise ValueError("summary_interval_s must not be negative (0 turns it off)")
        return msgspec.structs.replace(cfg, valkey_url=url, worker_instance_id=instance,
                                       lanes=tuple(dict.fromkeys(cfg.lanes)))

    async def _lease_source(self, stack: AsyncExitStack, cfg: WorkerConfig) -> LeaseSource:
        identity = _Identity(cfg.worker_id, cfg.worker_instance_id or "", cfg.capabilities,
                             cfg.grant_ttl_ms, cfg.lease_ttl_ms)
        raw = await self.client.execute("HGETALL", CONFIG_PARTITIONS)
        stored = {text(k): int(v) for k, v in (raw or {}).items()}
        if not stored:
            log.warning("partition counts not found (no server booted yet?): using "
                        "the defaults", extra={"key": CONFIG_PARTITIONS})
        partitions = PartitionConfig(**stored)
        self._admission = Admission(self.client, self.library, partitions)
        if cfg.server_url:
            http = await stack.enter_async_context(HttpClient(cfg.server_url,
                                                              token=cfg.api_token))
            return ServerGrants(http, self.library, identity)
        return SchedulerLeases(Scheduler(self.client, self.library, partitions), identity)

    @property
    def _alive_ttl_ms(self) -> int:
        return max(2 * self.config.lease_ttl_ms, 1000)

    async def _register(self) -> None:
        cfg = self.config
        await scheduling_fns.register_worker(
            self.library, cfg.namespace, cfg.worker_instance_id or "",
            worker_id=cfg.worker_id, lanes_csv=",".join(sorted(cfg.lanes)),
            caps_csv=",".join(cfg.capabilities), ttl_ms=self._alive_ttl_ms)

    async def _heartbeat(self) -> None:
        """Refreshes the liveness key every third of its TTL; re-registers if it lapsed
        (a long pause, a flushed or failed-over Valkey)."""
        while True:
            await trio.sleep(self._alive_ttl_ms / 3000)
            try:
                beat = await scheduling_fns.heartbeat_worker(
                    self.library, self.config.namespace, self.config.worker_instance_id or "")
                if beat.outcome == "not_registered":
                    await self._register()
            except (FFError, resp_errors.RespError) as exc:
                log.warning("worker heartbeat failed", extra={"error": repr(exc)})

    async def _end_session(self) -> None:
        """Give back leases still held (the attempt is failed as retryable
        `worker_shutdown` rather than left to expire), then stop renewals and heartbeat."""
        for task in list(self._tasks):
            await self._fail_unfinished(task, "worker_shutdown")
        self._nursery.cancel_scope.cancel()

    async def _deregister(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(CLEANUP_TIMEOUT_S):
            try:
                await scheduling_fns.deregister_worker(
                    self.library, self.config.namespace, self.config.worker_instance_id or "")
            except (FFError, resp_errors.RespError) as exc:
                log.warning("worker deregistration failed", extra={"error": repr(exc)})
        log.info("worker disconnected",
                 extra={"worker_instance_id": self.config.worker_instance_id})

    async def _fail_unfinished(self, task: ClaimedTask, category: str) -> None:
        """The one place a lease is given back on the way out; shielded so a cancelled
        worker still writes it, bounded so a dead Valkey cannot hold the exit."""
        if task.ended or task.lease_lost is not None:
            return
        with trio.CancelScope(shield=True), trio.move_on_after(CLEANUP_TIMEOUT_S):
            try:
                await task.fail("worker stopped before the task finished", category)
            except (FFError, LeaseLostError, RuntimeError, resp_errors.RespError) as exc:
                log.warning("could not give back a task", extra={
                    "execution_id": task.execution_id, "error": repr(exc)})

    # -- claiming ---------------------------------------------------------------------

    async def claim_next(self) -> ClaimedTask | None:
        """The next task from the worker's lanes (round-robin), or None when there is
        nothing to do or all `max_concurrent` slots are taken."""
        if self._stack is None:
            raise RuntimeError("use `async with worker:` (or Worker.connect) first")
        try:
            self._slots.acquire_nowait()
        except trio.WouldBlock:
            return None
        try:
            tasks = await self._claim(1, holds_slot=True)
        except BaseException:
            self._slots.release()
            raise
        if not tasks:
            self._slots.release()
        return tasks[0] if tasks else None

    async def _claim(self, count: int, *, holds_slot: bool) -> list[ClaimedTask]:
        """Up to `count` tasks from one lane, in one call: a pass over the lanes, starting
        one further each call, until one has work. The caller has taken `count` slots;
        `holds_slot` says whether each task gives its slot back itself when it ends."""
        lanes = self.config.lanes
        start = self._lane_cursor
        self._lane_cursor = (start + 1) % len(lanes)
        for i in range(len(lanes)):
            if self._stopping.is_set():
                return []  # a claim already past this point still runs, in the drain
            lane = lanes[(start + i) % len(lanes)]
            claimed_at = trio.current_time()
            try:
                leases = await self._leases.next_leases(lane, count)
            except FFError as exc:
                if is_transient(exc):
                    raise
                # Lost a race for it, the grant lapsed, or a reclaim hit its cap.
                log.debug("grant not usable", extra={"lane_id": lane, "reason": exc.code})
                continue
            if not leases:
                continue
            tasks = [ClaimedTask(self.library, lease, lease_ttl_ms=self.config.lease_ttl_ms,
                                 claimed_at=claimed_at,
                                 on_release=partial(self._task_released, holds_slot=holds_slot),
                                 spawn=self._nursery.start_soon, spend=self._spend(lease))
                     for lease in leases]
            self._tasks.update(tasks)
            return tasks
        return []

    def _spend(self, lease: LeaseHandle) -> TaskSpend:
        assert self._admission is not None, "set when the lease source was made"
        return TaskSpend(self._admission, lease.execution_id, lease.attempt_index,
                         lease.quota_policy_id)

    def _task_released(self, task: ClaimedTask, *, holds_slot: bool) -> None:
        self._tasks.discard(task)
        self._counts.ended(task.outcome)
        if holds_slot:
            self._slots.release()

    # -- runtime ----------------------------------------------------------------------

    def stop(self) -> None:
        """Ask `run()` to drain: no new claims; in-flight tasks get the grace period."""
        self._stopping.set()
        for scope in self._wait_scopes:
            scope.cancel()

    async def run(self, *, handle_signals: bool = True,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Claims and runs tasks until stopped (SIGTERM/SIGINT, `stop()` or cancellation),
        then drains. Connects first unless already inside `async with worker`."""
        self._stopping = trio.Event()
        pool = _HandlerPool()
        async with trio.open_nursery() as root:
            await root.start(self._host, pool)
            if handle_signals and threading.current_thread() is threading.main_thread():
                root.start_soon(self._watch_signals, pool)
            task_status.started()
            try:
                await self._claim_loop(pool)
            finally:
                with trio.CancelScope(shield=True):
                    await self._drain(pool)
                root.cancel_scope.cancel()  # the signal watcher; the host is shielded

    async def _host(self, pool: _HandlerPool, *, task_status: trio.TaskStatus[None]) -> None:
        with trio.CancelScope() as guard:  # cancellable while connecting, shielded after
            async with AsyncExitStack() as stack:
                if self._stack is None:
                    await stack.enter_async_context(self)
                guard.shield = True  # from here on it ends when the drain cancels handlers
                with pool.handlers_scope:
                    async with trio.open_nursery() as nursery:
                        pool.nursery = nursery
                        task_status.started()
                        await trio.sleep_forever()

    async def _watch_signals(self, pool: _HandlerPool) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                if not self._stopping.is_set():
                    log.info("draining", extra={"signal": signal.Signals(signum).name,
                                                "in_flight": pool.running})
                    self.stop()
                else:
                    log.warning("second signal: giving back in-flight tasks now")
                    pool.handlers_scope.cancel()

    async def _drain(self, pool: _HandlerPool) -> None:
        self._stopping.set()
        with trio.move_on_after(self.config.grace_period_s):
            await pool.wait_idle()
        if pool.running:
            log.warning("grace period over: giving back in-flight tasks",
                        extra={"in_flight": pool.running})
        pool.handlers_scope.cancel()

    async def _until_stopped(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> bool:
        """Runs a wait that `stop()` interrupts; False when it was interrupted."""
        with trio.CancelScope() as scope:
            self._wait_scopes.add(scope)
            if self._stopping.is_set():
                scope.cancel()
            try:
                await fn(*args)
            finally:
                self._wait_scopes.discard(scope)
        return not scope.cancelled_caught

    async def _claim_loop(self, pool: _HandlerPool) -> None:
        """One claimer polls (with idle backoff); while claims keep succeeding, a helper
        claims alongside it, so slots freed while a claim is in flight need not wait for
        it. Each claim takes every free slot at once (one call for up to
        CLAIM_BATCH_MAX leases). Idle, the helper waits and costs nothing."""
        self._busy = trio.Event()
        async with trio.open_nursery() as claimers:
            for i in range(min(CLAIMERS, self.config.max_concurrent)):
                claimers.start_soon(self._claimer, pool, i == 0)

    def _take_free_slots(self) -> int:
        """After the first slot: every other free one, up to one claim's worth."""
        taken = 1
        while taken < CLAIM_BATCH_MAX:
            try:
                self._slots.acquire_nowait()
            except trio.WouldBlock:
                break
            taken += 1
        return taken

    async def _claimer(self, pool: _HandlerPool, primary: bool) -> None:
        idle, longest = IDLE_BACKOFF_S
        while not self._stopping.is_set():
            if not primary and not await self._until_stopped(self._busy.wait):
                return
            if not await self._until_stopped(self._slots.acquire):
                return
            await trio.sleep(0)  # let tasks finishing in this tick free their slots first
            count = self._take_free_slots()
            try:
                tasks = await self._claim(count, holds_slot=False)
            except CLAIM_ERRORS as exc:
                log.warning("claim failed", extra={"error": repr(exc)})
                tasks = []
            for _ in range(count - len(tasks)):
                self._slots.release()
            if not tasks:
                if self._busy.is_set():
                    self._busy = trio.Event()  # nothing there: the helper rests
                if not primary:
                    continue
                if not await self._until_stopped(trio.sleep, idle):
                    return
                idle = min(idle * 2, longest)
                continue
            self._busy.set()
            idle = IDLE_BACKOFF_S[0]
            for task in tasks:
                pool.enter()
                pool.nursery.start_soon(self._execute, task, pool, name=f"ff-task-{task.kind}")

    async def _execute(self, task: ClaimedTask, pool: _HandlerPool) -> None:
        """Runs one task to its end and always gives its slot back. Its two lines are
        debug: at info, `TaskCounts` sums tasks up once per interval instead."""
        started = trio.current_time()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("task claimed", extra={
                "execution_id": task.execution_id, "kind": task.kind,
                "attempt_index": task.attempt_index, "lane_id": task.lane_id})
        outcome = "unfinished"
        try:
            outcome = await self._dispatch(task)
        except LeaseLostError as exc:
            outcome = f"lease_lost:{exc.code}"
        except (FFError, resp_errors.RespError) as exc:
            log.warning("task call failed", extra={"execution_id": task.execution_id,
                                                   "error": repr(exc)})
            outcome = f"error:{exc!r}"
        finally:
            if not task.ended and task.lease_lost is None:
                category = "worker_shutdown" if self._stopping.is_set() else "worker_error"
                await self._fail_unfinished(task, category)
                outcome = f"failed:{category}"
            self._slots.release()
            pool.leave()
            if log.isEnabledFor(logging.DEBUG):
                log.debug("task finished", extra={
                    "execution_id": task.execution_id, "kind": task.kind, "outcome": outcome,
                    "duration_ms": round((trio.current_time() - started) * 1000)})

    async def _dispatch(self, task: ClaimedTask) -> str:
        handler = self.handlers.get(task.kind)
        if handler is None:
            return await self._fail(
                task, f'runtime: no handler registered for execution_kind "{task.kind}"',
                "runtime_no_handler")
        try:
            payload = decode_payload(task)
        except ValueError as exc:
            return await self._fail(task, f"extractor: payload decode failed: {exc}",
                                    "extractor_payload_decode")
        error: Exception | None = None
        value: Any = None
        try:
            with task.lease_scope():
                value = await handler(task, payload)
        except Exception as exc:
            error = exc
        if task.lease_lost is not None:
            return f"lease_lost:{task.lease_lost.code}"
        if task.ended:
            return task.outcome or "ended"
        if error is not None:
            return await self._fail(task, describe(error), "handler_error",
                                    type(error).__name__)
        try:
            await task.complete(value)
        except (TypeError, FFError) as exc:  # not encodable, or refused (too large)
            return await self._fail(task, f"result rejected: {exc}", "handler_error",
                                    "result_rejected")
        return "completed"

    async def _fail(self, task: ClaimedTask, reason: str, category: str,
                    cause: str = "") -> str:
        """Fails the attempt and logs why at warning, summarised per kind and cause so a
        handler failing on every task writes one line per interval, not one per task."""
        self._failure_log.log(logging.WARNING, (task.kind, category, cause),
                              "task failed: %s (kind %s, category %s)", reason[:500],
                              task.kind, category)
        return "failed:" + await task.fail(reason, category)


def decode_payload(task: ClaimedTask) -> Any:
    """JSON-decoded when the submitter said `json`, else the raw bytes."""
    if task.payload_encoding == "json":
        return msgspec.json.decode(task.payload) if task.payload else None
    return task.payload


def describe(exc: BaseException) -> str:
    """`Type: message`, then each cause in the chain, joined by ': '."""
    parts: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(parts) < 8:
        parts.append(f"{type(current).__name__}: {current}")
        current = current.__cause__
    return ": ".join(parts)[:4000]
