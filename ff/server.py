"""`Server`: the public API of ff, usable in-process from trio.

    async with Server.running(config) as server:
        created = await server.create_execution(CreateExecutionArgs(execution_kind="email"))

`running` connects (or starts an embedded valkey-server when no address is configured),
boots the deployment (version gate, partition lock, HMAC keystore, function library,
lanes) and runs the engine scanners in its nursery until the block exits. The HTTP front
end is a thin layer over these methods; nothing here knows about HTTP.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import msgspec
import trio

from ff.config import ConfigError, ServerConfig, validate_secret
from ff.core.errors import FFError, NotFoundError, ValidationError
from ff.core.ids import ExecutionId, validate_lane, validate_worker_id
from ff.core.keys import CONFIG_PARTITIONS, LANES, ExecKeys, IndexKeys
from ff.core.partitions import PartitionConfig, flow_tag
from ff.core.policy import capabilities_csv, decode_policy, encode_policy
from ff.core.records import (
    CancelExecutionArgs,
    CancelResult,
    ClaimGrant,
    CreateExecutionArgs,
    CreateResult,
    ExecutionInfo,
    ExecutionPage,
    ReclaimCapExceeded,
    ReclaimGrantArgs,
    ReclaimGranted,
    ReclaimGrantResult,
    ReclaimNotReclaimable,
    RevokeResult,
)
from ff.core.states import StateVector
from ff.embedded import EmbeddedServer
from ff.engine import Engine
from ff.resp import Client
from ff.scheduler import Scheduler
from ff.script import execution as execution_fns
from ff.script import lease as lease_fns
from ff.script import scheduling as scheduling_fns
from ff.script.library import FunctionLibrary, text

log = logging.getLogger("ff.server")

DEFAULT_DEDUP_TTL_MS = 24 * 3600 * 1000
LIST_LIMIT_MAX = 1000
MIN_VERSIONS = {"valkey": (7, 2), "redis": (7, 0)}
SHUTDOWN_GRACE_S = 15.0
SECRET_FILE = "hmac_secret"
URL_FILE = "valkey.url"


def load_or_create_secret(data_dir: Path) -> str:
    """The embedded deployment's HMAC secret: generated once, kept beside the data."""
    path = data_dir / SECRET_FILE
    if path.exists():
        return validate_secret(path.read_text().strip())
    secret = secrets.token_hex(32)
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return secret


def server_version(info: str) -> tuple[str, tuple[int, ...]]:
    """(flavour, version) from INFO server text."""
    fields = dict(
        line.split(":", 1) for line in info.splitlines() if ":" in line and not line.startswith("#")
    )
    raw = fields.get("valkey_version")
    flavour = "valkey"
    if raw is None:
        raw = fields.get("redis_version", "0")
        flavour = "valkey" if fields.get("server_name", "").lower() == "valkey" else "redis"
    version = tuple(int(x) for x in re.findall(r"\d+", raw)[:3])
    return flavour, version


def _payload_bytes(value: object) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b <= 255 for b in value):
        return bytes(value)
    raise ValidationError("invalid_input", "input_payload must be bytes 0-255 or a string")


def _text_or_none(value: object) -> str | None:
    return text(value) or None


