"""Decoding at the edge: JSON bodies into msgspec types, and validated query parameters.

What lives here: `decode_json` and the `query_*` helpers. Each turns bad client input into an
`ApiError` with status 400 and a JSON body, so a handler never answers a client mistake with
500 and never needs its own try/except. Decoders are built once per target type and reused.

`decode_json` is the one place where hostile bytes meet the decoder: besides msgspec's own
errors it maps everything msgspec can raise on such input (invalid UTF-8 inside a string,
recursion on deep nesting) to a 400, and refuses bodies nested deeper than
`MAX_JSON_DEPTH` before decoding them.
"""

from __future__ import annotations

import re
from typing import Any, Literal, TypeVar, overload

import msgspec

from ._message import ApiError, Request
from ._nesting import nesting_exceeds

__all__ = ["MAX_JSON_DEPTH", "decode_body", "decode_json", "query_bool", "query_int", "query_str"]

# Levels of arrays and objects a body may nest (the top-level object is one). The deepest
# body ff reads needs 4 (`$.policy.retry_policy.backoff`); msgspec recurses per level.
MAX_JSON_DEPTH = 32

T = TypeVar("T")

# Plain ASCII digits only: int() alone would also take "1_000", " 7" and non-ASCII digits.
_INT = re.compile(r"-?[0-9]{1,19}")

_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def decode_json(request: Request, type_: type[T]) -> T:
    """Decode and validate the body in one pass (msgspec), or raise a 400 `ApiError`.

    A body that is not JSON we accept gets kind `invalid_json`: a syntax error, invalid UTF-8
    (RFC 8259 requires UTF-8), or nesting deeper than `MAX_JSON_DEPTH`. A well-formed body of
    the wrong shape (missing field, wrong type, failed constraint) gets kind `invalid_body`.
    The message is msgspec's, which names the offending path, e.g. "Expected `int`, got `str`
    - at `$.priority`".
    """
    return decode_body(request.body, type_)


def decode_body(body: bytes, type_: type[T]) -> T:
    """`decode_json` for bytes that are not a whole request body (one item of a batch)."""
    if nesting_exceeds(body, MAX_JSON_DEPTH):
        raise _invalid_json(f"nested deeper than {MAX_JSON_DEPTH} levels")
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = msgspec.json.Decoder(type_)
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise ApiError(400, f"invalid JSON: {exc}", kind="invalid_body") from None
    except msgspec.DecodeError as exc:
        raise _invalid_json(_syntax_error(body, exc)) from None
    except UnicodeDecodeError:
        raise _invalid_json(_utf8_error(body)) from None
    except (ValueError, RecursionError) as exc:
        # Anything else msgspec raises on hostile input; still the client's body, not a bug.
        raise _invalid_json(f"{type(exc).__name__}: {exc}") from None


def _invalid_json(reason: str) -> ApiError:
    return ApiError(400, f"invalid JSON: {reason}", kind="invalid_json")


def _syntax_error(body: bytes, exc: msgspec.DecodeError) -> str:
    """Why a body is not JSON; msgspec since 0.23 reports invalid UTF-8 here too (before,
    as a UnicodeDecodeError), with no position in the body."""
    if not body.strip():
        return "request body is empty"
    if "UTF-8" in str(exc):
        return _utf8_error(body)
    return str(exc)


def _utf8_error(body: bytes) -> str:
    """Where the body stops being UTF-8: msgspec's own error counts from the string's start."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"invalid UTF-8 at byte {exc.start}"
    return "invalid UTF-8 in a string"


def _last(request: Request, name: str) -> str | None:
    values = request.query.get(name)
    return values[-1] if values else None


def _query_error(message: str) -> ApiError:
    return ApiError(400, message, kind="invalid_query")


@overload
def query_str(request: Request, name: str, default: str) -> str: ...
@overload
def query_str(
    request: Request, name: str, default: None = None, *, required: Literal[True]
) -> str: ...
@overload
def query_str(
    request: Request, name: str, default: None = None, *, required: bool = False
) -> str | None: ...
def query_str(
    request: Request, name: str, default: str | None = None, *, required: bool = False
) -> str | None:
    """The query parameter `name` (the last one if repeated), else `default`.

    With `required=True` an absent parameter is a 400 rather than None.
    """
    value = _last(request, name)
    if value is None:
        if required:
            raise _query_error(f"missing query parameter `{name}`")
        return default
    return value


@overload
def query_int(
    request: Request,
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int: ...
@overload
def query_int(
    request: Request,
    name: str,
    default: None = None,
    *,
    required: Literal[True],
    minimum: int | None = None,
    maximum: int | None = None,
) -> int: ...
@overload
def query_int(
    request: Request,
    name: str,
    default: None = None,
    *,
    required: bool = False,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int | None: ...
def query_int(
    request: Request,
    name: str,
    default: int | None = None,
    *,
    required: bool = False,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int | None:
    """The integer query parameter `name`, checked against `minimum`/`maximum` (inclusive).

    Not an integer, or out of range, is a 400 naming the parameter and the bound.
    """
    raw = query_str(request, name, required=required)
    if raw is None:
        return default
    if _INT.fullmatch(raw) is None:
        raise _query_error(f"query parameter `{name}` must be an integer, got {raw!r}")
    value = int(raw)
    if minimum is not None and value < minimum:
        raise _query_error(f"query parameter `{name}` must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise _query_error(f"query parameter `{name}` must be <= {maximum}, got {value}")
    return value


_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


def query_bool(request: Request, name: str, default: bool = False) -> bool:
    """`true`/`1` or `false`/`0` (any case), as the flow cancel route's `?wait=` takes it."""
    raw = _last(request, name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _query_error(f"query parameter `{name}` must be true, false, 1 or 0, got {raw!r}")
