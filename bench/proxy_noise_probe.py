#!/usr/bin/env python
"""Where a table proxy's seed-to-seed noise comes from: one cell, several seeds, looked inside.

    OMP_NUM_THREADS=1 proxy_noise_probe.py --cells 3 4 5 [--seeds 0 1] [--optimizer sgd|adam]

Trains cells of the demo space (their index in ``sample_cells(space, ., 0)``, the table's order)
with the shipped table's proxy (:class:`nasnet_det.search.tabular.Proxy`'s defaults) and the same
loop as :func:`nasnet_det.search.child.train_child` (SGD nesterov 0.9, weight decay 5e-4, cosine,
gradient clip 5, the seed's batch order), so with ``--optimizer sgd`` the reward ``asis`` equals
the table's stored reward of that seed. Prints one JSON line per training: held-out accuracy
(percent) of the final weights as they are (``asis``), after recalibrating the BN statistics on
all training crops (``recal``), of an EMA of the weights over the last two thirds of training
(decay 0.95 per step, recalibrated: ``ema_recal``), the held-out accuracy on the first 500
held-out crops after each epoch (``curve``) and the CPU-seconds. ``--optimizer adam``: Adam at
lr 3e-3 with the same cosine, no weight decay.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, nargs="+", required=True, help="indices in table order")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    a = p.parse_args(argv)
    if min(a.cells) < 0:
        print(f"--cells: indices must be >= 0, got {a.cells}", file=sys.stderr)
        return 2

    import torch
    from nasnet_det.search.data import cached_dataset
    from nasnet_det.search.demo import DEMO_CONFIG
    from nasnet_det.search.space import SearchSpace
    from nasnet_det.search.tabular import Proxy, build_child, sample_cells

    from nasnet_det.engine import cosine, top1_accuracy

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    space = SearchSpace.from_config(DEMO_CONFIG["space"])
    proxy = Proxy()
    (xt, yt), (xv, yv) = cached_dataset(proxy.data_cfg())
    cells = sample_cells(space, max(a.cells) + 1, 0)

    def recalibrated(model: torch.nn.Module) -> torch.nn.Module:
        model = copy.deepcopy(model)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None  # a cumulative average over all batches below
        model.train()
        with torch.no_grad():
            for i in range(0, len(xt), 200):
                model(xt[i : i + 200])
        return model.eval()

    def acc(model: torch.nn.Module, n: int | None = None) -> float:
        return round(100 * top1_accuracy(model, xv[:n], yv[:n], 500), 2)

    for ci in a.cells:
        for seed in a.seeds:
            start = time.process_time()
            torch.manual_seed(seed)
            model = build_child(space.decode(cells[ci]), proxy)
            if a.optimizer == "sgd":
                opt = torch.optim.SGD(model.parameters(), lr=proxy.lr, momentum=0.9,
                                      weight_decay=5e-4, nesterov=True)  # fmt: skip
                lr = cosine(proxy.lr)
            else:
                opt = torch.optim.Adam(model.parameters(), lr=3e-3)
                lr = cosine(3e-3)
            bs = proxy.batch_size
            per_epoch = math.ceil(len(xt) / bs)
            total = proxy.epochs * per_epoch
            gen = torch.Generator().manual_seed(seed)
            ema, curve = None, []
            model.train()
            for step in range(total):
                if step % per_epoch == 0:
                    perm = torch.randperm(len(xt), generator=gen)
                idx = perm[(step % per_epoch) * bs : (step % per_epoch + 1) * bs]
                for g in opt.param_groups:
                    g["lr"] = lr(step / total)
                loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                opt.step()
                if step >= total // 3:
                    if ema is None:
                        ema = copy.deepcopy(model)
                    else:
                        with torch.no_grad():
                            for pe, pm in zip(ema.parameters(), model.parameters()):
                                pe.mul_(0.95).add_(pm, alpha=0.05)
                if (step + 1) % per_epoch == 0:
                    model.eval()
                    curve.append(round(acc(model, 500), 1))
                    model.train()
            model.eval()
            out = {"cell": ci, "seed": seed, "optimizer": a.optimizer, "asis": acc(model),
                   "recal": acc(recalibrated(model)), "ema_recal": acc(recalibrated(ema)),
                   "curve": curve, "cpu": round(time.process_time() - start, 1)}  # fmt: skip
            print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    from nasnet_det.cli import quiet_warnings

    quiet_warnings()
    sys.exit(main())
