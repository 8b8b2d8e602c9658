"""A trivial JSON app for measuring the front end alone, so throughput claims stay reproducible.

What lives here: a two-route app (a bare string and a path-param JSON object, both through the
full pipeline: CORS, metrics, auth when `--token` is given, routing, encoding) and a `main`
that serves it. Nothing in ff imports this module. Run it, then load it from another shell:

    python -m ff.http.bench --port 8099
    wrk -t2 -c64 -d5s http://127.0.0.1:8099/v1/executions/abc/state
"""

from __future__ import annotations

import argparse
from functools import partial

import msgspec
import trio

from ._app import HttpApp
from ._message import Request, Response, json_response
from ._router import Router
from ._server import serve_http


class _Info(msgspec.Struct):
    execution_id: str
    public_state: str


async def _state(request: Request) -> Response:
    return json_response(200, "waiting")


async def _info(request: Request) -> Response:
    return json_response(200, _Info(request.path_params["id"], "waiting"))


def build_bench_app(token: str | None = None) -> HttpApp:
    """The benchmark app: GET /v1/executions/{id}/state and GET /v1/executions/{id}."""
    router = Router()
    router.add("GET", "/v1/executions/{id}/state", _state)
    router.add("GET", "/v1/executions/{id}", _info)
    return HttpApp(router, api_token=token, cors_origins=["*"])


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the HTTP front-end benchmark app.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--token", default=None, help="require this Bearer token")
    args = parser.parse_args()
    app = build_bench_app(args.token)
    trio.run(partial(serve_http, app, args.host, args.port))


if __name__ == "__main__":
    main()
