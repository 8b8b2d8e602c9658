"""Regenerates the transition table in docs/lifecycle.md from ff.core.states.TRANSITIONS.

    python tools/gen_lifecycle_doc.py          # rewrite the table
    python tools/gen_lifecycle_doc.py --check  # exit 1 if the doc is stale
"""

from __future__ import annotations

import sys
from pathlib import Path

from ff.core.states import TRANSITIONS

DOC = Path(__file__).resolve().parents[1] / "docs" / "lifecycle.md"
BEGIN = "<!-- transitions:begin -->"
END = "<!-- transitions:end -->"


def render_table() -> str:
    rows = [
        "| function | when | phase | ownership | eligibility | blocking_reason | outcome |"
        " attempt_state | public_state |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in TRANSITIONS:
        cells = [t.function, t.description, t.phase, t.ownership, t.eligibility, t.blocking,
                 t.outcome, t.attempt, t.public]
        rows.append("| " + " | ".join("(kept)" if c is None else str(c) for c in cells) + " |")
    return "\n".join(rows)


def rendered_doc(current: str) -> str:
    head, rest = current.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{render_table()}\n{END}{tail}"


def main() -> int:
    current = DOC.read_text()
    wanted = rendered_doc(current)
    if "--check" in sys.argv:
        return 0 if current == wanted else 1
    DOC.write_text(wanted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
