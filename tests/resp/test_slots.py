"""Cluster hash slots against values published in the cluster specification."""

from __future__ import annotations

from ff.resp.slots import crc16, hash_tag, key_slot


def test_crc16_xmodem_check_value() -> None:
    assert crc16(b"123456789") == 0x31C3


def test_known_slots() -> None:
    assert key_slot("foo") == 12182
    assert key_slot(b"foo") == 12182
    assert key_slot("bar") == 5061
    assert key_slot("") == 0


def test_hash_tags() -> None:
    assert key_slot("{user1000}.following") == key_slot("{user1000}.followers")
    assert key_slot("{user1000}.following") == key_slot("user1000")
    assert hash_tag(b"foo{}{bar}") == b"foo{}{bar}"  # empty first tag: whole key
    assert hash_tag(b"foo{{bar}}zap") == b"{bar"
    assert hash_tag(b"foo{bar}{zap}") == b"bar"
    assert hash_tag(b"no-close{") == b"no-close{"
