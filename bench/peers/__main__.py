"""`python -m bench.peers install`: create the peer libraries' virtualenvs."""

import sys

from bench.peers import main

sys.exit(main())
