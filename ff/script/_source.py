"""Assembles the Lua library from `lua/` and checks its layout before anything loads it.

Each file in `lua/` is one area. Its header names the areas it uses (`-- @requires a, b`);
the assembler declares one table per area at the top of the chunk, wraps each file in a
do-block (so its helpers stay private and do not count against Lua's cap of 200 locals
per function), orders the files by their requirements, and refuses a layout where a file
uses an area it does not require, takes a name an area does not set, requires one that
does not exist, or takes part in a cycle. The `facts` area is generated here from `ff.core`
(states and limits), so the Lua tables that encode the state model cannot drift from it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from ff.core import limits, policy, states

LUA_DIR = Path(__file__).resolve().parents[1] / "lua"
LIBRARY_NAME = "flowfabric"
FACTS_AREA = "facts"

_REQUIRES = re.compile(r"^--\s*@requires\b(.*)$", re.MULTILINE)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class LibraryLayoutError(Exception):
    """The Lua sources break a layout rule; the message names the file and the rule."""


class Area:
    __slots__ = ("name", "requires", "text")

    def __init__(self, name: str, requires: tuple[str, ...], text: str) -> None:
        self.name = name
        self.requires = requires
        self.text = text


def _parse_area(path: Path) -> Area:
    text = path.read_text()
    declared = _REQUIRES.findall(text)
    if len(declared) != 1:
        raise LibraryLayoutError(f"{path.name}: needs exactly one `-- @requires` line")
    requires = tuple(r for r in re.split(r"[\s,]+", declared[0]) if r)
    return Area(path.stem, requires, text)


def _lua_literal(value: object) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        items = ", ".join(f"[{_lua_literal(str(k))}] = {_lua_literal(v)}"
                          for k, v in value.items())
        return "{" + items + "}"
    if isinstance(value, Iterable):
        return "{" + ", ".join(_lua_literal(v) for v in value) + "}"
    raise TypeError(f"no Lua literal for {value!r}")


def _state_lookups() -> tuple[dict[str, str], dict[str, str]]:
    """public_state_of and lane_index_of as flat tables over every combination of their
    inputs, keyed `a|b|c`, so the Lua side holds no copy of the rules."""
    public: dict[str, str] = {}
    index: dict[str, str] = {}
    for phase in states.LifecyclePhase:
        for eligibility in states.EligibilityState:
            for outcome in states.TerminalOutcome:
                public[f"{phase}|{eligibility}|{outcome}"] = str(
                    states.public_state_of(phase, eligibility, outcome))
            for ownership in states.OwnershipState:
                lane_index = states.lane_index_of(phase, eligibility, ownership)
                if lane_index is not None:
                    index[f"{phase}|{eligibility}|{ownership}"] = lane_index
    return public, index


def facts() -> dict[str, object]:
    """The tables and numbers the Lua library shares with ff.core."""
    public, index = _state_lookups()
    return {
        "PUBLIC_STATE": public,
        "LANE_INDEX": index,
        "STATE_FIELDS": list(states.STATE_FIELDS),
        "LIVE_LANE_INDEXES": list(states.LIVE_LANE_INDEXES),
        "BLOCKS": {
            str(reason): {"eligibility": str(eligibility),
                          "index": states.LANE_INDEX_BY_ELIGIBILITY[eligibility]}
            for reason, eligibility in states.BLOCKS.items()
        },
        "CLAIMABLE": {"phase": str(states.CLAIMABLE_PHASE),
                      "eligibility": str(states.CLAIMABLE_ELIGIBILITY)},
        "RECLAIMABLE_OWNERSHIPS": {str(o): True for o in sorted(states.RECLAIMABLE_OWNERSHIPS)},
        "CAPS_MAX_TOKENS": limits.CAPS_MAX_TOKENS,
        "CAPS_MAX_BYTES": limits.CAPS_MAX_BYTES,
        "RECLAIM_CAP_DEFAULT": limits.RECLAIM_CAP_DEFAULT,
        "GRANT_TTL_MIN_MS": limits.GRANT_TTL_MIN_MS,
        "GRANT_TTL_MAX_MS": limits.GRANT_TTL_MAX_MS,
        "PRIORITY_MAX": limits.PRIORITY_MAX,
        "REPLAY_CAP_DEFAULT": limits.REPLAY_CAP_DEFAULT,
        "RETRY_DEFAULTS": {
            "max_retries": policy.RetryPolicy().max_retries,
            "fixed_delay_ms": policy.FixedBackoff().delay_ms,
            "initial_delay_ms": policy.ExponentialBackoff().initial_delay_ms,
            "max_delay_ms": policy.ExponentialBackoff().max_delay_ms,
            "multiplier": policy.ExponentialBackoff().multiplier,
        },
        **{name: getattr(limits, name) for name in dir(limits)
           if name.startswith(("STREAM_", "SUMMARY_", "BUDGET_", "QUOTA_"))},
        "CYCLE_CHECK_MAX_NODES": limits.CYCLE_CHECK_MAX_NODES,
        "RESOLVE_MAX_EDGES": limits.RESOLVE_MAX_EDGES,
    }


def _facts_area() -> Area:
    lines = ["-- Generated from ff.core.states and ff.core.limits (ff/script/_source.py).",
             "-- @requires"]
    lines += [f"facts.{name} = {_lua_literal(value)}" for name, value in facts().items()]
    return Area(FACTS_AREA, (), "\n".join(lines) + "\n")


def strip_lua(text: str) -> str:
    """The code with comments removed and string contents blanked, for the checks."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "-" and text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c in "'\"":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _fields_used(code: str, area: str) -> set[str]:
    """The names read or written as `area.<name>` in `code`."""
    return set(re.findall(rf"(?<![\w.]){area}\.([A-Za-z_]\w*)", code))


