"""The paper-split Mobile detector's inference: the memory-bound ops (copy, fill, ReLU, cat)
grouped by input shape, and by call stack.

    OMP_NUM_THREADS=1 python bench/profile_shapes.py

Built as ``bench/detection_speed.py`` builds ``mobile`` (random weights, 600 px, 300 regions,
the default inference path); one warm-up, then one forward under ``torch.profiler``.
"""

import sys
import warnings
from pathlib import Path

import torch

warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import detection_speed as ds  # noqa: E402

MEMORY_OPS = ("aten::copy_", "aten::fill_", "aten::clamp_min", "aten::cat")

if __name__ == "__main__":
    torch.set_num_threads(1)
    m = ds.build("mobile", train=False)
    batch = ds.inputs(False)
    with torch.no_grad():
        m(batch)
        with torch.profiler.profile(record_shapes=True) as prof:
            m(batch)
    rows = [e for e in prof.key_averages(group_by_input_shape=True) if e.key in MEMORY_OPS]
    rows.sort(key=lambda e: -e.self_cpu_time_total)
    print("| op | calls | self ms | input shapes |\n| --- | --- | --- | --- |")
    for e in rows[:14]:
        shapes = str(e.input_shapes)[:80]
        print(f"| {e.key} | {e.count} | {e.self_cpu_time_total / 1e3:.1f} | {shapes} |")
