"""Router matching and registration rules, and the public surface of ff.http (no sockets)."""

from __future__ import annotations

import pytest

import ff.http
from ff.http import Request, Response, Router, json_response


async def handler(request: Request) -> Response:
    return json_response(200, "Ok")


def test_literal_segment_beats_parameter_and_backtracks() -> None:
    router = Router()
    router.add("GET", "/v1/executions/{id}", handler)
    router.add("GET", "/v1/executions/{id}/state", handler)
    router.add("GET", "/v1/executions/list/all", handler)
    router.add("GET", "/v1/executions/{id}/attempts/{idx}/stream", handler)

    match = router.match("GET", "/v1/executions/list/all")
    assert match is not None and match.pattern == "/v1/executions/list/all"
    # "list" is a literal child, but "/list/state" only exists under {id}: backtrack into it.
    match = router.match("GET", "/v1/executions/list/state")
    assert match is not None
    assert (match.pattern, match.params) == ("/v1/executions/{id}/state", {"id": "list"})

    match = router.match("GET", "/v1/executions/%7Bfp%3A7%7D%3Aabc/attempts/3/stream")
    assert match is not None
    assert match.params == {"id": "{fp:7}:abc", "idx": "3"}

    assert router.match("GET", "/v1/executions") is None
    assert router.match("GET", "/v1/executions/") is None  # an empty segment is no {id}
    assert router.match("GET", "/v1/executions/a/b") is None


def test_wrong_method_reports_allowed_methods() -> None:
    router = Router()
    router.add("POST", "/v1/flows/{id}/cancel", handler)
    router.add("PUT", "/v1/flows/{flow_id}/cancel", handler)
    match = router.match("GET", "/v1/flows/f1/cancel")
    assert match is not None
    assert match.route is None
    assert match.allowed == ("POST", "PUT")
    put = router.match("PUT", "/v1/flows/f1/cancel")
    assert put is not None and put.params == {"flow_id": "f1"}


def test_registration_errors() -> None:
    router = Router()
    router.add("GET", "/a/{id}", handler)
    with pytest.raises(ValueError, match="clashes"):
        router.add("GET", "/a/{other}", handler)
    with pytest.raises(ValueError, match="duplicate parameter"):
        router.add("GET", "/b/{id}/{id}", handler)
    with pytest.raises(ValueError, match="malformed segment"):
        router.add("GET", "/b/{id", handler)
    with pytest.raises(ValueError, match="start with"):
        router.add("GET", "b", handler)
    with pytest.raises(ValueError, match="upper-case"):
        router.add("get", "/c", handler)


def test_public_surface_is_deliberate() -> None:
    assert set(ff.http.__all__) == {
        "BODY_LIMIT_CONTROL",
        "BODY_LIMIT_LARGE",
        "BODY_LIMIT_MEDIUM",
        "DEFAULT_BODY_LIMIT",
        "ApiError",
        "ErrorBody",
        "Exchange",
        "Handler",
        "HttpApp",
        "PayloadTooLarge",
        "Request",
        "Response",
        "Route",
        "RouteMatch",
        "Router",
        "build_app",
        "build_openapi",
        "build_router",
        "decode_json",
        "empty_response",
        "json_response",
        "metrics_handler",
        "openapi_handler",
        "query_bool",
        "query_int",
        "query_str",
        "raw_response",
        "serve_http",
    }
    assert (ff.http.BODY_LIMIT_LARGE, ff.http.BODY_LIMIT_MEDIUM, ff.http.BODY_LIMIT_CONTROL) == (
        1_048_576,
        262_144,
        65_536,
    )
