"""The public surface of `ff` changes only on purpose."""

import ff

EXPECTED = {
    "ApiClient", "CancelExecutionArgs", "Client", "ClaimedTask", "ConfigError", "ConflictError",
    "ContentionError", "CreateExecutionArgs", "ExecutionNotActiveError", "ExecutionPolicy",
    "ExponentialBackoff", "FFError", "FixedBackoff", "LeaseLostError", "NotFoundError",
    "RetryPolicy", "RoutingRequirements", "Server", "ServerConfig", "StateConflictError",
    "TimeoutPolicy", "ValidationError", "Worker",
}


def test_public_names() -> None:
    assert set(ff.__all__) == EXPECTED


def test_every_public_name_resolves() -> None:
    for name in ff.__all__:
        assert getattr(ff, name).__name__ == name
