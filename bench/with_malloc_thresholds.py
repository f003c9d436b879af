"""Run a Python script with glibc's malloc keeping freed memory in the process.

    python bench/with_malloc_thresholds.py bench/detection_speed.py --what alt ...

Raises ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` to 1 GiB (``mallopt``) before running the
script, so large activations are reused instead of being returned to the kernel and faulted in
again on the next forward (docs/BENCHMARKS.md). glibc only; the environment variables
``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` do the same without this wrapper.
"""

import ctypes
import runpy
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3

if __name__ == "__main__":
    libc = ctypes.CDLL("libc.so.6")
    if not (libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)):
        sys.exit("mallopt refused the thresholds (not glibc?)")
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
