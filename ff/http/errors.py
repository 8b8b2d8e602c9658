"""Library and transport errors as HTTP answers: the one place that maps them.

What lives here: `api_error_for(exc)`, which turns an `FFError` (every business rejection of
the function library and the Server) or a RESP transport error into an `ApiError`, and
`mapping_errors(handler)`, which wraps a route handler so that it can let those errors
propagate. Everything else a handler raises stays a logged 500 (a bug, not a client error).

- `FFError`: its own `status` (404/400/409/429/503/500), `kind` and `retryable`; the `error`
  text is "code: detail". NotFound and Validation carry neither `kind` nor `retryable`, as
  in the reference.
- RESP errors: the backend could not answer. A lost or refused connection is 503 `transport`,
  a timed-out command 503 `timeout`, a transient server state (LOADING, BUSY, a failover or
  resharding reply) 503 `busy_loading` or `cluster`; all retryable. Any other server error
  reply is 500 `other`, and a protocol violation 500 `protocol`, not retryable.
"""

from __future__ import annotations

import logging

from ff.core.errors import FFError
from ff.log_summary import LogSummary
from ff.resp import errors as resp_errors

from ._message import ApiError, Handler, Request, Response

__all__ = ["api_error_for", "mapping_errors"]

log = logging.getLogger("ff.http")

_BUSY_PREFIXES = frozenset({"LOADING", "BUSY"})


def _resp_error(exc: resp_errors.RespError) -> ApiError:
    if isinstance(exc, resp_errors.TimeoutError):
        return ApiError(503, f"backend timeout: {exc}", kind="timeout", retryable=True)
    if isinstance(exc, resp_errors.ConnectionError):
        return ApiError(503, f"backend unreachable: {exc}", kind="transport",
                        retryable=exc.retryable)
    if isinstance(exc, resp_errors.AuthenticationError):
        return ApiError(500, "backend refused the credentials", kind="auth", retryable=False)
    if isinstance(exc, resp_errors.ResponseError) and exc.retryable:
        kind = "busy_loading" if exc.prefix in _BUSY_PREFIXES else "cluster"
        return ApiError(503, f"backend busy: {exc}", kind=kind, retryable=True)
    if isinstance(exc, resp_errors.ProtocolError):
        return ApiError(500, f"backend protocol error: {exc}", kind="protocol", retryable=False)
    return ApiError(500, f"backend error: {exc}", kind="other", retryable=False)


def api_error_for(exc: BaseException) -> ApiError | None:
    """The HTTP answer for a library or backend error; None for anything else.

    An exception group maps when every error in it maps (the first one answers).
    """
    if isinstance(exc, FFError):
        plain = exc.status in (400, 404)
        return ApiError(exc.status, str(exc), kind=exc.kind,
                        retryable=None if plain else exc.retryable)
    if isinstance(exc, resp_errors.RespError):
        return _resp_error(exc)
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split((FFError, resp_errors.RespError))
        if matched is not None and rest is None:
            first: BaseException = matched
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            return api_error_for(first)
    return None


def mapping_errors(handler: Handler) -> Handler:
    """`handler`, with library and backend errors answered by `api_error_for`.

    Server-side failures (5xx) are logged with their kind, summarised per kind (`LogSummary`:
    during a Valkey outage every request fails the same way); client errors are not logged.
    """
    backend_errors = LogSummary(log)

    async def mapped(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:
            error = api_error_for(exc)
            if error is None:
                raise
            if error.status >= 500:
                backend_errors.log(logging.WARNING, error.kind,
                                   "http: backend error route=%s kind=%s error=%s",
                                   request.route, error.kind, error.error)
            raise error from exc

    mapped.__name__ = getattr(handler, "__name__", "handler")
    mapped.__doc__ = handler.__doc__
    return mapped
