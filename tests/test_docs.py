"""Generated documentation stays in step with the code it is generated from."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_lifecycle_transition_table_is_current() -> None:
    result = subprocess.run(
        [sys.executable, "tools/gen_lifecycle_doc.py", "--check"], cwd=ROOT, check=False
    )
    assert result.returncode == 0, "run `python tools/gen_lifecycle_doc.py`"
