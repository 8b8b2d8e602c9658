"""In-process Prometheus metrics: Counter, Gauge, Histogram, a Registry and text rendering.

What lives here: the metric types, the module-level default `REGISTRY`, and `render()`, which
produces the Prometheus text exposition format 0.0.4 that `GET /metrics` serves.

What must not: any import from the rest of ff, any I/O, any thread or task. The HTTP layer and
the engine scanners both record into this module on every request or cycle, so recording is a
dict lookup plus an addition. The objects are meant for one trio thread (like the rest of ff);
they take no locks.

Usage::

    CYCLES = Counter("ff_scanner_cycle_total", "Scanner cycles run.", ["scanner"])
    CYCLES.labels(scanner="lease_expiry").inc()
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_BUCKETS",
    "REGISTRY",
    "Counter",
    "CounterChild",
    "Gauge",
    "GaugeChild",
    "Histogram",
    "HistogramChild",
    "Registry",
    "render",
]

_C = TypeVar("_C")
_S = TypeVar("_S", bound="CounterChild | GaugeChild")

#: The Content-Type of the text `render()` produces.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: The client libraries' usual latency buckets, in seconds.
DEFAULT_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _format_value(value: float) -> str:
    """Integral values print without a fraction, so a gauge set to 3 reads ` 3`."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _label_text(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape_label(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _check_name(name: str) -> None:
    ok = name and (name[0].isalpha() or name[0] in "_:")
    if not ok or not all(c.isalnum() or c in "_:" for c in name) or not name.isascii():
        raise ValueError(f"invalid metric or label name: {name!r}")


class Registry:
    """A set of metrics rendered together; names are unique within one registry."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric[Any]] = {}

    def register(self, metric: _Metric[Any]) -> None:
        """Add a metric; a second metric of the same name is a programming error."""
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name!r} is already registered")
        self._metrics[metric.name] = metric

    def render(self) -> str:
        """Every metric in registration order, as Prometheus text format 0.0.4."""
        lines: list[str] = []
        for metric in self._metrics.values():
            lines.append(f"# HELP {metric.name} {_escape_help(metric.documentation)}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            metric.render_samples(lines)
        return "\n".join(lines) + "\n" if lines else ""


REGISTRY = Registry()


def render() -> str:
    """The default registry as Prometheus text."""
    return REGISTRY.render()


class _Metric(ABC, Generic[_C]):
    """Shared label handling: one child per distinct tuple of label values."""

    kind = ""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        *,
        registry: Registry | None = REGISTRY,
    ) -> None:
        _check_name(name)
        self.name = name
        self.documentation = documentation
        self.labelnames: tuple[str, ...] = tuple(labelnames)
        for label in self.labelnames:
            _check_name(label)
            if label.startswith("__") or label == "le":
                raise ValueError(f"reserved label name: {label!r}")
        self._children: dict[tuple[str, ...], _C] = {}
        if registry is not None:
            registry.register(self)

    def labels(self, **kv: object) -> _C:
        """The child for one set of label values, created on first use."""
        values = self._values(kv)
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._new_child()
        return child

    def _values(self, kv: dict[str, object]) -> tuple[str, ...]:
        if len(kv) != len(self.labelnames) or not all(n in kv for n in self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {tuple(kv)}")
        return tuple(str(kv[n]) for n in self.labelnames)

    def _unlabelled(self) -> _C:
        if self.labelnames:
            raise ValueError(f"{self.name} has labels {self.labelnames}; call .labels() first")
        return self.labels()

    @abstractmethod
    def _new_child(self) -> _C:
        """Implemented by each subclass."""

    @abstractmethod
    def render_samples(self, lines: list[str]) -> None:
        """Implemented by each subclass."""


class CounterChild:
    """One label set of a Counter."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: float = 0

    def inc(self, amount: float = 1) -> None:
        """Add `amount`; counters only go up, so a negative amount is refused."""
        if amount < 0:
            raise ValueError("a counter can only increase")
        self.value += amount


