"""`python -m bench [scenario1] [options]`: the same as `ff bench`."""

import sys

from bench.cli import main

sys.exit(main())
