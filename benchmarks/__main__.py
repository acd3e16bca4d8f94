"""``python -m benchmarks``: run the benchmarks and campaigns (see :mod:`benchmarks.run`)."""

from __future__ import annotations

import sys

from benchmarks.run import main

sys.exit(main())
