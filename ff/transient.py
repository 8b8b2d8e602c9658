"""The one answer to "may the same call succeed if repeated?", used by the worker's
retry loops, the scanner runtime and anything else that retries.

Transient: a timeout, a dropped or refused connection, a server that is loading or
failing over (the RESP layer marks those `retryable`), and a `BackendError` built from
one. Not transient: any answer the library gave (a business error), a closed client, a
version mismatch, a bug.
"""

from __future__ import annotations

import trio

from ff.core.errors import BackendError
from ff.resp import errors as resp_errors


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, trio.TooSlowError):
        return True
    if isinstance(exc, resp_errors.RespError | BackendError):
        return exc.retryable
    return isinstance(exc, OSError)