def _check_uses(area: Area, exports: dict[str, set[str]]) -> None:
    """Every area the file uses is required, and every name it takes from one is a name
    that area's own file sets (a typo is a load-time error, not a nil call later)."""
    code = strip_lua(area.text)
    for other in sorted(set(exports) - {area.name}):
        used = _fields_used(code, other)
        if not used:
            continue
        if other not in area.requires:
            raise LibraryLayoutError(
                f"{area.name}.lua uses the `{other}` area without `-- @requires {other}`")
        unknown = sorted(used - exports[other])
        if unknown:
            raise LibraryLayoutError(
                f"{area.name}.lua uses {other}.{unknown[0]}, which {other}.lua does not set")


def _ordered(areas: dict[str, Area]) -> list[Area]:
    """Areas after everything they require (file order breaks ties)."""
    done: list[Area] = []
    placed: set[str] = set()
    visiting: list[str] = []

    def place(name: str, needed_by: str) -> None:
        if name in placed:
            return
        if name not in areas:
            raise LibraryLayoutError(f"{needed_by}.lua requires `{name}`, which no file defines")
        if name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(name):], name])
            raise LibraryLayoutError(f"the areas require each other in a cycle: {cycle}")
        visiting.append(name)
        for required in areas[name].requires:
            place(required, name)
        visiting.pop()
        placed.add(name)
        done.append(areas[name])

    for name in areas:
        place(name, name)
    return done


def load_areas(lua_dir: Path = LUA_DIR) -> list[Area]:
    """Every area in load order, checked."""
    found = [_facts_area()] + [_parse_area(p) for p in sorted(lua_dir.glob("*.lua"))]
    areas = {area.name: area for area in found}
    if len(areas) != len(found):
        raise LibraryLayoutError("two areas share a name")
    exports = {area.name: _fields_used(strip_lua(area.text), area.name) for area in found}
    for area in found:
        _check_uses(area, exports)
    return _ordered(areas)


def assemble(areas: list[Area]) -> str:
    parts = [f"#!lua name={LIBRARY_NAME}\n"]
    parts += [f"local {area.name} = {{}}\n" for area in areas]
    for area in areas:
        parts.append(f"\n-- ==== {area.name} ====\ndo\n{area.text}end\n")
    return "".join(parts)


_OPENERS = {"function", "if", "do", "repeat"}
_CLOSERS = {"end", "until"}


def top_level_locals(source: str) -> int:
    """How many locals the chunk's main function declares (Lua caps it at 200)."""
    tokens = re.findall(r"[A-Za-z_][A-Za-z0-9_]*|,|\S", strip_lua(source))
    depth = count = 0
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in _OPENERS:
            depth += 1
        elif token in _CLOSERS:
            depth -= 1
        elif token == "local" and depth == 0:
            if tokens[i + 1] == "function":
                count += 1
            else:
                i += 1
                while i < len(tokens) and _NAME.fullmatch(tokens[i]):
                    count += 1
                    if i + 1 < len(tokens) and tokens[i + 1] == ",":
                        i += 2
                    else:
                        break
        i += 1
    return count
