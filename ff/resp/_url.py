"""Connection parameters and the URL forms that produce them.

`redis://[user:pass@]host[:port][/db]`, `rediss://...` (TLS) and
`unix:///path/to/socket[?db=N]`. `valkey://` and `valkeys://` are spellings of the first
two; `+cluster` after either (`redis+cluster://host:port`) names a seed node of a cluster,
and `?replica_acks=N[&replica_ack_timeout_ms=T]` there makes every function call wait
until N replicas confirm it.
Credentials are percent-decoded; `?db=N` is accepted on every scheme. A password without a
user name authenticates as `default`.
"""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_PORT = 6379
_SCHEME_ALIASES = {"valkey": "redis", "valkeys": "rediss"}


@dataclass(frozen=True, slots=True)
class ConnectionParams:
    """Everything needed to open and prepare one connection."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    unix_path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ssl_context: ssl.SSLContext | None = None  # for TLS; None: the system's trusted CAs
    client_name: str | None = None
    connect_timeout: float = 5.0
    cluster: bool = False  # the URL named a cluster seed node (`redis+cluster://`)
    replica_acks: int = 0  # cluster: replicas that must confirm each function call (WAIT)
    replica_ack_timeout_ms: int = 1000

    @property
    def address(self) -> str:
        """Human-readable endpoint for error messages (never includes credentials)."""
        if self.unix_path:
            return f"unix:{self.unix_path}"
        return f"{self.host}:{self.port}"


def parse_url(
    url: str,
    *,
    client_name: str | None = None,
    connect_timeout: float = 5.0,
    ssl_context: ssl.SSLContext | None = None,
) -> ConnectionParams:
    """Parse a `redis://`, `rediss://` or `unix://` URL. Raises ValueError if malformed."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    cluster = scheme.endswith("+cluster")
    scheme = scheme.removesuffix("+cluster")
    scheme = _SCHEME_ALIASES.get(scheme, scheme)
    if scheme not in ("redis", "rediss", "unix") or (cluster and scheme == "unix"):
        raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {_redact(url)}")
    query = parse_qs(parts.query)
    db = _int_param(query.get("db", [None])[-1], "db")
    acks = _int_param(query.get("replica_acks", [None])[-1], "replica_acks") or 0
    ack_timeout = _int_param(query.get("replica_ack_timeout_ms", [None])[-1],
                             "replica_ack_timeout_ms")
    if ack_timeout == 0:
        raise ValueError("replica_ack_timeout_ms must be positive")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    common = functools.partial(
        ConnectionParams, username=username, password=password, client_name=client_name,
        connect_timeout=connect_timeout,
    )
    if scheme == "unix":
        if acks:
            raise ValueError(f"replica_acks applies to a cluster URL: {_redact(url)}")
        if not parts.path:
            raise ValueError(f"unix URL without a socket path: {_redact(url)}")
        return common(unix_path=unquote(parts.path), db=db or 0)
    path = parts.path.strip("/")
    if path:
        if db is not None:
            raise ValueError(f"database given twice in {_redact(url)}")
        db = _int_param(path, "db")
    if cluster and db:
        raise ValueError(f"a cluster has only database 0: {_redact(url)}")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise ValueError(f"invalid port in {_redact(url)}") from exc
    tls = scheme == "rediss"
    return common(
        host=parts.hostname or "127.0.0.1", port=port, db=db or 0, tls=tls,
        ssl_context=ssl_context if tls else None, cluster=cluster, replica_acks=acks,
        replica_ack_timeout_ms=ack_timeout or 1000,
    )


def _int_param(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if number < 0:
        raise ValueError(f"{name} must not be negative, got {number}")
    return number


def _redact(url: str) -> str:
    """The URL with any password replaced, safe to put in an exception message."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
