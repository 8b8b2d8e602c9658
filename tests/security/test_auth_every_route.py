"""Bearer auth on every route the router holds, walked from the route table (so routes added
later are covered without editing this test): only `/healthz` and `/metrics` answer without
the token; a missing, wrong, same-length or prefix token is a 401 that runs no handler and
writes nothing."""

from __future__ import annotations

import re

import pytest

from ff.http import build_app
from ff.server import Server
from tests.engine.conftest import engine_config

pytestmark = pytest.mark.compat

TOKEN = "s3cret-token-0123456789"
EXEMPT = {"/healthz", "/metrics"}
BAD_HEADERS = (
    {},
    {"authorization": ""},
    {"authorization": "Bearer"},
    {"authorization": f"Bearer {TOKEN[:-1]}"},
    {"authorization": f"Bearer {TOKEN[:-1]}x"},
    {"authorization": f"Bearer {TOKEN}x"},
    {"authorization": f"bearer {TOKEN}"},
    {"authorization": f"Basic {TOKEN}"},
    {"authorization": TOKEN},
)


def concrete(pattern: str) -> str:
    """A path the template matches (every `{param}` filled with a plausible id)."""
    return re.sub(r"\{[^}]+\}", "00000000-0000-4000-8000-000000000000", pattern)


async def test_every_route_but_health_and_metrics_needs_the_token(server_url: str) -> None:
    async with Server.running(engine_config(server_url, api_token=TOKEN)) as server:
        app = build_app(server)
        routes = app.router.routes
        assert len(routes) > 20  # the walk really covers the API
        patterns = {route.pattern for route in routes}
        assert patterns >= EXEMPT
        for route in routes:
            target = concrete(route.pattern)
            body = b"{}" if route.method in ("POST", "PUT", "PATCH") else b""
            if route.pattern in EXEMPT:
                response = await app.handle(route.method, target, {}, body)
                assert response.status == 200, route.pattern
                continue
            for headers in BAD_HEADERS:
                response = await app.handle(route.method, target, dict(headers), body)
                assert response.status == 401, (route.method, route.pattern, headers)
                assert ("www-authenticate", "Bearer") in response.headers
            good = {"authorization": f"Bearer {TOKEN}"}
            response = await app.handle(route.method, target, good, body)
            assert response.status != 401, (route.method, route.pattern)
            assert response.status < 500, (route.method, route.pattern, response.body)


async def test_rejected_requests_write_nothing(server_url: str) -> None:
    async with Server.running(engine_config(server_url, api_token=TOKEN)) as server:
        app = build_app(server)
        keys_before = sorted(await server.client.execute("KEYS", "*"))
        for route in app.router.routes:
            if route.pattern in EXEMPT:
                continue
            body = b'{"execution_kind": "x"}' if route.method == "POST" else b""
            response = await app.handle(route.method, concrete(route.pattern),
                                        {"authorization": "Bearer nope"}, body)
            assert response.status == 401
        assert sorted(await server.client.execute("KEYS", "*")) == keys_before


def test_token_check_is_constant_time() -> None:
    """The comparison is `hmac.compare_digest` over the whole header (source check: timing
    tests on a shared 2-core machine would be noise)."""
    import inspect

    from ff.http import _app

    source = inspect.getsource(_app.HttpApp.start)
    assert "compare_digest" in source
    assert "== self._expected_auth" not in source