class GaugeChild:
    """One label set of a Gauge."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: float = 0

    def set(self, value: float) -> None:
        self.value = value

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def dec(self, amount: float = 1) -> None:
        self.value -= amount


class _ReadChild:
    """A value read at render time from whatever owns it (`set_function`)."""

    __slots__ = ("_read",)

    def __init__(self, read: Callable[[], float]) -> None:
        self._read = read

    @property
    def value(self) -> float:
        return self._read()


class _Scalar(_Metric[_S]):
    """Counter and Gauge: one number per label set."""

    def set_function(self, read: Callable[[], float]) -> None:
        """Take the (unlabelled) value from `read()` at each render, for state that lives
        elsewhere (a connection pool's counts): copying it in would go stale between
        scrapes. A counter's `read` must never go down."""
        if self.labelnames:
            raise ValueError(f"{self.name} has labels {self.labelnames}; set_function needs none")
        self._children[()] = _ReadChild(read)  # type: ignore[assignment]

    def value(self, **kv: object) -> float:
        """The current value for one label set (0 if never touched); does not create it."""
        child = self._children.get(self._values(kv))
        return child.value if child is not None else 0

    def render_samples(self, lines: list[str]) -> None:
        if not self.labelnames and not self._children:
            lines.append(f"{self.name} 0")
        for values, child in self._children.items():
            lines.append(
                f"{self.name}{_label_text(self.labelnames, values)} {_format_value(child.value)}"
            )


class Counter(_Scalar[CounterChild]):
    """A monotonically increasing count. Name it `..._total`."""

    kind = "counter"

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def inc(self, amount: float = 1) -> None:
        """Increment a counter that has no labels."""
        self._unlabelled().inc(amount)


class Gauge(_Scalar[GaugeChild]):
    """A value that goes up and down (queue depth, backlog size)."""

    kind = "gauge"

    def _new_child(self) -> GaugeChild:
        return GaugeChild()

    def set(self, value: float) -> None:
        """Set a gauge that has no labels."""
        self._unlabelled().set(value)

    def inc(self, amount: float = 1) -> None:
        """Increment a gauge that has no labels."""
        self._unlabelled().inc(amount)

    def dec(self, amount: float = 1) -> None:
        """Decrement a gauge that has no labels."""
        self._unlabelled().dec(amount)


class HistogramChild:
    """One label set of a Histogram."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket, not cumulative; last is +Inf
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Record one observation; `le` buckets are inclusive, as Prometheus defines them."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value


class Histogram(_Metric[HistogramChild]):
    """Observations counted into cumulative `le` buckets, plus their sum and count."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        *,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        registry: Registry | None = REGISTRY,
    ) -> None:
        bounds = tuple(float(b) for b in buckets if not math.isinf(b))
        if not bounds or list(bounds) != sorted(set(bounds)):
            raise ValueError("histogram buckets must be a non-empty increasing sequence")
        self._bounds = bounds
        super().__init__(name, documentation, labelnames, registry=registry)

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self._bounds)

    def observe(self, value: float) -> None:
        """Observe on a histogram that has no labels."""
        self._unlabelled().observe(value)

    def render_samples(self, lines: list[str]) -> None:
        children = dict(self._children)
        if not self.labelnames and not children:
            children[()] = self._new_child()
        for values, child in children.items():
            cumulative = 0
            for bound, count in zip(self._bounds, child.counts, strict=False):
                cumulative += count
                label_text = _label_text(self.labelnames, values, f'le="{_format_value(bound)}"')
                lines.append(f"{self.name}_bucket{label_text} {cumulative}")
            label_text = _label_text(self.labelnames, values, 'le="+Inf"')
            lines.append(f"{self.name}_bucket{label_text} {child.count}")
            plain = _label_text(self.labelnames, values)
            lines.append(f"{self.name}_sum{plain} {_format_value(child.sum)}")
            lines.append(f"{self.name}_count{plain} {child.count}")
