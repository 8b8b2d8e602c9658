"""Cluster hash slots: CRC16/XMODEM of the key (or its `{hash tag}`) modulo 16384.

Lives apart from the client so a cluster router can group keys by slot without a
connection; the single-node client does not use it.
"""

from __future__ import annotations

from ff.crc16 import crc16_xmodem as crc16

SLOTS = 16384


def hash_tag(key: bytes) -> bytes:
    """The part of `key` that is hashed: the first non-empty `{...}` section, else all."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def key_slot(key: bytes | str) -> int:
    """Cluster slot (0..16383) that owns `key`; keys sharing a hash tag share a slot."""
    if isinstance(key, str):
        key = key.encode()
    return crc16(hash_tag(key)) % SLOTS
