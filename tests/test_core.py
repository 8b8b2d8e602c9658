"""Pure core: ids, partitions, key shapes, policies, the public_state rule."""

import pytest

from ff.core.errors import (
    ContentionError,
    ExecutionNotActiveError,
    NotFoundError,
    StateConflictError,
    ValidationError,
    error_for_code,
)
from ff.core.ids import ExecutionId, validate_lane
from ff.core.keys import (
    CONFIG_PARTITIONS,
    ExecKeys,
    IndexKeys,
    idempotency_key,
)
from ff.core.partitions import PartitionConfig, crc16_xmodem, fnv1a_64
from ff.core.policy import (
    FixedBackoff,
    RetryPolicy,
    capabilities_csv,
    decode_policy,
)
from ff.core.states import PublicState, public_state_of


def test_crc16_xmodem_check_value() -> None:
    assert crc16_xmodem(b"123456789") == 0x31C3


def test_fnv1a_64_known_value() -> None:
    assert fnv1a_64(b"") == 0xCBF29CE484222325
    assert fnv1a_64(b"a") == 0xAF63DC4C8601EC8C


def test_solo_partition_hashes_the_lane_and_flow_partition_the_uuid_bytes() -> None:
    config = PartitionConfig()
    assert config.lane_partition("default") == crc16_xmodem(b"default") % 256
    fid = "11111111-2222-4333-8444-555555555555"
    assert config.flow_partition(fid) == crc16_xmodem(bytes.fromhex(fid.replace("-", ""))) % 256
    assert ExecutionId.solo("default", config, 1).partition == config.lane_partition("default")


CROSS_LANGUAGE_IDS = [
    "{fp:0}:00000000-0000-4000-8000-000000000000",
    "{fp:42}:11111111-2222-4333-8444-555555555555",
    "{fp:255}:ffffffff-ffff-4fff-8fff-ffffffffffff",
]


@pytest.mark.parametrize("eid", CROSS_LANGUAGE_IDS)
def test_exec_keys_match_the_cross_language_corpus(eid: str) -> None:
    tag = eid[: eid.index("}") + 1]
    keys = ExecKeys(ExecutionId.parse(eid))
    for suffix, key in [
        ("core", keys.core), ("payload", keys.payload), ("result", keys.result),
        ("tags", keys.tags), ("attempts", keys.attempts), ("signals", keys.signals),
        ("waitpoints", keys.waitpoints),
    ]:
        assert key == f"ff:exec:{tag}:{eid}:{suffix}"


def test_free_function_keys_match_the_corpus() -> None:
    assert CONFIG_PARTITIONS == "ff:config:{config}:partitions"
    assert idempotency_key("exec", "acme", "key-1") == "ff:idem:exec:acme:key-1"
    assert IndexKeys(7).lane("default", "eligible") == "ff:idx:{fp:7}:lane:default:eligible"


@pytest.mark.parametrize("bad", [
    "",
    "fp:1:00000000-0000-4000-8000-000000000000",
    "{fp:x}:00000000-0000-4000-8000-000000000000",
    "{fp:1}:not-a-uuid-not-a-uuid-not-a-uuid-xxxx",
    "{fp:70000}:00000000-0000-4000-8000-000000000000",
    42, None,
])
def test_execution_id_parse_rejects_malformed_ids(bad: object) -> None:
    with pytest.raises(ValidationError) as info:
        ExecutionId.parse(bad)
    assert info.value.code == "invalid_execution_id"


def test_execution_id_parts() -> None:
    eid = ExecutionId.parse(CROSS_LANGUAGE_IDS[1])
    assert eid.partition == 42
    assert eid.tag == "{fp:42}"


@pytest.mark.parametrize("lane", ["", "x" * 65, "tab\there", "é"])
def test_lane_validation(lane: str) -> None:
    with pytest.raises(ValidationError):
        validate_lane(lane)
    assert validate_lane("x" * 64) == "x" * 64


@pytest.mark.parametrize("raw", [
    '{"max_reclaim_count": -5}',
    '{"timeout_policy": {"max_reclaim_count": 1000001}}',
    '{"retry_policy": {"max_retries": 1e20}}',
    '{"retry_policy": {"max_retries": -1}}',
    '{"max_replay_count": -1}',
    '{"max_signals_per_execution": 99999999999}',
    '{"stream_policy": {"retention_maxlen": -1}}',
    '{"stream_policy": {"retention_maxlen": 0}}',
    '{"retry_policy": {"backoff": {"type": "exponential", "multiplier": 0.5}}}',
])
def test_policy_counts_out_of_range_are_rejected(raw: str) -> None:
    with pytest.raises(ValidationError, match="invalid_policy_json"):
        decode_policy(raw)


def test_policy_rejects_unknown_fields_and_wrong_types() -> None:
    with pytest.raises(ValidationError, match="invalid_policy_json"):
        decode_policy('{"retry_policy": {"max_retries": 1, "bogus": 2}}')
    with pytest.raises(ValidationError, match="invalid_policy_json"):
        decode_policy('{"priority": "high"}')
    with pytest.raises(ValidationError, match="invalid_policy_json"):
        decode_policy('{"retry_policy": {"backoff": {"type": "linear"}}}')
    policy = decode_policy(
        '{"retry_policy": {"backoff": {"type": "fixed", "delay_ms": 5}},'
        ' "routing_requirements": {"required_capabilities": ["gpu"]}}'
    )
    assert policy is not None
    assert policy.retry_policy == RetryPolicy(max_retries=3, backoff=FixedBackoff(5))
    assert policy.required_capabilities() == ["gpu"]


