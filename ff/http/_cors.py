"""CORS as a pure policy: which origins may call the API, preflight answers, response headers.

What lives here: `CorsPolicy`, built from an `FF_CORS_ORIGINS`-style list. `["*"]` is fully
permissive; otherwise only the listed origins get `Access-Control-Allow-Origin`, and preflights
allow the `content-type` header plus `authorization` when an API token is configured (as the
reference does). Nothing here knows about sockets or routing.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._message import Response, empty_response

__all__ = ["CorsPolicy"]


class CorsPolicy:
    """Decides CORS headers from the request's `Origin`; built once per app."""

    def __init__(self, origins: Sequence[str], *, allow_authorization: bool) -> None:
        """Reject bad configuration at construction, never at request time.

        An empty list is an error rather than "allow nothing": it almost always comes from an
        empty `FF_CORS_ORIGINS=`, and silently refusing every browser is hard to diagnose.
        """
        cleaned = [o.strip() for o in origins]
        if not cleaned or not any(cleaned):
            raise ValueError("CORS origin list is set but empty; use '*' or list the origins")
        for origin in cleaned:
            if not origin or not origin.isascii() or any(c <= " " or c == "\x7f" for c in origin):
                raise ValueError(f"invalid CORS origin {origin!r}")
        self.allow_any = "*" in cleaned
        self.origins = frozenset(cleaned)
        self._allow_headers = (
            "authorization, content-type" if allow_authorization else "content-type"
        )

    def _allowed_origin(self, origin: str) -> str | None:
        if self.allow_any:
            return "*"
        return origin if origin in self.origins else None

    def preflight(self, headers: dict[str, str], methods: str) -> Response:
        """Answer `OPTIONS` with `Origin` + `Access-Control-Request-Method`, before auth.

        A disallowed origin still gets a 204, just without the allow headers: the browser then
        refuses the real request, and nothing about the policy is revealed.
        """
        vary = "origin, access-control-request-method, access-control-request-headers"
        response = empty_response(204, headers=[("vary", vary)])
        allowed = self._allowed_origin(headers.get("origin", ""))
        if allowed is None:
            return response
        if self.allow_any:
            # `*` in Allow-Headers does not cover Authorization (Fetch spec), so echo the ask.
            requested = headers.get("access-control-request-headers", "")
            allow_headers = requested or self._allow_headers
        else:
            allow_headers = self._allow_headers
        response.headers += [
            ("access-control-allow-origin", allowed),
            ("access-control-allow-methods", methods),
            ("access-control-allow-headers", allow_headers),
            ("access-control-max-age", "600"),
        ]
        return response

    def response_headers(self, origin: str) -> list[tuple[str, str]]:
        """Headers for an actual (non-preflight) answer to a request from `origin`.

        With an allowlist the answer depends on `Origin`, so it always says `Vary: origin` for
        the sake of shared caches.
        """
        headers = [] if self.allow_any else [("vary", "origin")]
        if origin:
            allowed = self._allowed_origin(origin)
            if allowed is not None:
                headers.append(("access-control-allow-origin", allowed))
        return headers
