"""Server configuration, read from `FF_*` environment variables (and CLI flags on top).

    config = ServerConfig.from_env()     # what `ff serve` reads, for in-process servers too

A bad value is a `ConfigError` naming the variable; `ff serve` exits with code 1 on it.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping

import msgspec

from ff.core.partitions import PartitionConfig


class ConfigError(ValueError):
    """A configuration value is missing or malformed."""


class ScannerIntervals(msgspec.Struct, frozen=True):
    """Seconds between scanner cycles (floored at 0.1 s by the runner)."""

    lease_expiry: float = 1.5
    delayed_promoter: float = 0.75
    index_reconciler: float = 45.0
    attempt_timeout: float = 2.0
    execution_deadline: float = 5.0
    unblock: float = 5.0
    retention_trimmer: float = 60.0
    suspension_timeout: float = 2.0
    pending_wp_expiry: float = 5.0
    dependency_reconciler: float = 15.0
    flow_projector: float = 15.0
    cancel_reconciler: float = 15.0
    edge_cancel_dispatcher: float = 1.0
    edge_cancel_reconciler: float = 10.0
    budget_reset: float = 15.0
    budget_reconciler: float = 30.0
    quota_reconciler: float = 30.0
    lane_hints: float = 1.0


# (field, variable, unit divisor to seconds)
_INTERVAL_VARS = (
    ("lease_expiry", "FF_LEASE_EXPIRY_INTERVAL_MS", 1000),
    ("delayed_promoter", "FF_DELAYED_PROMOTER_INTERVAL_MS", 1000),
    ("index_reconciler", "FF_INDEX_RECONCILER_INTERVAL_S", 1),
    ("attempt_timeout", "FF_ATTEMPT_TIMEOUT_INTERVAL_S", 1),
    ("execution_deadline", "FF_EXECUTION_DEADLINE_INTERVAL_S", 1),
    ("unblock", "FF_UNBLOCK_INTERVAL_S", 1),
    ("retention_trimmer", "FF_RETENTION_TRIMMER_INTERVAL_S", 1),
    ("suspension_timeout", "FF_SUSPENSION_TIMEOUT_INTERVAL_S", 1),
    ("pending_wp_expiry", "FF_PENDING_WP_EXPIRY_INTERVAL_S", 1),
    ("dependency_reconciler", "FF_DEPENDENCY_RECONCILER_INTERVAL_S", 1),
    ("flow_projector", "FF_FLOW_PROJECTOR_INTERVAL_S", 1),
    ("cancel_reconciler", "FF_CANCEL_RECONCILER_INTERVAL_S", 1),
    ("edge_cancel_dispatcher", "FF_EDGE_CANCEL_DISPATCHER_INTERVAL_S", 1),
    ("edge_cancel_reconciler", "FF_EDGE_CANCEL_RECONCILER_INTERVAL_S", 1),
    ("budget_reset", "FF_BUDGET_RESET_INTERVAL_S", 1),
    ("budget_reconciler", "FF_BUDGET_RECONCILER_INTERVAL_S", 1),
    ("quota_reconciler", "FF_QUOTA_RECONCILER_INTERVAL_S", 1),
    ("lane_hints", "FF_LANE_HINTS_INTERVAL_MS", 1000),
)


class ServerConfig(msgspec.Struct, frozen=True):
    valkey_url: str | None = None
    # None: 0.0.0.0 with an API token, 127.0.0.1 without one (secure by default).
    listen_host: str | None = None
    listen_port: int = 9090
    lanes: tuple[str, ...] = ("default",)
    partitions: PartitionConfig = PartitionConfig()
    api_token: str | None = None
    cors_origins: tuple[str, ...] = ("*",)
    waitpoint_hmac_secret: str | None = None
    waitpoint_hmac_grace_ms: int = 86_400_000
    max_concurrent_stream_ops: int = 64
    intervals: ScannerIntervals = ScannerIntervals()
    retention_default_ms: int = 86_400_000
    data_dir: str = ".ff"
    force_lua_reload: bool = False
    scanners_enabled: bool = True
    completion_listener: bool = True
    cancel_flow_grace_ms: int = 30_000
    pool_size: int = 4
    # Serving a non-loopback address without a token needs this explicit opt-in.
    allow_public_without_token: bool = False

    @property
    def bind_host(self) -> str:
        """The address `ff serve` binds: the configured one, else the secure default."""
        if self.listen_host is not None:
            return self.listen_host
        return "0.0.0.0" if self.api_token else "127.0.0.1"

    def check_listen_policy(self) -> None:
        """Refuse to serve an unauthenticated API beyond loopback unless asked to."""
        if self.api_token or self.allow_public_without_token or is_loopback(self.bind_host):
            return
        raise ConfigError(
            f"refusing to listen on {self.bind_host} without FF_API_TOKEN: anyone who can "
            "reach it could use the API; set FF_API_TOKEN, listen on 127.0.0.1, or set "
            "FF_ALLOW_PUBLIC_WITHOUT_TOKEN=1 (--allow-public-without-token)")
    valkey_cluster: bool = False  # FF_VALKEY_CLUSTER=1: the URL names a cluster node
    lane_spread: int = 0  # partitions a lane's solo executions spread over; 0: all

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerConfig:
        """The configuration the `FF_*` variables in `env` (default: the process
        environment) describe. The one place they are read: `ff serve` lays its flags
        over this (`ff.serve.load_config`) and `Server.running()` without a config uses
        it, so an in-process server is configured exactly like `ff serve`."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        url = env.get("FF_VALKEY_URL", "").strip()
        if url:
            values["valkey_url"] = url
        elif env.get("FF_HOST") or env.get("FF_PORT"):
            scheme = "rediss" if _flag(env, "FF_TLS") else "redis"
            host = env.get("FF_HOST") or "localhost"
            values["valkey_url"] = f"{scheme}://{host}:{_int(env, 'FF_PORT', 6379)}"
        if "FF_LISTEN_ADDR" in env:
            values["listen_host"], values["listen_port"] = parse_listen_addr(env["FF_LISTEN_ADDR"])
        if "FF_LANES" in env:
            lanes = tuple(x.strip() for x in env["FF_LANES"].split(",") if x.strip())
            if not lanes:
                raise ConfigError("FF_LANES: at least one lane is required")
            values["lanes"] = lanes
        try:
            values["partitions"] = PartitionConfig(
                num_flow_partitions=_int(env, "FF_FLOW_PARTITIONS", 256),
                num_budget_partitions=_int(env, "FF_BUDGET_PARTITIONS", 32),
                num_quota_partitions=_int(env, "FF_QUOTA_PARTITIONS", 32),
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if env.get("FF_API_TOKEN"):
            values["api_token"] = env["FF_API_TOKEN"]
        if "FF_CORS_ORIGINS" in env:
            origins = tuple(x.strip() for x in env["FF_CORS_ORIGINS"].split(",") if x.strip())
            if not origins:
                raise ConfigError("FF_CORS_ORIGINS is set but empty")
            values["cors_origins"] = origins
        if env.get("FF_WAITPOINT_HMAC_SECRET"):
            values["waitpoint_hmac_secret"] = validate_secret(env["FF_WAITPOINT_HMAC_SECRET"])
        values["waitpoint_hmac_grace_ms"] = _int(env, "FF_WAITPOINT_HMAC_GRACE_MS", 86_400_000)
        values["max_concurrent_stream_ops"] = _int(
            env, "FF_MAX_CONCURRENT_STREAM_OPS", _int(env, "FF_MAX_CONCURRENT_TAIL", 64)
        )
        values["retention_default_ms"] = _int(env, "FF_RETENTION_DEFAULT_MS", 86_400_000)
        values["cancel_flow_grace_ms"] = _int(env, "FF_CANCEL_FLOW_GRACE_MS", 30_000)
        if env.get("FF_DATA_DIR"):
            values["data_dir"] = env["FF_DATA_DIR"]
        values["force_lua_reload"] = _flag(env, "FF_FORCE_LUA_RELOAD")
        values["allow_public_without_token"] = _flag(env, "FF_ALLOW_PUBLIC_WITHOUT_TOKEN")
        values["valkey_cluster"] = cluster_from_env(env)
        values["lane_spread"] = _int(env, "FF_LANE_SPREAD", 0)
        intervals = {}
        for field, var, divisor in _INTERVAL_VARS:
            if var in env:
                intervals[field] = _int(env, var, 0) / divisor
        values["intervals"] = ScannerIntervals(**intervals)
        return msgspec.structs.replace(cls(), **values)


def cluster_from_env(env: Mapping[str, str] | None = None) -> bool:
    """`FF_VALKEY_CLUSTER=1`: treat the Valkey URL as a cluster seed node (servers and
    workers read the same switch; a `redis+cluster://` URL says so by itself)."""
    return _flag(os.environ if env is None else env, "FF_VALKEY_CLUSTER")


def parse_listen_addr(value: str) -> tuple[str, int]:
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"FF_LISTEN_ADDR: expected host:port, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def is_loopback(host: str) -> bool:
    """True for `localhost` and 127.0.0.0/8 or ::1 literals; names other than localhost are
    not resolved, so they count as public."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_secret(secret: str) -> str:
    if not secret or len(secret) % 2 or not re.fullmatch(r"[0-9a-fA-F]+", secret):
        raise ConfigError("FF_WAITPOINT_HMAC_SECRET must be non-empty, even-length hex")
    return secret.lower()


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name}: must not be negative, got {value}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in ("1", "true", "yes")