@pytest.mark.parametrize("tokens, detail", [
    ([""], "required:empty_token"),
    (["a,b"], "required:comma_in_token"),
    (["has space"], "required:control_or_whitespace"),
    ([f"t{i}" for i in range(257)], "required:too_many_tokens"),
    (["x" * 4097], "required:too_many_bytes"),
])
def test_capability_validation(tokens: list[str], detail: str) -> None:
    with pytest.raises(ValidationError) as info:
        capabilities_csv(tokens, "required")
    assert info.value.detail == detail


def test_capabilities_are_sorted_and_deduplicated() -> None:
    assert capabilities_csv(["b", "a", "b"], "worker") == "a,b"


@pytest.mark.parametrize("phase, eligibility, outcome, expected", [
    ("runnable", "eligible_now", "none", PublicState.WAITING),
    ("runnable", "not_eligible_until_time", "none", PublicState.DELAYED),
    ("runnable", "blocked_by_route", "none", PublicState.WAITING),
    ("runnable", "blocked_by_operator", "none", PublicState.WAITING),
    ("runnable", "blocked_by_budget", "none", PublicState.RATE_LIMITED),
    ("runnable", "blocked_by_quota", "none", PublicState.RATE_LIMITED),
    ("runnable", "blocked_by_dependencies", "none", PublicState.WAITING_CHILDREN),
    ("active", "not_applicable", "none", PublicState.ACTIVE),
    ("suspended", "not_applicable", "none", PublicState.SUSPENDED),
    ("terminal", "not_applicable", "success", PublicState.COMPLETED),
    ("terminal", "not_applicable", "cancelled", PublicState.CANCELLED),
    ("terminal", "not_applicable", "none", PublicState.FAILED),
])
def test_public_state_rule(phase: str, eligibility: str, outcome: str, expected: str) -> None:
    assert public_state_of(phase, eligibility, outcome) == expected


def test_error_codes_map_to_families() -> None:
    assert isinstance(error_for_code("execution_not_found"), NotFoundError)
    assert isinstance(error_for_code("stale_lease"), ContentionError)
    assert error_for_code("stale_lease").retryable
    assert isinstance(error_for_code("execution_not_terminal"), StateConflictError)
    err = error_for_code("execution_not_active", "success", "3", "terminal", "a1")
    assert isinstance(err, ExecutionNotActiveError)
    assert (err.terminal_outcome, err.lease_epoch, err.attempt_id) == ("success", "3", "a1")
    assert error_for_code("something_new").status == 409


# -- waitpoint tokens (ff.core.hmac) ---------------------------------------------------

HMAC_SHA256_VECTORS = [  # the reference's cross-language corpus (worker-streams-hmac 7)
    (b"secret-1", "kid-a", b"hello",
     "kid-a:d0a1581fa55bac26afe8c11b8e5653a6ad2e10c6e09fa44e3c770eeb72d83d4b"),
    (b"super-secret-rotating-key-v1", "vllm-demo-2026-05", b"exec=abc:waitpoint=wp-42",
     "vllm-demo-2026-05:dd0d4d13715ffab543c1ea9ba0a711311f13a36a740c14d08f7ab4983d3111ef"),
    (b"k", "k0", b"", "k0:b6063576168fc22293d5724cebbbd78beb2ca5cd4d7e34b21e61a132042a5266"),
    (b"\xaa" * 64, "block-sized-secret", b"message",
     "block-sized-secret:fe800115905f7369d1c2c18fe85c6ae10decd1b0392e4a238ed89e17f84c5fdc"),
    (b"k", "binary", bytes([0, 1, 0xFE, 0xFF]),
     "binary:f98fd661ff642ba9895b6b9297fbc29cb95ceb8782267955cc647576e9bb022a"),
]


@pytest.mark.parametrize(("secret", "kid", "message", "token"), HMAC_SHA256_VECTORS)
def test_reference_hmac_vectors(secret: bytes, kid: str, message: bytes, token: str) -> None:
    from ff.core import hmac as ffhmac

    assert ffhmac.sign(secret, kid, message) == token
    ffhmac.verify(secret, kid, message, token)
    with pytest.raises(ffhmac.TokenError):
        ffhmac.verify(secret, kid, message, token[:-1] + ("0" if token[-1] != "0" else "1"))
    with pytest.raises(ffhmac.TokenError):
        ffhmac.verify(secret, kid + "x", message, token)


def test_waitpoint_token_scheme() -> None:
    import hashlib
    import hmac as std_hmac

    from ff.core import hmac as ffhmac

    secret = "ab" * 32
    token = ffhmac.waitpoint_token("k1", secret, "wp", "wpk:wp", 1700000000000)
    digest = std_hmac.new(bytes.fromhex(secret), b"wp|wpk:wp|1700000000000",
                          hashlib.sha1).hexdigest()
    assert token == f"k1:{digest}"
    ffhmac.verify_waitpoint_token(token, {"k1": secret}, "wp", "wpk:wp", 1700000000000)
    for bad in ("", "k1:" + "0" * 40, "k2:" + digest, "k1:" + digest[:-1]):
        with pytest.raises(ffhmac.TokenError):
            ffhmac.verify_waitpoint_token(bad, {"k1": secret}, "wp", "wpk:wp", 1700000000000)
