"""Configuration from the environment: defaults, parsing and clear errors."""

import pytest

from ff.config import ConfigError, ServerConfig


def test_defaults() -> None:
    config = ServerConfig.from_env({})
    assert config.valkey_url is None
    assert (config.bind_host, config.listen_port) == ("127.0.0.1", 9090)
    assert config.lanes == ("default",)
    assert config.partitions.num_flow_partitions == 256
    assert config.intervals.lease_expiry == 1.5


def test_values_are_parsed() -> None:
    config = ServerConfig.from_env({
        "FF_HOST": "db", "FF_PORT": "6380", "FF_LISTEN_ADDR": "127.0.0.1:8000",
        "FF_LANES": " a, b ,", "FF_FLOW_PARTITIONS": "16", "FF_API_TOKEN": "t",
        "FF_WAITPOINT_HMAC_SECRET": "ABcd", "FF_LEASE_EXPIRY_INTERVAL_MS": "500",
        "FF_UNBLOCK_INTERVAL_S": "7",
    })
    assert config.valkey_url == "redis://db:6380"
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 8000)
    assert config.lanes == ("a", "b")
    assert config.partitions.num_flow_partitions == 16
    assert config.waitpoint_hmac_secret == "abcd"
    assert (config.intervals.lease_expiry, config.intervals.unblock) == (0.5, 7)


def test_valkey_url_wins_over_host_and_port() -> None:
    config = ServerConfig.from_env({"FF_VALKEY_URL": "unix:///tmp/v.sock", "FF_HOST": "x"})
    assert config.valkey_url == "unix:///tmp/v.sock"


@pytest.mark.parametrize("env, message", [
    ({"FF_PORT": "abc"}, "FF_PORT"),
    ({"FF_LANES": " , "}, "FF_LANES"),
    ({"FF_CORS_ORIGINS": ""}, "FF_CORS_ORIGINS"),
    ({"FF_WAITPOINT_HMAC_SECRET": "xyz"}, "FF_WAITPOINT_HMAC_SECRET"),
    ({"FF_LISTEN_ADDR": "nowhere"}, "FF_LISTEN_ADDR"),
    ({"FF_FLOW_PARTITIONS": "0"}, "num_flow_partitions"),
])
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ServerConfig.from_env(env)
