"""The Lua library's layout rules, checked on the real sources and on small broken trees:
the top-level local budget, declared requirements, numbered headers, generated facts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ff.core import limits, states
from ff.script import _source
from ff.script._source import LibraryLayoutError, assemble, load_areas, top_level_locals
from ff.script.library import library_source

TOP_LEVEL_LOCALS_BUDGET = 120


def test_the_chunk_stays_far_below_luas_local_cap() -> None:
    assert top_level_locals(library_source()) <= TOP_LEVEL_LOCALS_BUDGET


def test_the_local_counter_counts_only_the_main_function() -> None:
    source = """
local a, b = 1, 2
local function f() local inner = 1 return inner end
do local hidden = 3 end
for i = 1, 2 do local also_hidden = i end
if a then local nope = 1 elseif b then local nope2 = 2 else local nope3 = 3 end
local s = 'local not_a_local'  -- local in a comment
local t = {x = function() local deep = 1 end}
"""
    assert top_level_locals(source) == 5  # a, b, f, s, t


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_files_load_after_what_they_require(tmp_path: Path) -> None:
    lua = _tree(tmp_path, {
        "a.lua": "-- @requires b\nlocal x = b.f\n",
        "b.lua": "-- @requires\nb.f = function() end\n",
    })
    order = [area.name for area in load_areas(lua)]
    assert order.index("b") < order.index("a")


@pytest.mark.parametrize("files, message", [
    ({"a.lua": "-- @requires\nlocal x = b.f\n", "b.lua": "-- @requires\n"},
     "a.lua uses the `b` area without `-- @requires b`"),
    ({"a.lua": "-- @requires b\nlocal x = b.typo\n", "b.lua": "-- @requires\nb.f = 1\n"},
     "a.lua uses b.typo, which b.lua does not set"),
    ({"a.lua": "-- @requires nowhere\n"}, "a.lua requires `nowhere`, which no file defines"),
    ({"a.lua": "-- @requires b\n", "b.lua": "-- @requires a\n"}, "cycle: a -> b -> a"),
    ({"a.lua": "local x = 1\n"}, "a.lua: needs exactly one `-- @requires` line"),
])
def test_a_broken_layout_is_refused_at_load(tmp_path: Path, files: dict[str, str],
                                            message: str) -> None:
    with pytest.raises(LibraryLayoutError, match=re.escape(message)):
        load_areas(_tree(tmp_path, files))


def test_a_use_inside_a_string_or_comment_needs_no_requirement(tmp_path: Path) -> None:
    lua = _tree(tmp_path, {"a.lua": "-- @requires\n-- see b.f\nlocal s = 'b.f'\n",
                           "b.lua": "-- @requires\n"})
    assert "local a = {}" in assemble(load_areas(lua))


_REGISTER = re.compile(r"register_function\(\s*'(\w+)'|function_name\s*=\s*'(\w+)'")


def _functions() -> list[tuple[str, str, str]]:
    """(name, header comment, body) of every registered function in lua/."""
    found = []
    for path in sorted(_source.LUA_DIR.glob("*.lua")):
        text = path.read_text()
        matches = list(_REGISTER.finditer(text))
        for i, match in enumerate(matches):
            line_start = text.rfind("\n", 0, match.start()) + 1
            header = []
            for line in reversed(text[:line_start].splitlines()):
                if not line.startswith("--"):
                    break
                header.append(line)
            end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
            name = match.group(1) or match.group(2)
            found.append((name, "\n".join(reversed(header)), text[match.start():end]))
    return found


def test_every_function_has_a_header_numbering_its_keys_and_argv() -> None:
    functions = _functions()
    assert len(functions) > 20
    for name, header, body in functions:
        assert header.startswith(f"-- {name}"), f"{name}: header must open with its name"
        assert "Reply" in header, f"{name}: header lists no Reply"
        for kind, used in (("KEYS", r"keys\[(\d+)\]"), ("ARGV", r"args\[(\d+)\]")):
            numbered = [int(n) for n in re.findall(rf"--\s+{kind}\[(\d+)\]", header)]
            assert numbered == list(range(1, len(numbered) + 1)), f"{name}: {kind} numbering"
            highest = max((int(n) for n in re.findall(used, body)), default=0)
            pairwise = kind == "ARGV" and f"{kind}[2i]" in header
            assert pairwise or highest <= len(numbered), (
                f"{name} reads {kind}[{highest}] but its header numbers {len(numbered)}")


def test_facts_are_generated_from_the_state_model() -> None:
    facts = _source.facts()
    assert facts["RECLAIM_CAP_DEFAULT"] == limits.RECLAIM_CAP_DEFAULT
    assert facts["GRANT_TTL_MAX_MS"] == limits.GRANT_TTL_MAX_MS
    public = facts["PUBLIC_STATE"]
    index = facts["LANE_INDEX"]
    assert isinstance(public, dict) and isinstance(index, dict)
    for phase in states.LifecyclePhase:
        for eligibility in states.EligibilityState:
            for outcome in states.TerminalOutcome:
                assert public[f"{phase}|{eligibility}|{outcome}"] == states.public_state_of(
                    phase, eligibility, outcome)
            for ownership in states.OwnershipState:
                assert index.get(f"{phase}|{eligibility}|{ownership}") == states.lane_index_of(
                    phase, eligibility, ownership)
    assert "facts.PUBLIC_STATE = {" in library_source()
