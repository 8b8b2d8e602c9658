"""The boot steps of a server, in the order `Server.start` runs them: the version gate
(before any write), the partition-count lock, the function library, the HMAC keystore,
the upgrade of data kept by older releases, then the lanes."""

from __future__ import annotations

import logging
import re

import trio

from ff.config import ConfigError, ServerConfig
from ff.core.keys import CONFIG_PARTITIONS, LANES, LEGACY_CONFIG_PARTITIONS, IndexKeys
from ff.core.partitions import flow_tag
from ff.resp import Client
from ff.script import indexes as indexes_fns
from ff.script import waitpoint as waitpoint_fns
from ff.script.library import FunctionLibrary, text

log = logging.getLogger("ff.boot")

MIN_VERSIONS = {"valkey": (7, 2), "redis": (7, 0)}


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


async def check_server_version(client: Client) -> None:
    info = text(await client.execute("INFO", "server"))
    flavour, version = server_version(info)
    minimum = MIN_VERSIONS[flavour]
    if version < minimum:
        raise ConfigError(
            f"{flavour} {'.'.join(map(str, version))} is too old: ff needs "
            f"{flavour} >= {'.'.join(map(str, minimum))} (Functions and RESP3)"
        )


async def lock_partition_config(client: Client, config: ServerConfig) -> None:
    """The first boot stores the partition counts; a later boot with others refuses."""
    wanted = config.partitions.as_fields()
    legacy = await client.execute("HGETALL", LEGACY_CONFIG_PARTITIONS)
    for name, value in legacy.items():  # stored untagged by releases before the cluster
        await client.execute("HSETNX", CONFIG_PARTITIONS, name, value)
    for name, value in wanted.items():
        await client.execute("HSETNX", CONFIG_PARTITIONS, name, value)
    raw = await client.execute("HGETALL", CONFIG_PARTITIONS)
    stored = {text(k): text(v) for k, v in raw.items()}
    problem = config.partitions.mismatch_with(stored)
    if problem:
        raise ConfigError(problem)


async def install_hmac_secret(library: FunctionLibrary, config: ServerConfig) -> None:
    """Seed every partition's keystore (kid k1) and repair a current kid whose secret is
    missing, 16 partitions at a time, in one atomic call each. A stored secret is never
    overwritten: a different configured one is counted and reported (use
    `ff admin rotate-secret` to change it). Needs the library loaded."""
    secret = config.waitpoint_hmac_secret
    if not secret:
        return
    outcomes: dict[str, int] = {}
    limiter = trio.CapacityLimiter(16)

    async def one(p: int) -> None:
        async with limiter:
            outcome = await waitpoint_fns.install_hmac_secret(library, flow_tag(p), secret)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    async with trio.open_nursery() as nursery:
        for p in range(config.partitions.num_flow_partitions):
            nursery.start_soon(one, p)
    if outcomes.get("repaired"):
        log.warning("waitpoint HMAC keystore repaired", extra={"partitions": outcomes["repaired"]})
    if outcomes.get("mismatch"):
        log.warning("the configured waitpoint HMAC secret differs from the stored one; the "
                    "stored one is kept (run `ff admin rotate-secret` to change it)",
                    extra={"partitions": outcomes["mismatch"]})


async def upgrade_stored_data(client: Client, library: FunctionLibrary,
                              config: ServerConfig) -> None:
    """Data an older release kept differently, brought up to date: an id index kept as
    a SET becomes the ordered ZSET, and a lane's terminal executions with no outcome
    counters are counted. One pipelined read decides; usually nothing is to do."""
    n = config.partitions.num_flow_partitions
    lanes = sorted({*config.lanes, *(text(x) for x in await client.execute("SMEMBERS", LANES))})
    pipe = client.pipeline()
    for p in range(n):
        idx = IndexKeys(p)
        pipe.execute_command("TYPE", idx.all_executions)
        for lane in lanes:
            pipe.execute_command("ZCARD", idx.lane(lane, "terminal"))
            pipe.execute_command("EXISTS", idx.lane(lane, "terminal_counts"))
    replies = iter(await pipe.run(raise_on_error=True))
    for p in range(n):
        if text(next(replies)) == "set":
            await indexes_fns.upgrade_id_index(library, p)
        for lane in lanes:
            terminal, counted = next(replies), next(replies)
            if terminal and not counted:
                await indexes_fns.upgrade_terminal_counts(library, p, lane)
