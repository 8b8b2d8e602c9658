"""Secure by default (spec 8, 11): without a token `ff serve` binds loopback, warns loudly,
and refuses a public address unless explicitly told to serve one without auth."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ff.config import ConfigError, ServerConfig, is_loopback
from ff.serve import ServeOptions, load_config
from tests.api.test_serve import FF, serve_env


def test_default_listen_address_depends_on_the_token() -> None:
    assert ServerConfig.from_env({}).bind_host == "127.0.0.1"
    assert ServerConfig.from_env({"FF_API_TOKEN": "t"}).bind_host == "0.0.0.0"
    assert load_config(ServeOptions(api_token="t"), env={}).bind_host == "0.0.0.0"
    explicit = ServerConfig.from_env({"FF_LISTEN_ADDR": "10.1.2.3:80"})
    assert explicit.bind_host == "10.1.2.3"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.9.9.9", "::1", "localhost"])
def test_loopback_without_token_is_allowed(host: str) -> None:
    assert is_loopback(host)
    ServerConfig(listen_host=host).check_listen_policy()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "example.org", ""])
def test_public_without_token_is_refused_unless_allowed(host: str) -> None:
    with pytest.raises(ConfigError, match="FF_API_TOKEN"):
        ServerConfig(listen_host=host).check_listen_policy()
    ServerConfig(listen_host=host, api_token="t").check_listen_policy()
    ServerConfig(listen_host=host, allow_public_without_token=True).check_listen_policy()
    allowed = ServerConfig.from_env({"FF_LISTEN_ADDR": f"[{host}]:1",
                                     "FF_ALLOW_PUBLIC_WITHOUT_TOKEN": "1"})
    allowed.check_listen_policy()


def test_ff_serve_refuses_a_public_address_without_token(tmp_path: Path) -> None:
    env = serve_env(tmp_path / "data", FF_LISTEN_ADDR="0.0.0.0:0")
    done = subprocess.run([*FF, "serve"], env=env, capture_output=True, timeout=60,
                          cwd=tmp_path)
    assert done.returncode == 1
    stderr = done.stderr.decode()
    assert "refusing to listen on 0.0.0.0 without FF_API_TOKEN" in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "data").exists()  # refused before anything started
