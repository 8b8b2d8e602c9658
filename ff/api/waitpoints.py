"""Suspension, waitpoints and signals: list_pending_waitpoints, get_waitpoint_token,
deliver_signal, resume_execution, rotate_waitpoint_secret and list_waitpoint_hmac_kids.

Tokens are bearer credentials: nothing here logs one, nor a secret. Signal delivery hands
the token to the function library, which checks it before it reads any state.
"""

from __future__ import annotations

import logging
import re

import trio

from ff.api._parts import ServerParts, payload_bytes
from ff.core.errors import (
    FFError,
    GatewayTimeoutError,
    NotFoundError,
    RateLimitedError,
    ValidationError,
)
from ff.core.hmac import fingerprint
from ff.core.ids import ExecutionId, new_uuid
from ff.core.keys import ExecKeys, waitpoint_key
from ff.core.partitions import flow_tag
from ff.core.records import (
    DeliverSignalArgs,
    DeliverSignalResult,
    PendingWaitpointInfo,
    RotateSecretResult,
)
from ff.script import waitpoint as waitpoint_fns
from ff.script.library import text

log = logging.getLogger("ff.waitpoints")
audit = logging.getLogger("ff.audit")

SSCAN_PAGE = 100
SIGNAL_PAYLOAD_MAX = 64 * 1024
ROTATE_CONCURRENCY = 16
ROTATE_TIMEOUT_S = 120.0
_WP_FIELDS = ("waitpoint_id", "waitpoint_key", "state", "created_at", "activated_at",
              "expires_at", "execution_id", "waitpoint_token")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")
# Pass 1 reads the first matcher names with total_matchers; pass 2 only the rest.
_FIRST_MATCHERS = tuple(f"matcher:{n}:name" for n in range(4))
TOKEN_NOT_FOUND = "waitpoint token not found (consumed, expired, or unknown id)"


def check_new_secret(new_kid: str, new_secret_hex: str) -> None:
    if not new_kid or ":" in new_kid or len(new_kid) > 64:
        raise ValidationError("invalid_kid", "a kid is 1-64 characters without ':'")
    if not _HEX.fullmatch(new_secret_hex or ""):
        raise ValidationError("invalid_secret_hex", "the secret is non-empty, even-length hex")


def _int_or_none(raw: object) -> int | None:
    value = text(raw)
    return int(value) if value else None


