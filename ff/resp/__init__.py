"""ff.resp: a pipelined RESP3 client for Valkey/Redis on trio, parsing with hiredis.

    async with Client.from_url("redis://127.0.0.1:6379/0") as client:
        await client.execute("SET", "k", 1)
        results = await client.pipeline().execute_command("GET", "k").run()

Module map: `_client` (public Client), `_pool` (shared connections, reconnection, stats),
`_connection` (one multiplexed connection), `_transport` (socket/TLS + handshake),
`_parser` (reply decoding), `_commands` (argument encoding), `_pipeline`, `_pubsub`,
`_helpers` (FCALL/SCAN helpers), `_cluster` (slot routing over one pool per
primary, with `_routing` and `_topology`), `_host` (where background tasks run), `_url`,
`errors`, `slots` (cluster hash slots).
"""

from ff.resp import errors
from ff.resp._client import Client
from ff.resp._cluster import ClusterClient, ClusterPipeline
from ff.resp._connection import Connection
from ff.resp._pipeline import Pipeline
from ff.resp._pool import PoolStats
from ff.resp._pubsub import Subscription
from ff.resp._url import ConnectionParams, parse_url
from ff.resp.slots import key_slot

__all__ = [
    "Client",
    "ClusterClient",
    "ClusterPipeline",
    "Connection",
    "ConnectionParams",
    "Pipeline",
    "PoolStats",
    "Subscription",
    "errors",
    "key_slot",
    "parse_url",
]
