"""Resume conditions: validation, the waitpoint keys a condition names, and builders.

A condition is the reference's resume-condition JSON as a dict (data-model 8.5):

* one waitpoint: `{"required_signal_names": [...], "signal_match_mode": "any" | "all" |
  "count", "minimum_signal_count": n}` (no names = any signal; each signal fills at most one
  matcher; `any`/`count` need `minimum_signal_count` matchers filled, `all` every name);
* composite: `{"composite": true, "v": 1, "tree": node}` where a node is
  `{"kind": "Single", "waitpoint_key", "matcher"?}`, `{"kind": "AllOf", "members": [...]}`,
  `{"kind": "Count", "n", "count_kind": "DistinctWaitpoints" | "DistinctSignals" |
  "DistinctSources", "matcher"?, "waitpoints": [keys]}` or `{"kind": "NeverBySignal"}`, and a
  matcher is `{"kind": "ByName", "name"}` or `{"kind": "Wildcard"}` (absent = wildcard).

Every distinct key of a composite gets a waitpoint (and a token) of its own. The function
library checks the same rules again (`lua/waitpoint.lua`); this module answers first, with the
JSON path of the problem, and is what the SDK builders produce.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ff.core.errors import ValidationError

__all__ = [
    "COUNT_KINDS",
    "TIMEOUT_BEHAVIORS",
    "all_of",
    "any_of",
    "by_name",
    "composite",
    "count",
    "plan_condition",
    "signals",
    "single",
    "wildcard",
]

COUNT_KINDS = ("DistinctWaitpoints", "DistinctSignals", "DistinctSources")
MATCH_MODES = ("any", "all", "count")
# `auto_resume` is the reference's auto_resume_with_timeout_signal (accepted too).
TIMEOUT_BEHAVIORS = ("fail", "cancel", "expire", "auto_resume", "escalate",
                     "auto_resume_with_timeout_signal")
MAX_DEPTH = 16
MAX_NAMES = 64
MAX_MINIMUM = 1000
MAX_KEY_LEN = 256


def _bad(path: str, why: str) -> ValidationError:
    return ValidationError("invalid_resume_condition", f"{path}: {why}")


def _key(value: object, path: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_KEY_LEN:
        raise _bad(path, f"a waitpoint key is a non-empty string of at most {MAX_KEY_LEN}")
    return value


def _matcher(value: object, path: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _bad(path, "a matcher is an object")
    kind = value.get("kind")
    if kind == "Wildcard":
        return {"kind": "Wildcard"}
    if kind == "ByName":
        name = value.get("name")
        if not isinstance(name, str) or not name:
            raise _bad(path + ".name", "ByName needs a non-empty name")
        return {"kind": "ByName", "name": name}
    raise _bad(path + ".kind", "a matcher is ByName or Wildcard")


def _positive(value: object, path: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise _bad(path, f"an integer in 1..{maximum}")
    return value


def _node(value: object, path: str, depth: int, keys: list[str]) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise _bad(path, f"nested deeper than {MAX_DEPTH}")
    if not isinstance(value, Mapping):
        raise _bad(path, "a node is an object")
    kind = value.get("kind")
    out: dict[str, Any] = {"kind": kind}
    if kind == "Single":
        out["waitpoint_key"] = key = _key(value.get("waitpoint_key"), path + ".waitpoint_key")
        keys.append(key)
        matcher = _matcher(value.get("matcher"), path + ".matcher")
        if matcher:
            out["matcher"] = matcher
    elif kind == "AllOf":
        members = value.get("members")
        if not isinstance(members, Sequence) or isinstance(members, str) or not members:
            raise _bad(path + ".members", "AllOf needs a non-empty list")
        out["members"] = [_node(m, f"{path}.members[{i}]", depth + 1, keys)
                          for i, m in enumerate(members)]
    elif kind == "Count":
        out["n"] = _positive(value.get("n"), path + ".n", MAX_MINIMUM)
        if value.get("count_kind") not in COUNT_KINDS:
            raise _bad(path + ".count_kind", "one of " + ", ".join(COUNT_KINDS))
        out["count_kind"] = value["count_kind"]
        waitpoints = value.get("waitpoints")
        if not isinstance(waitpoints, Sequence) or isinstance(waitpoints, str) or not waitpoints:
            raise _bad(path + ".waitpoints", "Count needs a non-empty list of keys")
        out["waitpoints"] = [_key(k, f"{path}.waitpoints[{i}]") for i, k in enumerate(waitpoints)]
        keys.extend(out["waitpoints"])
        if out["count_kind"] == "DistinctWaitpoints" and out["n"] > len(set(out["waitpoints"])):
            raise _bad(path + ".n", "more distinct waitpoints than the node lists")
        matcher = _matcher(value.get("matcher"), path + ".matcher")
        if matcher:
            out["matcher"] = matcher
    elif kind != "NeverBySignal":
        raise _bad(path + ".kind", "Single, AllOf, Count or NeverBySignal")
    return out


def plan_condition(condition: Mapping[str, Any]) -> tuple[str, list[str]]:
    """(canonical JSON, the distinct waitpoint keys in order of first mention).

    A single-waitpoint condition names at most one key (`waitpoint_key`, optional); a
    composite names one per distinct key of its tree. Raises `ValidationError`
    (`invalid_resume_condition`) with the JSON path of the first problem.
    """
    if not isinstance(condition, Mapping):
        raise _bad("$", "a condition is an object")
    if condition.get("composite") is True:
        if condition.get("v") != 1:
            raise _bad("$.v", "only version 1 is supported")
        keys: list[str] = []
        tree = _node(condition.get("tree"), "$.tree", 1, keys)
        if not keys:
            raise _bad("$.tree", "a composite names at least one waitpoint")
        ordered = list(dict.fromkeys(keys))
        return json.dumps({"composite": True, "v": 1, "tree": tree},
                          separators=(",", ":")), ordered
    extra = set(condition) - {"required_signal_names", "signal_match_mode",
                              "minimum_signal_count", "waitpoint_key"}
    if extra:
        raise _bad("$", f"unknown field(s): {', '.join(sorted(extra))}")
    names = condition.get("required_signal_names") or []
    if (not isinstance(names, Sequence) or isinstance(names, str) or len(names) > MAX_NAMES
            or not all(isinstance(n, str) and n for n in names)):
        raise _bad("$.required_signal_names", f"at most {MAX_NAMES} non-empty strings")
    mode = condition.get("signal_match_mode") or "any"
    if mode not in MATCH_MODES:
        raise _bad("$.signal_match_mode", "any, all or count")
    minimum = _positive(condition.get("minimum_signal_count", 1),
                        "$.minimum_signal_count", MAX_MINIMUM)
    canonical = {"required_signal_names": list(names), "signal_match_mode": mode,
                 "minimum_signal_count": minimum}
    key = condition.get("waitpoint_key")
    keys = [] if key is None else [_key(key, "$.waitpoint_key")]
    return json.dumps(canonical, separators=(",", ":")), keys


# -- builders -------------------------------------------------------------------------

def signals(*names: str, mode: str = "any", minimum: int = 1,
            key: str | None = None) -> dict[str, Any]:
    """One waitpoint: any signal (no names), any of `names` (`mode="any"`), all of them
    (`mode="all"`), or `minimum` signals (`mode="count"`)."""
    cond: dict[str, Any] = {"required_signal_names": list(names), "signal_match_mode": mode,
                            "minimum_signal_count": minimum}
    if key is not None:
        cond["waitpoint_key"] = key
    return cond


def by_name(name: str) -> dict[str, str]:
    return {"kind": "ByName", "name": name}


def wildcard() -> dict[str, str]:
    return {"kind": "Wildcard"}


def single(waitpoint_key: str, name: str | None = None) -> dict[str, Any]:
    """A signal on `waitpoint_key` (named `name`, or any)."""
    node: dict[str, Any] = {"kind": "Single", "waitpoint_key": waitpoint_key}
    if name is not None:
        node["matcher"] = by_name(name)
    return node


def all_of(*members: Mapping[str, Any]) -> dict[str, Any]:
    return {"kind": "AllOf", "members": [dict(m) for m in members]}


def count(n: int, count_kind: str, waitpoints: Sequence[str],
          name: str | None = None) -> dict[str, Any]:
    """At least `n` distinct waitpoints, signals or sources (`count_kind`: waitpoints,
    signals, sources or the reference's DistinctWaitpoints / ...) among `waitpoints`."""
    kind = {"waitpoints": "DistinctWaitpoints", "signals": "DistinctSignals",
            "sources": "DistinctSources"}.get(count_kind, count_kind)
    node: dict[str, Any] = {"kind": "Count", "n": n, "count_kind": kind,
                            "waitpoints": list(waitpoints)}
    if name is not None:
        node["matcher"] = by_name(name)
    return node


def any_of(*waitpoint_keys: str, name: str | None = None) -> dict[str, Any]:
    """A signal on any one of `waitpoint_keys`."""
    return count(1, "DistinctWaitpoints", waitpoint_keys, name)


def composite(tree: Mapping[str, Any]) -> dict[str, Any]:
    """The composite condition around `tree`."""
    return {"composite": True, "v": 1, "tree": dict(tree)}
