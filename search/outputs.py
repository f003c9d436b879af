"""What a search leaves behind: leaderboard, best genotype, reward plot and cell diagrams.

Every file goes through :mod:`nasnet_det.io` (temporary file, fsync, rename), so a kill never
leaves half a file and a failed write (disk full, read-only folder) is one ``OutputError`` line
with no temporary file left behind.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

from nasnet_det.search.diagram import draw_genotype

from nasnet_det.genotypes import Genotype
from nasnet_det.io import atomic_write_bytes, atomic_write_json, atomic_write_text

__all__ = [
    "OUTPUT_FILES",
    "best_child",
    "draw_genotype",
    "plot_rewards",
    "write_leaderboard",
    "write_outputs",
]

#: The files :func:`write_outputs` may write into a search folder.
OUTPUT_FILES = (
    "leaderboard.csv",
    "best_genotype.json",
    "summary.json",
    "rewards.png",
    "cell_normal.png",
    "cell_normal.svg",
    "cell_reduction.png",
    "cell_reduction.svg",
)

LEADERBOARD_COLUMNS = (
    "rank",
    "child_id",
    "reward",
    "status",
    "phase",
    "round",
    "params",
    "seconds",
    "duplicate_of",
    "error",
    "genotype",
)


def best_child(children: Sequence[dict]) -> dict | None:
    """The best successful child; standalone-trained children outrank shared-weight scores."""
    ok = [c for c in children if c["status"] in ("ok", "duplicate") and c["reward"] is not None]
    standalone = [c for c in ok if c["phase"] == "standalone"]
    pool = standalone or ok
    if not pool:
        return None
    return min(pool, key=lambda c: (-c["reward"], c["child_id"]))


def write_leaderboard(path: Path, children: Sequence[dict]) -> None:
    """One row per finished child, best first (failed children last)."""
    rows = sorted(
        children, key=lambda c: (c["reward"] is None, -(c["reward"] or 0.0), c["child_id"])
    )
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(LEADERBOARD_COLUMNS)
    for rank, c in enumerate(rows, 1):
        w.writerow([rank] + ["" if c.get(k) is None else c.get(k) for k in LEADERBOARD_COLUMNS[1:]])
    atomic_write_text(path, buf.getvalue(), "leaderboard")


def write_outputs(out: Path, children: Sequence[dict], cfg: dict, final: bool) -> dict | None:
    """Leaderboard and best genotype after every round; plot and diagrams at the end."""
    write_leaderboard(out / "leaderboard.csv", children)
    best = best_child(children)
    if best is not None:
        g = Genotype.from_dict(json.loads(best["genotype"]))
        name = f"search_{cfg['strategy']['name']}_child{best['child_id']}"
        g = Genotype(g.normal, g.normal_concat, g.reduce, g.reduce_concat, name=name)
        atomic_write_text(out / "best_genotype.json", g.to_json(), "best genotype")
        summary = {
            "best_child_id": best["child_id"],
            "best_reward": best["reward"],
            "num_children": len(children),
            "strategy": cfg["strategy"]["name"],
            "mode": cfg["mode"],
            "failed": sum(c["status"] == "failed" for c in children),
        }
        atomic_write_json(out / "summary.json", summary, "search summary")
    if final and cfg["outputs"]["plot"]:
        plot_rewards([out], out / "rewards.png")
    if final and best is not None and cfg["outputs"]["diagrams"]:
        draw_genotype(g, out / "cell")
    return best


def _load_curve(run_dir: Path) -> tuple[str, list[int], list[float | None]]:
    """Label and per-child rewards of a finished search folder (from its leaderboard); in a
    weight-sharing search, the shared-weight scores (the standalone retraining comes after)."""
    path = run_dir / "leaderboard.csv"
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [
                (int(r["child_id"]), float(r["reward"]) if r["reward"] else None, r["phase"])
                for r in csv.DictReader(f)
            ]
    except (KeyError, ValueError, TypeError, UnicodeDecodeError, csv.Error) as e:
        raise ValueError(
            f"{str(path)!r} is not a search leaderboard (bad or missing column: {e})"
        ) from None
    if any(phase == "shared" for _, _, phase in rows):
        rows = [r for r in rows if r[2] == "shared"]
    rows.sort()
    label = run_dir.name
    try:
        s = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        label = f"{s['strategy']}{' (weight sharing)' if s['mode'] == 'weight_sharing' else ''}"
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no usable summary: the folder's name labels the curve
    return label, [r[0] for r in rows], [r[1] for r in rows]


def plot_rewards(run_dirs: Sequence[str | os.PathLike], path: str | os.PathLike) -> Path:
    """Reward of every child against its index, with each run's running best (the paper's
    RL-versus-random figure when several runs are given). Writes PNG (``path``) atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [_load_curve(Path(d)) for d in run_dirs]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, ids, rewards) in enumerate(curves):
        col = colors[i % len(colors)]
        xs = [x for x, r in zip(ids, rewards) if r is not None]
        ys = [r for r in rewards if r is not None]
        ax.scatter(xs, ys, s=8, alpha=0.35, color=col, linewidths=0)
        best, run = [], float("-inf")
        for r in rewards:
            run = max(run, r if r is not None else float("-inf"))
            best.append(run if run > float("-inf") else None)
        ax.step(ids, best, where="post", color=col, lw=2, label=f"{label}: running best")
    ax.set_xlabel("child (in proposal order)")
    ax.set_ylabel("reward (held-out accuracy)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue(), "reward plot")
    return path
