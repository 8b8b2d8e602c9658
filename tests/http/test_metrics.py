"""ff.metrics: the registry's Prometheus text, label handling and validation."""

from __future__ import annotations

import pytest

from ff.http._metrics import pool_metrics
from ff.metrics import Counter, Gauge, Histogram, Registry
from ff.resp import PoolStats


def test_counter_gauge_histogram_text() -> None:
    registry = Registry()
    cycles = Counter("ff_scanner_cycle_total", "Scanner cycles.", ["scanner"], registry=registry)
    backlog = Gauge("ff_cancel_backlog_depth", "Cancel backlog.", registry=registry)
    latency = Histogram(
        "ff_claim_seconds", "Claim latency.", ["lane"], buckets=[0.1, 1.0], registry=registry
    )
    cycles.labels(scanner="lease_expiry").inc()
    cycles.labels(scanner="lease_expiry").inc(2)
    cycles.labels(scanner="unblock").inc()
    backlog.set(3)
    latency.labels(lane="default").observe(0.1)  # inclusive upper bound
    latency.labels(lane="default").observe(0.5)
    latency.labels(lane="default").observe(7)

    assert registry.render() == (
        "# HELP ff_scanner_cycle_total Scanner cycles.\n"
        "# TYPE ff_scanner_cycle_total counter\n"
        'ff_scanner_cycle_total{scanner="lease_expiry"} 3\n'
        'ff_scanner_cycle_total{scanner="unblock"} 1\n'
        "# HELP ff_cancel_backlog_depth Cancel backlog.\n"
        "# TYPE ff_cancel_backlog_depth gauge\n"
        "ff_cancel_backlog_depth 3\n"
        "# HELP ff_claim_seconds Claim latency.\n"
        "# TYPE ff_claim_seconds histogram\n"
        'ff_claim_seconds_bucket{lane="default",le="0.1"} 1\n'
        'ff_claim_seconds_bucket{lane="default",le="1"} 2\n'
        'ff_claim_seconds_bucket{lane="default",le="+Inf"} 3\n'
        'ff_claim_seconds_sum{lane="default"} 7.6\n'
        'ff_claim_seconds_count{lane="default"} 3\n'
    )
    assert cycles.value(scanner="lease_expiry") == 3
    assert cycles.value(scanner="never") == 0


def test_unlabelled_metrics_render_zero_before_use() -> None:
    registry = Registry()
    Counter("ff_shutdown_timeout_total", "Timeouts.", registry=registry)
    Histogram("ff_x_seconds", "X.", buckets=[1], registry=registry)
    labelled = Counter("ff_y_total", "Y.", ["outcome"], registry=registry)
    text = registry.render()
    assert "ff_shutdown_timeout_total 0\n" in text
    assert 'ff_x_seconds_bucket{le="+Inf"} 0\n' in text
    assert "ff_x_seconds_count 0\n" in text
    assert "# TYPE ff_y_total counter\n" in text
    assert "ff_y_total{" not in text
    labelled.labels(outcome="ok").inc()
    assert 'ff_y_total{outcome="ok"} 1\n' in registry.render()


def test_gauge_moves_both_ways_and_floats_render_exactly() -> None:
    registry = Registry()
    gauge = Gauge("ff_depth", "Depth.", ["partition"], registry=registry)
    child = gauge.labels(partition=7)  # label values are stringified
    child.inc(5)
    child.dec(1.5)
    assert 'ff_depth{partition="7"} 3.5\n' in registry.render()
    child.set(float("inf"))
    assert 'ff_depth{partition="7"} +Inf\n' in registry.render()


def test_label_values_and_help_are_escaped() -> None:
    registry = Registry()
    counter = Counter("ff_esc_total", 'Line one\nback\\slash "q"', ["v"], registry=registry)
    counter.labels(v='a"b\\c\nd').inc()
    text = registry.render()
    assert '# HELP ff_esc_total Line one\\nback\\\\slash "q"\n' in text
    assert 'ff_esc_total{v="a\\"b\\\\c\\nd"} 1\n' in text


def test_misuse_is_refused() -> None:
    registry = Registry()
    counter = Counter("ff_a_total", "A.", ["lane"], registry=registry)
    with pytest.raises(ValueError, match="already registered"):
        Counter("ff_a_total", "again", registry=registry)
    with pytest.raises(ValueError, match="only increase"):
        counter.labels(lane="x").inc(-1)
    with pytest.raises(ValueError, match="takes labels"):
        counter.labels(line="x")
    with pytest.raises(ValueError, match=r"call \.labels"):
        counter.inc()
    with pytest.raises(ValueError, match="invalid metric"):
        Counter("ff-bad", "B.", registry=registry)
    with pytest.raises(ValueError, match="reserved"):
        Histogram("ff_h", "H.", ["le"], registry=registry)
    with pytest.raises(ValueError, match="increasing"):
        Histogram("ff_h2", "H.", buckets=[1, 0.5], registry=registry)


def test_set_function_reads_at_render_time() -> None:
    registry = Registry()
    live = [2]
    Gauge("ff_live", "Live.", registry=registry).set_function(lambda: live[0])
    Counter("ff_seen_total", "Seen.", registry=registry).set_function(lambda: 7)
    assert "ff_live 2\n" in registry.render() and "ff_seen_total 7\n" in registry.render()
    live[0] = 0
    assert "ff_live 0\n" in registry.render()
    with pytest.raises(ValueError, match="needs none"):
        Gauge("ff_l", "L.", ["lane"], registry=registry).set_function(lambda: 1)


def test_pool_metrics_render_a_pool_snapshot() -> None:
    stats = PoolStats(address="127.0.0.1:6379", size=4, connections=3, waiters=1,
                      pending_replies=9, reconnects=2, errors=5, last_error="ConnectionError: x",
                      last_error_at=1_700_000_000.5)
    text = pool_metrics(lambda: stats).render()
    assert "# TYPE ff_resp_pool_reconnects_total counter\n" in text
    assert "# TYPE ff_resp_pool_connections gauge\n" in text
    assert [line for line in text.splitlines() if not line.startswith("#")] == [
        "ff_resp_pool_size 4", "ff_resp_pool_connections 3", "ff_resp_pool_waiters 1",
        "ff_resp_pool_pending_replies 9", "ff_resp_pool_reconnects_total 2",
        "ff_resp_pool_errors_total 5", "ff_resp_pool_last_error_timestamp_seconds 1700000000.5",
    ]
