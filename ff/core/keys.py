"""Every Valkey key name ff uses, built in one place.

Shapes follow FlowFabric exactly (an operator who knows it recognises every key), with one
difference: the worker registry, the lane registry and the partition config carry a hash
tag too, so that every
key works on a cluster. lua/util.lua derives the same per-execution names from the tag;
the two must stay in step (tests/engine/test_keys_written.py checks what Lua writes).
"""

from __future__ import annotations

from ff.core.partitions import budget_tag, flow_tag, quota_tag

CONFIG_PARTITIONS = "ff:config:{config}:partitions"
LEGACY_CONFIG_PARTITIONS = "ff:config:partitions"  # untagged, read once to carry it over
LANES = "ff:idx:{lanes}"
DAG_COMPLETIONS_CHANNEL = "ff:dag:completions"



def migration_fence(key: str) -> str:
    """A key of `key`'s hash tag that never exists, declared last by every function call
    (Lua never touches it). While a slot migrates between cluster nodes the server answers
    a call that declares a missing key with ASK / TRYAGAIN instead of running it, so no
    call runs while its partition is split between two nodes: the library derives many
    per-execution key names inside Lua, which the server cannot check."""
    start = key.find("{")
    end = key.find("}", start + 2) if start >= 0 else -1
    if end < 0:
        raise ValueError(f"key {key!r} has no hash tag")
    return f"ff:fence:{key[start:end + 1]}"

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

    @property
    def deps_meta(self) -> str:
        return self.prefix + "deps:meta"

    @property
    def deps_unresolved(self) -> str:
        return self.prefix + "deps:unresolved"

    @property
    def deps_all_edges(self) -> str:
        return self.prefix + "deps:all_edges"

    def dep(self, edge_id: str) -> str:
        return f"{self.prefix}dep:{edge_id}"

    def attempt(self, index: int | str) -> str:
        return f"ff:attempt:{self.tag}:{self.eid}:{index}"

    def attempt_summary(self, index: int | str) -> str:
        return f"ff:attempt:{self.tag}:{self.eid}:{index}:summary"

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

    @property
    def pending_waitpoint_expiry(self) -> str:
        """Members are waitpoint ids, scored by when the pending waitpoint lapses."""
        return self._key("pending_waitpoint_expiry")

    def worker_leases(self, worker_instance_id: str) -> str:
        return self._key(f"worker:{worker_instance_id}:leases")

    @property
    def flow_index(self) -> str:
        return self._key("flow_index")

    @property
    def cancel_backlog(self) -> str:
        return self._key("cancel_backlog")

    @property
    def pending_cancel_groups(self) -> str:
        return self._key("pending_cancel_groups")


class FlowKeys:
    """Keys of one flow; `tag` is the `{fp:N}` its id hashes to (shared with its members)."""

    __slots__ = ("flow_id", "prefix", "tag")

    def __init__(self, flow_id: str, tag: str) -> None:
        self.flow_id = flow_id
        self.tag = tag
        self.prefix = f"ff:flow:{tag}:{flow_id}:"

    @property
    def core(self) -> str:
        return self.prefix + "core"

    @property
    def members(self) -> str:
        return self.prefix + "members"

    @property
    def tags(self) -> str:
        return self.prefix + "tags"

    @property
    def summary(self) -> str:
        return self.prefix + "summary"

    @property
    def pending_cancels(self) -> str:
        return self.prefix + "pending_cancels"

    def edge(self, edge_id: str) -> str:
        return f"{self.prefix}edge:{edge_id}"

    def outgoing(self, execution_id: str) -> str:
        return f"{self.prefix}out:{execution_id}"

    def incoming(self, execution_id: str) -> str:
        return f"{self.prefix}in:{execution_id}"

    def edge_group(self, execution_id: str) -> str:
        return f"{self.prefix}edgegroup:{execution_id}"


def waitpoint_key(tag: str, waitpoint_id: str) -> str:
    """The waitpoint hash; `:signals` and `:condition` hang off it."""
    return f"ff:wp:{tag}:{waitpoint_id}"


def signal_key(tag: str, signal_id: str) -> str:
    return f"ff:signal:{tag}:{signal_id}"


def keystore_key(tag: str) -> str:
    """The waitpoint HMAC keystore (`current_kid`, `secret:<kid>`), one copy per `{fp:N}`
    partition."""
    return f"ff:sec:{tag}:waitpoint_hmac"


def lane_work_hint(lane_id: str, home_partition: int) -> str:
    """ZSET of the partitions that may hold the lane's claimable work (member: partition
    number, score: a mark counter), under the lane's home partition tag."""
    return IndexKeys(home_partition).lane(lane_id, "work_partitions")


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


class BudgetKeys:
    """Keys of one budget on its `{b:M}` partition."""

    __slots__ = ("budget_id", "def_", "partition", "tag")

    def __init__(self, budget_id: str, partition: int) -> None:
        self.budget_id = budget_id
        self.partition = partition
        self.tag = budget_tag(partition)
        self.def_ = f"ff:budget:{self.tag}:{budget_id}"

    @property
    def limits(self) -> str:
        return self.def_ + ":limits"

    @property
    def usage(self) -> str:
        return self.def_ + ":usage"

    @property
    def resets(self) -> str:
        return budget_resets_index(self.partition)

    @property
    def policies(self) -> str:
        return budget_policies_index(self.partition)


class QuotaKeys:
    """Keys of one quota policy on its `{q:K}` partition."""

    __slots__ = ("def_", "partition", "quota_policy_id", "tag")

    def __init__(self, quota_policy_id: str, partition: int) -> None:
        self.quota_policy_id = quota_policy_id
        self.partition = partition
        self.tag = quota_tag(partition)
        self.def_ = f"ff:quota:{self.tag}:{quota_policy_id}"

    @property
    def window(self) -> str:
        return self.def_ + ":window:default"

    @property
    def concurrency(self) -> str:
        return self.def_ + ":concurrency"

    @property
    def admitted_set(self) -> str:
        return self.def_ + ":admitted_set"

    def admitted(self, eid: str) -> str:
        return f"{self.def_}:admitted:{eid}"

    @property
    def policies(self) -> str:
        return quota_policies_index(self.partition)


def budget_policies_index(partition: int) -> str:
    return f"ff:idx:{budget_tag(partition)}:budget_policies"


def budget_resets_index(partition: int) -> str:
    return f"ff:idx:{budget_tag(partition)}:budget_resets"


def quota_policies_index(partition: int) -> str:
    return f"ff:idx:{quota_tag(partition)}:quota_policies"
