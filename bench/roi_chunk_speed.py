"""The paper-split Mobile detector's inference at several ``proposal_chunk`` sizes, in turn.

    OMP_NUM_THREADS=1 python bench/roi_chunk_speed.py 64 32 16 8

Built as ``bench/detection_speed.py`` builds ``mobile`` (random weights, 600 px, 300 regions,
the default inference path); one warm-up, then 4 rounds over the chunk sizes; prints the median
and each round's seconds per size.
"""

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import detection_speed  # noqa: E402

if __name__ == "__main__":
    torch.set_num_threads(1)
    chunks = [int(c) for c in sys.argv[1:]] or [64]
    model = detection_speed.build("mobile", train=False)
    batch = detection_speed.inputs(False)
    times: dict[int, list[float]] = {c: [] for c in chunks}
    with torch.no_grad():
        model(batch)
        for _ in range(4):
            for c in chunks:
                model.roi_heads.proposal_chunk = c
                t = time.perf_counter()
                model(batch)
                times[c].append(time.perf_counter() - t)
    for c in chunks:
        rounds = " ".join(f"{v:.2f}" for v in times[c])
        print(f"proposal_chunk {c}: median {statistics.median(times[c]):.3f} s ({rounds})")
