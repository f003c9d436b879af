#!/usr/bin/env python
"""Search strategies' sample efficiency and throughput (see docs/BENCHMARKS.md).

    python bench/search_efficiency.py efficiency --seeds 5 --budget 20000
    python bench/search_efficiency.py throughput --children 20 --workers 2

A thin entry point; the benchmark lives in ``nasnet_det.search.benchmark``.
"""

import sys

from nasnet_det.search.benchmark import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
