"""The pure parts of the cluster client: which key routes a command, what a redirect
says, how slot maps are read, and the URL forms that choose a cluster."""

from __future__ import annotations

import pytest

from ff.resp import Client, ClusterClient, errors, parse_url
from ff.resp._routing import command_slot, redirect_of
from ff.resp._topology import SlotMap, ranges_from_shards, ranges_from_slots
from ff.resp.slots import key_slot


def test_the_first_key_routes_and_keyless_commands_go_anywhere() -> None:
    assert command_slot(("GET", "{a}x")) == key_slot("a")
    assert command_slot((b"hset", b"{b}y", b"f", b"v")) == key_slot("b")
    assert command_slot(("FCALL", "f", 2, "{c}1", "{c}2", "arg")) == key_slot("c")
    assert command_slot(("FCALL", "ff_version", 0)) is None
    assert command_slot(("XREAD", "COUNT", 1, "STREAMS", "{d}s", "0")) == key_slot("d")
    for keyless in (("PING",), ("INFO", "server"), ("SCAN", 0), ("FUNCTION", "LOAD", "x")):
        assert command_slot(keyless) is None


def test_redirects_are_read_from_error_replies() -> None:
    moved = redirect_of(errors.ResponseError("MOVED 3999 127.0.0.1:6381"))
    assert moved is not None and not moved.ask and moved.slot == 3999
    assert moved.address == "127.0.0.1:6381"
    ask = redirect_of(errors.ResponseError("ASK 1 10.0.0.1:7000"))
    assert ask is not None and ask.ask
    assert redirect_of(errors.ResponseError("ERR nope")) is None
    assert redirect_of(errors.ResponseError("MOVED garbage")) is None


def test_slot_maps_from_shards_and_slots_replies() -> None:
    shards = [
        {b"slots": [0, 99], b"nodes": [
            {b"ip": b"127.0.0.1", b"port": 7000, b"role": b"master", b"health": b"online"},
            {b"ip": b"127.0.0.1", b"port": 7003, b"role": b"replica", b"health": b"online"}]},
        {b"slots": [100, 16383], b"nodes": [
            {b"ip": b"127.0.0.1", b"port": 7001, b"role": b"master", b"health": b"fail"}]},
    ]
    ranges = ranges_from_shards(shards, tls=False)
    assert ranges == [(0, 99, "127.0.0.1:7000")]
    slot_map = SlotMap(ranges)
    assert slot_map.owners[99] == "127.0.0.1:7000" and slot_map.owners[100] is None
    assert not slot_map.complete
    legacy = [[0, 16383, [b"127.0.0.1", 7000, b"id"], [b"127.0.0.1", 7003, b"id2"]]]
    assert SlotMap(ranges_from_slots(legacy)).complete


def test_cluster_urls_choose_the_cluster_client() -> None:
    assert parse_url("redis+cluster://h:7000").cluster
    assert parse_url("valkey+cluster://h:7000").port == 7000
    assert not parse_url("valkey://h").cluster
    assert isinstance(Client.from_url("redis+cluster://127.0.0.1:7000"), ClusterClient)
    assert isinstance(Client.from_url("redis://127.0.0.1:7000", cluster=True), ClusterClient)
    assert type(Client.from_url("redis://127.0.0.1:7000")) is Client
    with pytest.raises(ValueError, match="database 0"):
        parse_url("redis+cluster://h:7000/2")
    with pytest.raises(ValueError, match="unsupported"):
        parse_url("unix+cluster:///tmp/s")