class WaitpointsApi(ServerParts):
    async def list_pending_waitpoints(self, execution_id: str) -> list[PendingWaitpointInfo]:
        """The open (pending or active) waitpoints of an execution, without their tokens.

        Read plan: SSCAN the execution's waitpoint set in pages of 100 (the first page
        pipelined with the existence check); per page, one pipeline of an HMGET of the
        documented fields plus an HMGET of the condition's total_matchers and first four
        matcher names, then, only for conditions with more matchers, one pipeline of
        the remaining names. Empty when the
        execution never suspended, when every waitpoint is closed, or when a concurrent
        cleanup deleted the hashes between the SSCAN and the reads. A hash without its
        token is skipped with a warning (a half-written record).
        """
        eid = ExecutionId.parse(execution_id)
        keys = ExecKeys(eid)
        pipe = self._client.pipeline()  # the existence check rides with the first page
        pipe.execute_command("EXISTS", keys.core)
        pipe.execute_command("SSCAN", keys.waitpoints, 0, "COUNT", SSCAN_PAGE)
        exists, (cursor, members) = await pipe.run(raise_on_error=True)
        if not exists:
            raise NotFoundError("execution_not_found", f"execution not found: {eid}")
        out: list[PendingWaitpointInfo] = []
        while True:
            out += await self._pending_page(eid, [text(m) for m in members])
            if text(cursor) == "0":
                return out
            cursor, members = await self._client.execute(
                "SSCAN", keys.waitpoints, cursor, "COUNT", SSCAN_PAGE)

    async def _pending_page(self, eid: ExecutionId, ids: list[str]) -> list[PendingWaitpointInfo]:
        if not ids:
            return []
        pipe = self._client.pipeline()
        for wp_id in ids:
            pipe.execute_command("HMGET", waitpoint_key(eid.tag, wp_id), *_WP_FIELDS)
            pipe.execute_command("HMGET", waitpoint_key(eid.tag, wp_id) + ":condition",
                                 "total_matchers", *_FIRST_MATCHERS)
        replies = await pipe.run(raise_on_error=True)
        rows = []
        for i, wp_id in enumerate(ids):
            fields = dict(zip(_WP_FIELDS, (text(v) for v in replies[2 * i]), strict=True))
            if not any(fields.values()):
                continue  # deleted after the SSCAN read the set
            if fields["state"] not in ("pending", "active"):
                continue
            if not fields["waitpoint_token"]:
                log.warning("waitpoint hash without its token (half-written record)",
                            extra={"execution_id": eid, "waitpoint_id": wp_id})
                continue
            total_raw, *first = (text(v) for v in replies[2 * i + 1])
            rows.append((wp_id, fields, int(total_raw or 0), first))
        # Pass 2, only for conditions with more matchers than pass 1 read.
        wanted = [(wp_id, total) for wp_id, _, total, _ in rows if total > len(_FIRST_MATCHERS)]
        rest: dict[str, list[str]] = {}
        if wanted:
            pipe = self._client.pipeline()
            for wp_id, total in wanted:
                pipe.execute_command(
                    "HMGET", waitpoint_key(eid.tag, wp_id) + ":condition",
                    *(f"matcher:{n}:name" for n in range(len(_FIRST_MATCHERS), total)))
            for (wp_id, _), names in zip(wanted, await pipe.run(raise_on_error=True),
                                         strict=True):
                rest[wp_id] = [text(n) for n in names]
        out = []
        for wp_id, fields, total, first in rows:
            names = (first + rest.get(wp_id, []))[:total]
            kid, digest16 = fingerprint(fields["waitpoint_token"])
            out.append(PendingWaitpointInfo(
                waitpoint_id=wp_id, waitpoint_key=fields["waitpoint_key"],
                state=fields["state"], required_signal_names=list(dict.fromkeys(
                    n for n in names if n)),
                created_at=int(fields["created_at"] or 0), execution_id=eid,
                token_kid=kid, token_fingerprint=digest16,
                activated_at=_int_or_none(fields["activated_at"]),
                expires_at=_int_or_none(fields["expires_at"]),
            ))
        return out

    async def get_waitpoint_token(self, execution_id: str, waitpoint_id: str) -> str:
        """The raw token of an open waitpoint of this execution (an operator read: the
        token is a bearer credential). NotFound when consumed, expired or unknown."""
        eid = ExecutionId.parse(execution_id)
        got = await self._client.execute("HMGET", waitpoint_key(eid.tag, waitpoint_id),
                                         "execution_id", "state", "waitpoint_token")
        owner, state, token = (text(v) for v in got)
        if owner != eid or state not in ("pending", "active") or not token:
            raise NotFoundError("waitpoint_not_found", TOKEN_NOT_FOUND)
        return token

    async def deliver_signal(self, execution_id: str,
                             args: DeliverSignalArgs) -> DeliverSignalResult:
        eid = ExecutionId.parse(execution_id)
        if args.execution_id is not None and args.execution_id != eid:
            raise ValidationError("invalid_input", "execution_id in the body does not match")
        if not args.signal_name:
            raise ValidationError("invalid_input", "signal_name is required")
        payload = payload_bytes(args.payload, "payload")
        if len(payload) > SIGNAL_PAYLOAD_MAX:
            raise ValidationError("payload_too_large",
                                  f"signal payload over {SIGNAL_PAYLOAD_MAX} bytes")
        return await waitpoint_fns.deliver_signal(
            self.library, eid, waitpoint_id=args.waitpoint_id,
            signal_id=args.signal_id or new_uuid(), signal_name=args.signal_name,
            waitpoint_token=args.waitpoint_token, signal_category=args.signal_category,
            source_type=args.source_type, source_identity=args.source_identity,
            payload=payload, payload_encoding=args.payload_encoding or "json",
            idempotency_key=args.idempotency_key or "",
            correlation_id=args.correlation_id or "", dedup_ttl_ms=args.dedup_ttl_ms,
            resume_delay_ms=args.resume_delay_ms,
            max_signals_per_execution=args.max_signals_per_execution,
            signal_maxlen=args.signal_maxlen, created_at=args.created_at,
            target_scope=args.target_scope,
        )

    async def resume_execution(self, execution_id: str, *, resume_delay_ms: int = 0) -> str:
        """Operator resume of a suspended execution, whatever its condition says."""
        eid = ExecutionId.parse(execution_id)
        return await waitpoint_fns.resume_execution(self.library, eid,
                                                    resume_delay_ms=resume_delay_ms)

    async def rotate_waitpoint_secret(self, new_kid: str,
                                      new_secret_hex: str) -> RotateSecretResult:
        """Every partition's keystore to `new_kid`; tokens of the old kid keep working for
        `waitpoint_hmac_grace_ms`. One rotation at a time per server (`rotation_in_progress`,
        429), 16 partitions at once, 120 s in all (`rotation_timeout`, 504). Partial
        failure is reported, not raised; a repeat is safe (same kid and secret: no-op)."""
        check_new_secret(new_kid, new_secret_hex)
        if self._rotation_gate.locked():
            raise RateLimitedError("rotation_in_progress",
                                   "too many concurrent admin_rotate calls (server max: 1)")
        async with self._rotation_gate:
            n = self._config.partitions.num_flow_partitions
            failures: dict[int, BaseException] = {}
            limiter = trio.CapacityLimiter(ROTATE_CONCURRENCY)

            async def one(p: int) -> None:
                async with limiter:
                    try:
                        await waitpoint_fns.rotate_hmac_secret(
                            self.library, flow_tag(p), new_kid=new_kid,
                            new_secret_hex=new_secret_hex,
                            grace_ms=self._config.waitpoint_hmac_grace_ms)
                    except Exception as exc:  # reported per partition, never fatal here
                        failures[p] = exc
                        audit.error("waitpoint_hmac_rotation_failed", extra={
                            "partition": p, "new_kid": new_kid,
                            "error": getattr(exc, "code", type(exc).__name__)})

            with trio.move_on_after(ROTATE_TIMEOUT_S) as scope:
                async with trio.open_nursery() as nursery:
                    for p in range(n):
                        nursery.start_soon(one, p)
            if scope.cancelled_caught:
                audit.error("waitpoint_hmac_rotation_timeout", extra={"new_kid": new_kid})
                raise GatewayTimeoutError(
                    "rotation_timeout", f"rotation exceeded {ROTATE_TIMEOUT_S:.0f}s server-side "
                    "timeout; retry is safe (rotation is idempotent)")
        failed = sorted(failures)
        audit.info("waitpoint_hmac_rotation_complete", extra={
            "new_kid": new_kid, "total_partitions": n, "rotated": n - len(failed),
            "failed_count": len(failed)})
        if failed and len(failed) == n:
            first = failures[failed[0]]
            if isinstance(first, FFError):
                raise first
            raise FFError("rotation_failed", "rotation failed on every partition")
        return RotateSecretResult(n - len(failed), failed, new_kid)

    async def list_waitpoint_hmac_kids(self, partition: int = 0) -> tuple[str, dict[str, int]]:
        """(current kid, {demoted kid still accepted: until when}) on one partition."""
        return await waitpoint_fns.list_hmac_kids(self.library, flow_tag(partition))

