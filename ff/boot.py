"""The boot steps of a server, in the order `Server.start` runs them: the version gate
(before any write), the partition-count lock, the HMAC keystore, the function library,
the upgrade of data kept by older releases, then the lanes."""

from __future__ import annotations

import re

from ff.config import ConfigError, ServerConfig
from ff.core.keys import (
    CONFIG_PARTITIONS,
    LEGACY_CONFIG_PARTITIONS,
    IndexKeys,
    waitpoint_hmac_key,
)
from ff.core.partitions import flow_tag
from ff.resp import Client
from ff.script import indexes as indexes_fns
from ff.script.library import FunctionLibrary, text

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


async def install_hmac_secret(client: Client, config: ServerConfig) -> None:
    """Seed every partition's keystore; a stored secret is never overwritten."""
    secret = config.waitpoint_hmac_secret
    if not secret:
        return
    pipe = client.pipeline()
    for p in range(config.partitions.num_flow_partitions):
        key = waitpoint_hmac_key(flow_tag(p))
        pipe.execute_command("HSETNX", key, "current_kid", "k1")
        pipe.execute_command("HSETNX", key, "secret:k1", secret)
    await pipe.run(raise_on_error=True)


async def upgrade_stored_data(client: Client, library: FunctionLibrary,
                              config: ServerConfig) -> None:
    """Partitions whose id index an older release kept as a SET get the ordered ZSET
    (one pipelined TYPE over all partitions; usually nothing to do)."""
    n = config.partitions.num_flow_partitions
    pipe = client.pipeline()
    for p in range(n):
        pipe.execute_command("TYPE", IndexKeys(p).all_executions)
    kinds = await pipe.run(raise_on_error=True)
    for p, kind in enumerate(kinds):
        if text(kind) == "set":
            await indexes_fns.upgrade_id_index(library, p)
