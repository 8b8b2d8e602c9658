"""Waitpoint token schemes, pure: the Valkey one ff uses and the reference's SHA-256 helper.

`waitpoint_token` is the scheme the function library mints and checks inside Lua
(`lua/waitpoint.lua`): `<kid>:<40 hex>` = HMAC-SHA1 keyed with the hex-decoded secret over
`waitpoint_id|waitpoint_key|created_at_ms`. Python computes the same value for tests,
tools and anyone verifying a token outside Valkey. `sign` / `verify` are the reference's
HMAC-SHA256 `kid:message` scheme (its Postgres/SQLite backends), kept so the reference's
cross-language vectors pass; ff never stores tokens of that kind.

Nothing here logs, and no error message carries a secret or a digest.
"""

from __future__ import annotations

import hashlib
import hmac as _hmac

__all__ = [
    "TokenError",
    "fingerprint",
    "sign",
    "split_token",
    "verify",
    "verify_waitpoint_token",
    "waitpoint_digest",
    "waitpoint_token",
]


class TokenError(ValueError):
    """A token that does not verify; `code` is `invalid_token`, `missing_token` or
    `wrong_kid`."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _key(secret_hex: str) -> bytes:
    try:
        return bytes.fromhex(secret_hex)
    except ValueError:
        raise ValueError("invalid_secret") from None


def waitpoint_digest(secret_hex: str, waitpoint_id: str, waitpoint_key: str,
                     created_at_ms: int | str) -> str:
    """The 40-hex HMAC-SHA1 of one waitpoint under one secret."""
    message = f"{waitpoint_id}|{waitpoint_key}|{int(created_at_ms)}".encode()
    return _hmac.new(_key(secret_hex), message, hashlib.sha1).hexdigest()


def waitpoint_token(kid: str, secret_hex: str, waitpoint_id: str, waitpoint_key: str,
                    created_at_ms: int | str) -> str:
    """`<kid>:<digest>`, byte for byte what the function library mints."""
    if not kid or ":" in kid:
        raise ValueError("invalid_kid")
    return f"{kid}:{waitpoint_digest(secret_hex, waitpoint_id, waitpoint_key, created_at_ms)}"


def split_token(token: str) -> tuple[str, str]:
    """(kid, digest) of a well-formed token; `TokenError` otherwise (the checks Lua makes
    before it looks anything up)."""
    if not token:
        raise TokenError("missing_token")
    kid, sep, digest = token.partition(":")
    if not sep or not kid or len(digest) != 40:
        raise TokenError("invalid_token")
    return kid, digest


def verify_waitpoint_token(token: str, secrets: dict[str, str], waitpoint_id: str,
                           waitpoint_key: str, created_at_ms: int | str) -> None:
    """Raises `TokenError` unless `token` signs the waitpoint under the secret of its kid
    in `secrets` (kid -> secret hex). Compares in constant time."""
    kid, digest = split_token(token)
    secret = secrets.get(kid)
    if secret is None:
        raise TokenError("invalid_token")
    want = waitpoint_digest(secret, waitpoint_id, waitpoint_key, created_at_ms)
    if not _hmac.compare_digest(want, digest.lower()):
        raise TokenError("invalid_token")


def fingerprint(token: str) -> tuple[str, str]:
    """(kid, first 16 hex of the digest): what listings show instead of the token."""
    kid, _, digest = token.partition(":")
    return kid, digest[:16]


# -- the reference's HMAC-SHA256 helper scheme (cross-language vectors) -------------

def sign(secret: bytes, kid: str, message: bytes) -> str:
    """`<kid>:<64 hex>` = HMAC-SHA256(secret, kid + ":" + message)."""
    if not kid or ":" in kid:
        raise ValueError("invalid_kid")
    mac = _hmac.new(secret, kid.encode() + b":" + message, hashlib.sha256).hexdigest()
    return f"{kid}:{mac}"


def verify(secret: bytes, kid: str, message: bytes, token: str) -> None:
    """Raises `TokenError` (`wrong_kid`, `invalid_token`) unless `token` is
    `sign(secret, kid, message)`; split at the first colon, compared in constant time."""
    got_kid, sep, mac = token.partition(":")
    if not sep:
        raise TokenError("invalid_token")
    if got_kid != kid:
        raise TokenError("wrong_kid")
    try:
        bytes.fromhex(mac)
    except ValueError:
        raise TokenError("invalid_token") from None
    if not _hmac.compare_digest(sign(secret, kid, message), token):
        raise TokenError("invalid_token")
