"""`ClusterClient`: the `Client` surface over a Valkey/Redis Cluster.

One auto-pipelining `Pool` per primary; each command goes to the primary that owns the
slot of its first key (CRC16 of the hash tag), keyless commands to any primary. A MOVED
reply updates that slot and refreshes the whole map before the command is sent again; an
ASK reply sends `ASKING` and the command together to the named node. TRYAGAIN and
CLUSTERDOWN (a migration or failover in progress) are retried after growing pauses until
the command timeout. A lost or unreachable node makes the client re-read the
map from the nodes that answer (a failover promotes a replica) and the error goes to the
caller, who decides whether the command may be repeated.

Pipelines are split by node, sent concurrently and reassembled in command order;
commands answered with a redirect are re-sent one by one. `FUNCTION LOAD` and
`on_every_primary` run on every primary; `scan_iter` walks every primary.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import suppress
from dataclasses import replace
from typing import Any

import msgspec
import trio

from ff.resp import errors
from ff.resp._client import Client
from ff.resp._commands import encode, encode_shared
from ff.resp._helpers import scan_options
from ff.resp._host import TaskHost
from ff.resp._pipeline import transaction_results
from ff.resp._pool import Pool, PoolStats
from ff.resp._routing import command_name, command_slot, redirect_of
from ff.resp._topology import SlotMap, ranges_from_shards, ranges_from_slots
from ff.resp._url import ConnectionParams
from ff.resp.slots import key_slot

MAX_REDIRECTS = 16  # MOVED replies followed for one command
RETRY_PAUSE = 0.01  # first pause after TRYAGAIN / CLUSTERDOWN, doubled up to the maximum
MAX_RETRY_PAUSE = 0.2
_WAIT_AND_RETRY = ("TRYAGAIN", "CLUSTERDOWN")
DEGRADED_FOR = 5.0  # seconds without WAIT on a node that confirmed too few replicas
log = logging.getLogger("ff.resp")
_EVERY_PRIMARY: dict[Any, Callable[[list[Any]], Any]] = {
    "DBSIZE": sum, "FLUSHALL": lambda replies: replies[0], "FLUSHDB": lambda replies: replies[0],
    "FUNCTION": lambda replies: replies[0],
}
_ASKING = encode(("ASKING",))
_INFO_REPLICATION = encode(("INFO", "replication"))
_MULTI = encode(("MULTI",))
_EXEC = encode(("EXEC",))


class ClusterClient(Client):
    """Routes by hash slot; the seed node in `params` is where discovery starts."""

    def __init__(
        self, params: ConnectionParams, *, pool_size: int = 4, command_timeout: float = 10.0
    ) -> None:
        if not command_timeout > 0:
            raise ValueError("command_timeout must be positive")
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        if params.unix_path or params.db:
            raise ValueError("a cluster is reached over TCP, database 0")
        self.params = params
        self._pool_size = pool_size
        self._command_timeout = command_timeout
        self._host = TaskHost()
        self._closed = False
        self._seeds = [params.address]
        self._map: SlotMap | None = None
        self._map_version = 0
        self._pools: dict[str, Pool] = {}
        self._refresh_lock = trio.Lock()
        self._wait: bytes | None = None
        self._degraded_until: dict[str, float] = {}
        self.replication_shortfalls = 0  # WAITs that saw fewer replicas than asked
        if params.replica_acks:
            if params.replica_ack_timeout_ms >= command_timeout * 1000:
                raise ValueError("replica_ack_timeout_ms must be below the command timeout")
            self._wait = encode(("WAIT", params.replica_acks, params.replica_ack_timeout_ms))

    # -- topology -------------------------------------------------------------------

    def _node_params(self, address: str) -> ConnectionParams:
        host, _, port = address.rpartition(":")
        return replace(self.params, host=host or self.params.host, port=int(port))

    def _node_pool(self, address: str) -> Pool:
        pool = self._pools.get(address)
        if pool is None:
            self._check_open()
            pool = self._pools[address] = Pool(
                self._node_params(address), size=self._pool_size,
                command_timeout=self._command_timeout, host=self._host)
        return pool

    @property
    def primaries(self) -> list[str]:
        """Addresses of the primaries in the current map (empty before first use)."""
        return list(self._map.primaries) if self._map else []

    async def refresh(self) -> None:
        """Re-read the slot map from the first node that answers (known primaries, then
        the seed). Concurrent callers share one refresh."""
        version = self._map_version
        async with self._refresh_lock:
            if self._map_version != version:
                return
            last: Exception | None = None
            for address in [*self.primaries, *self._seeds]:
                try:
                    ranges = await self._read_ranges(address)
                except (errors.RespError, OSError) as exc:
                    last = exc
                    continue
                if ranges:
                    self._install(SlotMap(ranges))
                    return
            raise errors.ConnectionError(f"no cluster node gave a slot map: {last}")

    async def _read_ranges(self, address: str) -> list[tuple[int, int, str]]:
        pool = self._node_pool(address)
        reply = await pool.request(encode(("CLUSTER", "SHARDS")), 1, None)
        if isinstance(reply, errors.ResponseError):
            reply = await pool.request(encode(("CLUSTER", "SLOTS")), 1, None)
            if isinstance(reply, errors.ResponseError):
                raise reply
            return ranges_from_slots(reply)
        return ranges_from_shards(reply, self.params.tls)

    def _install(self, slot_map: SlotMap) -> None:
        self._map = slot_map
        self._map_version += 1
        keep = {*slot_map.primaries, *self._seeds}
        for address in [a for a in self._pools if a not in keep]:
            self._pools.pop(address).close()

    async def _owner(self, slot: int | None) -> str:
        if self._map is None:
            await self.refresh()
        assert self._map is not None
        if slot is None:
            return random.choice(self._map.primaries)
        owner = self._map.owners[slot]
        if owner is None:
            await self.refresh()
            owner = self._map.owners[slot]
            if owner is None:
                raise errors.ResponseError(f"CLUSTERDOWN slot {slot} is not served")
        return owner

    async def node_of(self, key: str | bytes) -> str:
        """The primary that owns `key`'s slot now."""
        return await self._owner(key_slot(key))

    def _moved(self, slot: int, address: str) -> None:
        if self._map is not None:
            self._map.owners[slot] = address

    # -- commands -------------------------------------------------------------------

    async def execute(self, *args: str | bytes | int | float, timeout: float | None = None) -> Any:
        """Run one command on the primary that owns its key; follows redirects.

        DBSIZE answers the sum over the primaries; FLUSHALL, FLUSHDB and FUNCTION (LOAD,
        FLUSH, DELETE, ...) run on every primary and answer the first one's reply.
        """
        name = args[0].upper() if isinstance(args[0], str) else args[0]
        if name in _EVERY_PRIMARY:
            replies = (await self.on_every_primary(*args)).values()
            for reply in replies:
                if isinstance(reply, errors.ResponseError):
                    raise reply
            return _EVERY_PRIMARY[name](list(replies))
        reply = await self._routed(encode_shared(args), command_slot(args), timeout,
                                   self._durable(args))
        if isinstance(reply, errors.ResponseError):
            raise reply
        return reply

    def _durable(self, args: tuple[Any, ...]) -> bool:
        """A function call that waits for replicas (`replica_acks` in the URL)."""
        return self._wait is not None and command_name(args) == "FCALL"

    async def _wait_on(self, address: str) -> bytes:
        """The WAIT to send after durable commands on `address`. None while the node is
        degraded (a WAIT there saw too few replicas): a shard that a failover left
        without a replica keeps working, unconfirmed, instead of waiting out the timeout
        on every call. When the pause ends, the node's connected replicas are counted
        first, so a WAIT that would time out again is not sent."""
        if self._wait is None:
            return b""
        until = self._degraded_until.get(address)
        if until is None:
            return self._wait
        if until > trio.current_time():
            return b""
        if await self._connected_replicas(address) >= self.params.replica_acks:
            self._degraded_until.pop(address, None)
            return self._wait
        self._degraded_until[address] = trio.current_time() + DEGRADED_FOR
        return b""

    async def _connected_replicas(self, address: str) -> int:
        with suppress(errors.RespError):
            info = await self._node_pool(address).request(_INFO_REPLICATION, 1, None)
            for line in info.decode().splitlines() if isinstance(info, bytes) else ():
                if line.startswith("connected_slaves:"):
                    return int(line.partition(":")[2])
        return 0

    def _count_acks(self, address: str, acks: Any) -> None:
        wanted = self.params.replica_acks
        if isinstance(acks, int) and acks >= wanted:
            return
        self.replication_shortfalls += 1
        self._degraded_until[address] = trio.current_time() + DEGRADED_FOR
        log.warning("%s confirmed a call on %s of %s replicas; replies go unconfirmed for "
                    "%.0f s", address, acks, wanted, DEGRADED_FOR)

    async def _send(self, address: str, frame: bytes, *, asking: bool, durable: bool,
                    timeout: float | None) -> Any:
        """One attempt on one node: the command's reply (an error reply as a value),
        after `ASKING` when asked to, followed by WAIT when it is durable."""
        head = _ASKING if asking else b""
        wait = await self._wait_on(address) if durable else b""
        count = 1 + bool(asking) + bool(wait)
        replies = await self._node_pool(address).request(head + frame + wait, count, timeout)
        if count == 1:
            return replies
        if wait:
            self._count_acks(address, replies[-1])
        return replies[1] if asking else replies[0]

    async def _routed(self, frame: bytes, slot: int | None, timeout: float | None,
                      durable: bool = False, give_up_at: float | None = None) -> Any:
        """The reply (an error reply as a value) after following redirects. TRYAGAIN and
        CLUSTERDOWN (or a slot no primary serves in the map) are retried with growing
        pauses until `give_up_at` (default: the command timeout from now): a migration or
        a failover makes calls wait for as long as it lasts."""
        ask: str | None = None
        moves = 0
        pause = RETRY_PAUSE
        if give_up_at is None:
            give_up_at = trio.current_time() + (timeout or self._command_timeout)
        while True:
            try:
                address = ask or await self._owner(slot)
            except errors.ResponseError as unserved:  # CLUSTERDOWN: no primary for it yet
                reply = unserved
            else:
                try:
                    reply = await self._send(address, frame, asking=ask is not None,
                                             durable=durable, timeout=timeout)
                except errors.ClientClosedError:
                    if self._closed:
                        raise
                    continue  # the node left the map while we used it: route again
                except (errors.ConnectionError, errors.TimeoutError):
                    await self._refresh_quietly()
                    raise
            asked, ask = ask is not None, None
            if not isinstance(reply, errors.ResponseError):
                return reply
            redirect = redirect_of(reply)
            if redirect is not None and redirect.ask and not asked:
                ask = redirect.address
                continue
            if redirect is not None and not redirect.ask and moves < MAX_REDIRECTS:
                moves += 1
                self._moved(redirect.slot, redirect.address)
                await self._refresh_quietly()
                continue
            if reply.prefix in _WAIT_AND_RETRY and trio.current_time() + pause < give_up_at:
                await trio.sleep(pause)
                pause = min(pause * 2, MAX_RETRY_PAUSE)
                if reply.prefix == "CLUSTERDOWN":
                    await self._refresh_quietly()
                continue
            return reply

    async def _refresh_quietly(self) -> None:
        """Refresh the map; a refresh that fails too leaves the caller's own error."""
        with suppress(errors.RespError):
            await self.refresh()

    def pipeline(self, transaction: bool = False) -> ClusterPipeline:  # type: ignore[override]
        """Commands grouped by node; a transaction must stay inside one slot."""
        return ClusterPipeline(self, transaction=transaction)

    async def on_every_primary(self, *args: str | bytes | int | float) -> dict[str, Any]:
        """Run one keyless command on every primary: replies by address, an error reply
        as a value."""
        if self._map is None:
            await self.refresh()
        frame = encode_shared(args)
        replies: dict[str, Any] = {}

        failures: list[errors.RespError] = []

        async def one(address: str) -> None:
            try:
                replies[address] = await self._node_pool(address).request(frame, 1, None)
            except errors.RespError as exc:  # raised below as itself, not in a group
                failures.append(exc)

        async with trio.open_nursery() as nursery:
            for address in self.primaries:
                nursery.start_soon(one, address)
        if failures:
            await self._refresh_quietly()
            raise failures[0]
        return replies

    async def function_load(self, code: str, replace: bool = True) -> str:
        """`FUNCTION LOAD` on every primary (replicas receive it from their primary)."""
        args = ("FUNCTION", "LOAD", "REPLACE", code) if replace else ("FUNCTION", "LOAD", code)
        replies = (await self.on_every_primary(*args)).values()
        for reply in replies:
            if isinstance(reply, errors.ResponseError):
                raise reply
        return {reply.decode() for reply in replies}.pop()

    async def scan_iter(
        self, match: str | None = None, count: int = 1000, type: str | None = None
    ) -> AsyncIterator[bytes]:
        """Every key of every primary via SCAN (a key may be yielded twice)."""
        options = scan_options(match, count, type)
        if self._map is None:
            await self.refresh()
        for address in self.primaries:
            pool = self._node_pool(address)
            cursor: bytes = b"0"
            while True:
                reply = await pool.request(encode(("SCAN", cursor, *options)), 1, None)
                if isinstance(reply, errors.ResponseError):
                    raise reply
                cursor, keys = reply
                for key in keys:
                    yield key
                if cursor == b"0":
                    break

    async def _params_for(self, key: str | bytes | None) -> ConnectionParams:
        """The primary that owns `key` (any primary without one): a blocking command
        waits there, and cluster PUBLISH reaches every node for a subscription."""
        return self._node_params(await self._owner(None if key is None else key_slot(key)))

    def stats(self) -> PoolStats:
        """The primaries' pools summed; `address` lists them."""
        parts = [pool.stats() for pool in self._pools.values()]
        if not parts:
            return PoolStats(address=self.params.address, size=0, connections=0, waiters=0,
                             pending_replies=0, reconnects=0, errors=0)
        latest = max(parts, key=lambda s: s.last_error_at or 0)
        return PoolStats(
            address=",".join(s.address for s in parts),
            size=sum(s.size for s in parts), connections=sum(s.connections for s in parts),
            waiters=sum(s.waiters for s in parts),
            pending_replies=sum(s.pending_replies for s in parts),
            reconnects=sum(s.reconnects for s in parts), errors=sum(s.errors for s in parts),
            last_error=latest.last_error, last_error_at=latest.last_error_at)

    def node_stats(self) -> dict[str, PoolStats]:
        """Each node's pool by address."""
        return {address: pool.stats() for address, pool in self._pools.items()}

    def _close(self) -> None:
        self._closed = True
        for pool in self._pools.values():
            pool.close()


