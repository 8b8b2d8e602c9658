"""ff: durable execution on Valkey.

    import ff

    async with ff.Server.running(ff.ServerConfig()) as server:
        await server.create_execution(ff.CreateExecutionArgs(execution_kind="email"))

The names below are the public surface (tests/test_public_api.py guards it). They are
imported on first use, so `import ff.client` stays light.
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ff' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
