"""Routes of the lanes area: the lane registry and executions counted per state."""

from __future__ import annotations

from ff.http._message import Request, Response, json_response
from ff.http.wire import LaneCounts, LaneList
from ff.server import Server

from ._common import AddRoute


def register(add: AddRoute, server: Server) -> None:
    async def list_lanes(request: Request) -> Response:
        return json_response(200, LaneList(await server.list_lanes()))

    async def counts(request: Request) -> Response:
        lane = request.path_params["lane"]
        return json_response(200, LaneCounts(lane, await server.count_executions(lane)))

    add("GET", "/v1/lanes", list_lanes, response_type=LaneList, summary="The registered lanes")
    add("GET", "/v1/lanes/{lane}/counts", counts, response_type=LaneCounts,
        summary="How many executions a lane holds in each public state")
