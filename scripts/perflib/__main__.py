"""`python3 -m perflib ARGS` (with scripts/ on sys.path) is scripts/run-perf.sh ARGS."""

import sys

from .cli import main

sys.exit(main())