class Server:
    """The engine's public API. Build it with `Server.running(config)`."""

    def __init__(self, config: ServerConfig, client: Client) -> None:
        self._config = config
        self._client = client
        self.library = FunctionLibrary(client)
        self.scheduler = Scheduler(client, self.library, config.partitions)
        self.engine = Engine(client, self.library, config)
        self.embedded: EmbeddedServer | None = None
        self._known_lanes: set[str] = set()
        self._engine_scope: trio.CancelScope | None = None
        self.shutting_down = False

    # -- lifecycle -------------------------------------------------------------------

    @classmethod
    @asynccontextmanager
    async def running(cls, config: ServerConfig | None = None) -> AsyncIterator[Server]:
        """Boot a server, run its scanners, and shut it down when the block exits."""
        config = config or ServerConfig.from_env()
        async with AsyncExitStack() as stack:
            embedded = None
            if config.valkey_url is None:
                data_dir = Path(config.data_dir)
                embedded = EmbeddedServer(data_dir / "valkey")
                await embedded.start()
                stack.push_async_callback(embedded.stop)
                (data_dir / URL_FILE).write_text(embedded.url + "\n")
                secret = config.waitpoint_hmac_secret or load_or_create_secret(data_dir)
                config = msgspec.structs.replace(
                    config, valkey_url=embedded.url, waitpoint_hmac_secret=secret
                )
            elif not config.waitpoint_hmac_secret:
                raise ConfigError("FF_WAITPOINT_HMAC_SECRET is required with an external Valkey")
            client = await stack.enter_async_context(
                Client.from_url(config.valkey_url, pool_size=config.pool_size,
                                client_name="ff-server")
            )
            server = cls(config, client)
            server.embedded = embedded
            await server.start()
            async with trio.open_nursery() as nursery:
                server._engine_scope = nursery.cancel_scope
                if config.scanners_enabled:
                    await nursery.start(server.engine.run)
                try:
                    yield server
                finally:
                    await server.shutdown()

    async def start(self) -> None:
        """The boot sequence; order matters (the version gate before any write)."""
        await self._check_server_version()
        await self._lock_partition_config()
        await self._install_hmac_secret()
        await self.library.ensure_loaded(force=self._config.force_lua_reload)
        await self._client.execute("SADD", LANES, *self._config.lanes)
        self._known_lanes.update(self._config.lanes)
        log.info("server started", extra={"scanners": len(self.engine.scanners)})

    async def shutdown(self) -> None:
        """Stop the scanners. Idempotent; in-flight API calls are not interrupted."""
        self.shutting_down = True
        if self._engine_scope is not None:
            self._engine_scope.cancel()

    async def _check_server_version(self) -> None:
        info = text(await self._client.execute("INFO", "server"))
        flavour, version = server_version(info)
        minimum = MIN_VERSIONS[flavour]
        if version < minimum:
            raise ConfigError(
                f"{flavour} {'.'.join(map(str, version))} is too old: ff needs "
                f"{flavour} >= {'.'.join(map(str, minimum))} (Functions and RESP3)"
            )

    async def _lock_partition_config(self) -> None:
        wanted = self._config.partitions.as_fields()
        for name, value in wanted.items():
            await self._client.execute("HSETNX", CONFIG_PARTITIONS, name, value)
        raw = await self._client.execute("HGETALL", CONFIG_PARTITIONS)
        stored = {text(k): text(v) for k, v in raw.items()}
        problem = self._config.partitions.mismatch_with(stored)
        if problem:
            raise ConfigError(problem)

    async def _install_hmac_secret(self) -> None:
        """Seed every partition's keystore; a stored secret is never overwritten."""
        secret = self._config.waitpoint_hmac_secret
        if not secret:
            return
        pipe = self._client.pipeline()
        for p in range(self._config.partitions.num_flow_partitions):
            key = f"ff:sec:{flow_tag(p)}:waitpoint_hmac"
            pipe.execute_command("HSETNX", key, "current_kid", "k1")
            pipe.execute_command("HSETNX", key, "secret:k1", secret)
        await pipe.run(raise_on_error=True)

    # -- accessors -------------------------------------------------------------------

    @property
    def client(self) -> Client:
        return self._client

    @property
    def config(self) -> ServerConfig:
        return self._config

    @property
    def partition_config(self) -> PartitionConfig:
        return self._config.partitions

    # -- executions ------------------------------------------------------------------

    async def create_execution(self, args: CreateExecutionArgs) -> CreateResult:
        lane = validate_lane(args.lane_id)
        if not args.execution_kind:
            raise ValidationError("invalid_input", "execution_kind is required")
        if args.execution_id is None:
            eid = ExecutionId.solo(lane, self._config.partitions)
        else:
            eid = ExecutionId.parse(args.execution_id)
        if eid.partition >= self._config.partitions.num_flow_partitions:
            raise ValidationError("invalid_execution_id", "partition outside the configured range")
        if args.partition_id is not None and args.partition_id != eid.partition:
            raise ValidationError("invalid_input", "partition_id does not match execution_id")
        policy = decode_policy(msgspec.to_builtins(args.policy)) if args.policy else None
        if policy is not None:
            capabilities_csv(policy.required_capabilities(), "required")
        delay_until = args.delay_until
        if delay_until is None and policy is not None:
            delay_until = policy.delay_until
        dedup_ttl = 0
        if args.idempotency_key:
            dedup_ttl = (policy.dedup_window_ms if policy and policy.dedup_window_ms
                         else DEFAULT_DEDUP_TTL_MS)
        reply = await execution_fns.create_execution(
            self.library, eid,
            namespace=args.namespace, lane_id=lane, execution_kind=args.execution_kind,
            priority=args.priority, creator_identity=args.creator_identity,
            policy_json=encode_policy(policy), input_payload=_payload_bytes(args.input_payload),
            payload_encoding=args.payload_encoding or "", delay_until=delay_until,
            dedup_ttl_ms=dedup_ttl, idempotency_key=args.idempotency_key or "",
            tags_json=msgspec.json.encode(args.tags).decode() if args.tags else "",
            execution_deadline_at=args.execution_deadline_at, partition_id=eid.partition,
        )
        await self._register_lane(lane)
        if reply.status == "DUPLICATE":
            existing = reply.str(0)
            return CreateResult(existing, await self.get_execution_state(existing), True)
        return CreateResult(reply.str(0), reply.str(1))

    async def _register_lane(self, lane: str) -> None:
        if lane not in self._known_lanes:
            await self._client.execute("SADD", LANES, lane)
            self._known_lanes.add(lane)

    async def cancel_execution(self, execution_id: str, args: CancelExecutionArgs) -> CancelResult:
        eid = ExecutionId.parse(execution_id)
        if args.execution_id is not None and args.execution_id != eid:
            raise ValidationError("invalid_input", "execution_id in the body does not match")
        reply = await execution_fns.cancel_execution(
            self.library, eid, reason=args.reason, source=args.source or "operator_override",
            lease_id=args.lease_id or "",
            lease_epoch="" if args.lease_epoch is None else str(args.lease_epoch),
        )
        return CancelResult(eid, "cancelled", reply.str(1))

    async def get_execution_state(self, execution_id: str) -> str:
        eid = ExecutionId.parse(execution_id)
        state = await self._client.execute("HGET", ExecKeys(eid).core, "public_state")
        if state is None:
            raise NotFoundError("execution_not_found", f"execution not found: {eid}")
        return text(state)

    async def get_execution_result(self, execution_id: str) -> bytes | None:
        """The stored result; poll get_execution_state for `completed` first."""
        eid = ExecutionId.parse(execution_id)
        return await self._client.execute("GET", ExecKeys(eid).result)

    async def get_execution(self, execution_id: str) -> ExecutionInfo:
        eid = ExecutionId.parse(execution_id)
        raw = await self._client.execute("HGETALL", ExecKeys(eid).core)
        if not raw:
            raise NotFoundError("execution_not_found", f"execution not found: {eid}")
        core = {text(k): text(v) for k, v in raw.items()}
        return ExecutionInfo(
            execution_id=eid,
            namespace=core.get("namespace", ""),
            lane_id=core.get("lane_id", ""),
            priority=int(core.get("priority") or 0),
            execution_kind=core.get("execution_kind", ""),
            state_vector=StateVector(
                lifecycle_phase=core.get("lifecycle_phase", ""),
                ownership_state=core.get("ownership_state", ""),
                eligibility_state=core.get("eligibility_state", ""),
                blocking_reason=core.get("blocking_reason", ""),
                terminal_outcome=core.get("terminal_outcome", ""),
                attempt_state=core.get("attempt_state", ""),
                public_state=core.get("public_state", ""),
            ),
            public_state=core.get("public_state", ""),
            created_at=core.get("created_at", ""),
            current_attempt_index=int(core.get("current_attempt_index") or 0),
            blocking_detail=core.get("blocking_detail", ""),
            flow_id=core.get("flow_id") or None,
            started_at=core.get("started_at") or None,
            completed_at=core.get("completed_at") or None,
        )

    async def list_executions(
        self,
        partition: int,
        *,
        cursor: str | None = None,
        limit: int = 50,
        lane: str | None = None,
        state: str | None = None,
        offset: int = 0,
    ) -> ExecutionPage:
        """One page of a partition's executions.

        Cursor form (no lane): ids sorted, strictly after `cursor`. Filter form (lane
        given): a ZRANGE over the lane index for `state` from `offset`, plus pipelined
        HMGETs to keep only executions whose public_state matches.
        """
        if not 0 <= partition < self._config.partitions.num_flow_partitions:
            raise ValidationError("invalid_input", "partition outside the configured range")
        limit = max(0, min(limit, LIST_LIMIT_MAX))
        if offset < 0:
            raise ValidationError("invalid_offset", "offset must not be negative")
        idx = IndexKeys(partition)
        if lane is None:
            if cursor:
                ExecutionId.parse(cursor)
            members = sorted(text(m) for m in await self._client.execute(
                "SMEMBERS", idx.all_executions))
            after = [m for m in members if not cursor or m > cursor]
            page = after[:limit]
            more = len(after) > limit and limit > 0
            return ExecutionPage(page, page[-1] if more and page else None)
        validate_lane(lane)
        index = _STATE_INDEX.get(state or "waiting")
        if index is None:
            raise ValidationError("invalid_input", f"unknown state filter: {state!r}")
        ids = [text(m) for m in await self._client.execute(
            "ZRANGE", idx.lane(lane, index), offset, offset + limit - 1)] if limit else []
        if state and ids:
            pipe = self._client.pipeline()
            for eid in ids:
                pipe.execute_command("HGET", ExecKeys(eid).core, "public_state")
            states = await pipe.run(raise_on_error=True)
            ids = [e for e, s in zip(ids, states, strict=True) if text(s) == state]
        return ExecutionPage(ids, None)

    async def change_priority(self, execution_id: str, new_priority: int) -> None:
        eid = ExecutionId.parse(execution_id)
        await scheduling_fns.change_priority(self.library, eid, new_priority)

    async def replay_execution(self, execution_id: str, *, requested_by: str = "operator",
                               reason: str = "") -> str:
        """Runs a terminal execution again; returns its new public_state."""
        eid = ExecutionId.parse(execution_id)
        reply = await execution_fns.replay_execution(
            self.library, eid, requested_by=requested_by, reason=reason)
        return reply.str(0)

    async def revoke_lease(self, execution_id: str, *, reason: str = "operator_revoke"
                           ) -> RevokeResult:
        eid = ExecutionId.parse(execution_id)
        try:
            reply = await lease_fns.revoke_lease(self.library, eid, reason=reason)
        except FFError as exc:
            # Not active (waiting, terminal, ...) has no lease to revoke either.
            if exc.code in ("no_active_lease", "execution_not_active"):
                return RevokeResult("already_satisfied", reason="no_active_lease")
            raise
        if reply.status == "ALREADY_SATISFIED":
            return RevokeResult("already_satisfied", reason=reply.str(0))
        return RevokeResult("revoked", lease_id=reply.str(1), lease_epoch=reply.str(2))

    async def issue_reclaim_grant(self, execution_id: str, args: ReclaimGrantArgs
                                  ) -> ReclaimGrantResult:
        eid = ExecutionId.parse(execution_id)
        validate_worker_id(args.worker_id, "worker_id")
        validate_worker_id(args.worker_instance_id, "worker_instance_id")
        validate_lane(args.lane_id)
        if not 1 <= args.grant_ttl_ms <= 60_000:
            raise ValidationError("invalid_input", "grant_ttl_ms must be in 1..60000")
        keys = ExecKeys(eid)
        pipe = self._client.pipeline()
        pipe.execute_command("HGET", keys.core, "lease_reclaim_count")
        pipe.execute_command("GET", keys.policy)
        count, policy_raw = await pipe.run(raise_on_error=True)
        policy = decode_policy(policy_raw) if policy_raw else None
        cap = 100
        if policy is not None:
            timeout = policy.timeout_policy
            cap = policy.max_reclaim_count or (timeout and timeout.max_reclaim_count) or cap
        if count is not None and int(count) >= cap:
            return ReclaimCapExceeded(eid, int(count))
        try:
            reply = await scheduling_fns.issue_claim_grant(
                self.library, eid, worker_id=args.worker_id,
                worker_instance_id=args.worker_instance_id, lane_id=args.lane_id,
                grant_ttl_ms=args.grant_ttl_ms,
                worker_caps_csv=capabilities_csv(args.worker_capabilities, "worker"),
                capability_hash=args.capability_hash or "",
                route_snapshot_json=args.route_snapshot_json or "",
                admission_summary=args.admission_summary or "", reclaim=True,
            )
        except FFError as exc:
            if exc.code == "execution_not_reclaimable":
                return ReclaimNotReclaimable(eid, ",".join(exc.details))
            raise
        return ReclaimGranted(eid, eid.tag, keys.claim_grant, reply.int(1), args.lane_id)

    async def claim_for_worker(
        self, *, lane_id: str, worker_id: str, worker_instance_id: str,
        capabilities: list[str] | tuple[str, ...] = (), grant_ttl_ms: int = 5_000,
    ) -> ClaimGrant | None:
        return await self.scheduler.claim_for_worker(
            lane_id=lane_id, worker_id=worker_id, worker_instance_id=worker_instance_id,
            capabilities=capabilities, grant_ttl_ms=grant_ttl_ms,
        )


_STATE_INDEX = {
    "waiting": "eligible",
    "delayed": "delayed",
    "active": "active",
    "suspended": "suspended",
    "rate_limited": "blocked:budget",
    "waiting_children": "blocked:dependencies",
    "completed": "terminal",
    "failed": "terminal",
    "cancelled": "terminal",
    "expired": "terminal",
    "skipped": "terminal",
}
