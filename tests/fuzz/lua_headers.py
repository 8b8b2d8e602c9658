"""The registered functions of the Lua library and their numbered KEYS/ARGV, read from the
headers in the assembled source (so a function added later is fuzzed without editing the
fuzzer)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_REGISTER = re.compile(
    r"redis\.register_function\s*(?:\(\s*'(?P<a>\w+)'|\{\s*function_name\s*=\s*'(?P<b>\w+)')")
_KEY = re.compile(r"^--\s+KEYS\[(\d+)\]\s+(.*)$")
_ARG = re.compile(r"^--\s+ARGV\[([^\]]+)\]\s*(.*)$")


@dataclass
class Header:
    name: str
    keys: list[str] = field(default_factory=list)
    """Description of KEYS[1], KEYS[2], ... in order."""
    args: list[str] = field(default_factory=list)
    """Description of each singly numbered ARGV[i], in order."""
    variadic: bool = False
    """The header numbers a tail (`ARGV[9..8+d]`, `ARGV[2i]`, `ARGV[3..]`)."""


def headers(source: str) -> list[Header]:
    """Every registered function with the comment block right above its registration."""
    lines = source.splitlines()
    found: list[Header] = []
    for number, line in enumerate(lines):
        match = _REGISTER.search(line)
        if not match:
            continue
        header = Header(match.group("a") or match.group("b"))
        start = number
        while start > 0 and lines[start - 1].lstrip().startswith("--"):
            start -= 1
        for comment in lines[start:number]:
            comment = comment.strip()
            if key := _KEY.match(comment):
                assert int(key.group(1)) == len(header.keys) + 1, (header.name, comment)
                header.keys.append(key.group(2).strip())
            elif arg := _ARG.match(comment):
                index = arg.group(1)
                if index.isdigit():
                    assert int(index) == len(header.args) + 1, (header.name, comment)
                    header.args.append(arg.group(2).strip())
                else:
                    header.variadic = True
        found.append(header)
    return found
