"""ff: durable execution on Valkey.

    import ff

    async with ff.Server.running(ff.ServerConfig()) as server:
        await server.create_execution(ff.CreateExecutionArgs(execution_kind="email"))

The names below are the public surface (tests/test_public_api.py guards it). They are
imported on first use, so `import ff.client` stays light. `ff.__version__` is the version
of the installed `flowfabric` distribution (the import and the command are `ff`); it is
the one source `ff --version`, `ff admin status` and the OpenAPI document read.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Server": "ff.server",
    "ServerConfig": "ff.config",
    "ConfigError": "ff.config",
    "Worker": "ff.worker",
    "ClaimedTask": "ff.worker",
    "LeaseLostError": "ff.worker",
    "ApiClient": "ff.client",
    "Client": "ff.producer",
    "CreateExecutionArgs": "ff.core.records",
    "CancelExecutionArgs": "ff.core.records",
    "ExecutionPolicy": "ff.core.policy",
    "RetryPolicy": "ff.core.policy",
    "FixedBackoff": "ff.core.policy",
    "ExponentialBackoff": "ff.core.policy",
    "TimeoutPolicy": "ff.core.policy",
    "RoutingRequirements": "ff.core.policy",
    "FFError": "ff.core.errors",
    "NotFoundError": "ff.core.errors",
    "ValidationError": "ff.core.errors",
    "ConflictError": "ff.core.errors",
    "ContentionError": "ff.core.errors",
    "StateConflictError": "ff.core.errors",
    "ExecutionNotActiveError": "ff.core.errors",
}

__all__ = sorted(_EXPORTS)


def _installed_version() -> str:
    """The `flowfabric` distribution's version; a source tree put on `sys.path` without
    being installed has no metadata, and says so rather than guessing."""
    from importlib import metadata

    try:
        return metadata.version("flowfabric")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value = globals()[name] = _installed_version()
        return value
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ff' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