class _Queued(msgspec.Struct, frozen=True):
    frame: bytes
    slot: int | None
    durable: bool


class ClusterPipeline:
    """Like `Pipeline`; `run()` sends one batch per node at once and keeps the order."""

    def __init__(self, client: ClusterClient, *, transaction: bool = False) -> None:
        self._client = client
        self._transaction = transaction
        self._queued: list[_Queued] = []

    def __len__(self) -> int:
        return len(self._queued)

    def execute_command(self, *args: str | bytes | int | float) -> ClusterPipeline:
        """Queue one command (encoded and routed now)."""
        self._queued.append(_Queued(encode_shared(args), command_slot(args),
                                    self._client._durable(args)))
        return self

    def fcall(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> ClusterPipeline:
        """Queue `FCALL name numkeys *keys *args`."""
        return self.execute_command("FCALL", name, len(keys), *keys, *args)

    async def run(self, raise_on_error: bool = False, *, timeout: float | None = None) -> list[Any]:
        """Send everything queued and return the replies in command order."""
        queued, self._queued = self._queued, []
        if not queued:
            return []
        if self._transaction:
            results = await self._run_transaction(queued, timeout)
        else:
            results = await self._run_split(queued, timeout)
        if raise_on_error:
            for result in results:
                if isinstance(result, errors.ResponseError):
                    raise result
        return results

    async def _run_split(self, queued: list[_Queued], timeout: float | None) -> list[Any]:
        client = self._client
        give_up_at = trio.current_time() + (timeout or client._command_timeout)
        groups: dict[str, list[int]] = {}
        results: list[Any] = [None] * len(queued)
        for i, item in enumerate(queued):
            try:
                groups.setdefault(await client._owner(item.slot), []).append(i)
            except errors.ResponseError as unserved:  # retried below, like a reply
                results[i] = unserved
        failures: list[errors.RespError] = []

        async def send(address: str, indexes: list[int]) -> None:
            frames = [queued[i].frame for i in indexes]
            durable = any(queued[i].durable for i in indexes)
            wait = await client._wait_on(address) if durable else b""
            if wait:
                frames.append(wait)  # one WAIT after the batch covers its calls
            try:
                replies = await client._node_pool(address).request(
                    b"".join(frames), len(frames), timeout)
            except errors.RespError as exc:  # raised below as itself, not in a group
                failures.append(exc)
                return
            if len(frames) == 1:
                replies = [replies]
            if wait:
                client._count_acks(address, replies.pop())
            for i, reply in zip(indexes, replies, strict=True):
                results[i] = reply

        async with trio.open_nursery() as nursery:
            for address, indexes in groups.items():
                nursery.start_soon(send, address, indexes)
        if failures:
            await client._refresh_quietly()
            raise failures[0]
        for i, reply in enumerate(results):  # one deadline for the whole pipeline
            if isinstance(reply, errors.ResponseError) and (
                redirect_of(reply) or reply.prefix in _WAIT_AND_RETRY
            ):
                results[i] = await client._routed(queued[i].frame, queued[i].slot, timeout,
                                                  queued[i].durable, give_up_at)
        return results

    async def _run_transaction(self, queued: list[_Queued], timeout: float | None) -> list[Any]:
        slots = {item.slot for item in queued} - {None}
        if len(slots) > 1:
            raise ValueError("a cluster transaction must keep all its keys in one slot")
        slot = slots.pop() if slots else None
        frames = b"".join([_MULTI, *(item.frame for item in queued), _EXEC])
        client = self._client
        for _ in range(2):
            address = await client._owner(slot)
            replies = await client._node_pool(address).request(frames, len(queued) + 2, timeout)
            redirected = [r for r in replies[1:-1] if isinstance(r, errors.ResponseError)
                          and redirect_of(r)]
            if not redirected:
                break
            await client.refresh()
        return transaction_results(replies)
