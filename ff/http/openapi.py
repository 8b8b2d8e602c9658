"""The OpenAPI 3.1 document, generated from the router and the msgspec types routes declare.

What lives here: `build_openapi(router)` and `openapi_handler(router)` (mount it at
`GET /v1/openapi.json`). Schemas come from `msgspec.json.schema_components`, so the document
describes exactly what `decode_json` accepts and what handlers encode; nothing is written by
hand. Every operation also documents the JSON error body as its `default` response, and routes
with a request body document the structured 413.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import msgspec

from ._message import JSON, ErrorBody, Handler, PayloadTooLarge, Request, Response
from ._router import Route, Router

__all__ = ["build_openapi", "openapi_handler"]

_REF = "#/components/schemas/{name}"


def _operation_id(route: Route) -> str:
    words = [route.method.lower()]
    for segment in route.pattern.strip("/").split("/"):
        words.append("".join(c if c.isalnum() else "_" for c in segment.strip("{}")))
    return "_".join(w for w in words if w)


def _describe(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"Status {status}"


def build_openapi(
    router: Router,
    *,
    title: str = "ff",
    version: str = "0.1.0",
    bearer_auth: bool = False,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document for every route registered on `router`, as a JSON-ready dict.

    A `response_type` of `bytes` is documented as raw `application/octet-stream` (the result
    route), not as msgspec's base64 string; `None` documents a response without a body.
    """
    declared: list[Any] = [ErrorBody, PayloadTooLarge]
    for route in router.routes:
        for type_ in (route.request_type, route.response_type):
            if type_ is not None and type_ is not bytes and type_ not in declared:
                declared.append(type_)
    schemas, components = msgspec.json.schema_components(declared, ref_template=_REF)

    def json_content(type_: Any) -> dict[str, Any]:
        return {JSON: {"schema": schemas[declared.index(type_)]}}

    paths: dict[str, dict[str, Any]] = {}
    for route in router.routes:
        operation: dict[str, Any] = {"operationId": _operation_id(route)}
        if route.summary:
            operation["summary"] = route.summary
        if route.param_names:
            operation["parameters"] = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in route.param_names
            ]
        responses: dict[str, Any] = {}
        success: dict[str, Any] = {"description": _describe(route.response_status)}
        if route.response_type is bytes:
            binary = {"schema": {"type": "string", "format": "binary"}}
            success["content"] = {"application/octet-stream": binary}
        elif route.response_type is not None:
            success["content"] = json_content(route.response_type)
        responses[str(route.response_status)] = success
        if route.request_type is not None:
            operation["requestBody"] = {
                "required": True,
                "content": json_content(route.request_type),
            }
            responses["413"] = {
                "description": f"Body over {route.body_limit} bytes",
                "content": json_content(PayloadTooLarge),
            }
        responses["default"] = {"description": "Error", "content": json_content(ErrorBody)}
        operation["responses"] = responses
        paths.setdefault(route.pattern, {})[route.method.lower()] = operation

    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": components},
    }
    if bearer_auth:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
    return document


def openapi_handler(
    router: Router,
    *,
    title: str = "ff",
    version: str = "0.1.0",
    bearer_auth: bool = False,
) -> Handler:
    """A handler serving `build_openapi(router, ...)`, built and encoded on first request.

    Building lazily means the route for the document itself can be registered before the
    routes it describes; register everything before serving.
    """
    encoded: list[bytes] = []

    async def serve_openapi(request: Request) -> Response:
        if not encoded:
            document = build_openapi(router, title=title, version=version, bearer_auth=bearer_auth)
            encoded.append(msgspec.json.encode(document))
        return Response(200, encoded[0], JSON)

    return serve_openapi
