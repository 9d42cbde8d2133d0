"""``python -m benchmarks``: run the benchmark from a source checkout."""

import sys

from . import main

sys.exit(main())
