"""Every Valkey key name ff uses, built in one place.

Shapes follow FlowFabric exactly (an operator who knows it recognises every key), with one
difference: the worker registry, the lane registry and the partition config carry a hash
tag too, so that every
key works on a cluster. lua/util.lua derives the same per-execution names from the tag;
the two must stay in step (tests/test_keys.py checks both).
"""

from __future__ import annotations

from ff.core.partitions import flow_tag

CONFIG_PARTITIONS = "ff:config:{config}:partitions"
LEGACY_CONFIG_PARTITIONS = "ff:config:partitions"  # untagged, read once to carry it over
LANES = "ff:idx:{lanes}"
DAG_COMPLETIONS_CHANNEL = "ff:dag:completions"


class ExecKeys:
    """Keys of one execution; `tag` is the `{fp:N}` its id embeds."""

    __slots__ = ("eid", "prefix", "tag")

    def __init__(self, eid: str) -> None:
        self.eid = eid
        self.tag = eid[: eid.index("}") + 1]
        self.prefix = f"ff:exec:{self.tag}:{eid}:"

    @property
    def core(self) -> str:
        return self.prefix + "core"

    @property
    def payload(self) -> str:
        return self.prefix + "payload"

    @property
    def result(self) -> str:
        return self.prefix + "result"

    @property
    def policy(self) -> str:
        return self.prefix + "policy"

    @property
    def tags(self) -> str:
        return self.prefix + "tags"

    @property
    def attempts(self) -> str:
        return self.prefix + "attempts"

    @property
    def signals(self) -> str:
        return self.prefix + "signals"

    @property
    def waitpoints(self) -> str:
        return self.prefix + "waitpoints"

    @property
    def lease_current(self) -> str:
        return self.prefix + "lease:current"

    @property
    def lease_history(self) -> str:
        return self.prefix + "lease:history"

    @property
    def claim_grant(self) -> str:
        return self.prefix + "claim_grant"

    @property
    def suspension_current(self) -> str:
        return self.prefix + "suspension:current"

    def attempt(self, index: int | str) -> str:
        return f"ff:attempt:{self.tag}:{self.eid}:{index}"

    def stream(self, index: int | str) -> str:
        return f"ff:stream:{self.tag}:{self.eid}:{index}"

    def stream_meta(self, index: int | str) -> str:
        return f"ff:stream:{self.tag}:{self.eid}:{index}:meta"


class IndexKeys:
    """Per-partition index keys under one `{fp:N}` tag."""

    __slots__ = ("tag",)

    def __init__(self, tag_or_partition: str | int) -> None:
        self.tag = (
            flow_tag(tag_or_partition) if isinstance(tag_or_partition, int) else tag_or_partition
        )

    def _key(self, name: str) -> str:
        return f"ff:idx:{self.tag}:{name}"

    def lane(self, lane_id: str, name: str) -> str:
        """`name`: eligible, delayed, active, terminal, suspended, reclaimable, blocked:<why>."""
        return f"ff:idx:{self.tag}:lane:{lane_id}:{name}"

    @property
    def lease_expiry(self) -> str:
        return self._key("lease_expiry")

    @property
    def attempt_timeout(self) -> str:
        return self._key("attempt_timeout")

    @property
    def execution_deadline(self) -> str:
        return self._key("execution_deadline")

    @property
    def suspension_timeout(self) -> str:
        return self._key("suspension_timeout")

    @property
    def all_executions(self) -> str:
        return self._key("all_executions")

    def worker_leases(self, worker_instance_id: str) -> str:
        return self._key(f"worker:{worker_instance_id}:leases")


def lane_work_hint(lane_id: str, home_partition: int) -> str:
    """ZSET of the partitions that may hold the lane's claimable work (member: partition
    number, score: a mark counter), under the lane's home partition tag."""
    return IndexKeys(home_partition).lane(lane_id, "work_partitions")


def waitpoint_hmac_key(tag: str) -> str:
    """The partition's HMAC keystore (`current_kid`, `secret:<kid>`)."""
    return f"ff:sec:{tag}:waitpoint_hmac"


def idempotency_key(tag: str, namespace: str, key: str) -> str:
    return f"ff:idem:{tag}:{namespace}:{key}"


class WorkerKeys:
    """Worker registry of one namespace; the namespace is the hash tag (`{ns}`)."""

    __slots__ = ("namespace",)

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    @property
    def index(self) -> str:
        return f"ff:idx:{{{self.namespace}}}:workers"

    def alive(self, worker_instance_id: str) -> str:
        return f"ff:worker:{{{self.namespace}}}:{worker_instance_id}:alive"

    def caps(self, worker_instance_id: str) -> str:
        return f"ff:worker:{{{self.namespace}}}:{worker_instance_id}:caps"
