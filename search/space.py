"""The paper's cell search space and the one place decisions map to genotypes and back.

A child is a flat sequence of ``2 x 5B`` integer decisions, the controller's softmax choices in
the paper's order: for the normal cell, then the reduction cell, and for each of its ``B`` blocks
``input_a, input_b, op_a, op_b, combine``. Inputs of block ``k`` index hidden states
``0 .. k + 1`` (0: previous cell, 1: the one before, ``2 + j``: block ``j``). The concatenated
output is every block output no block reads (the paper's "unused hidden states"), so it is
derived, not decided; :func:`SearchSpace.decode` and :func:`SearchSpace.encode` are inverse
bijections between decision sequences and the genotypes they describe.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from nasnet_det.genotypes import COMBINERS, Block, Branch, Genotype
from nasnet_det.ops import OP_NAMES

__all__ = ["SearchSpace", "Decisions"]

Decisions = tuple[int, ...]


@dataclass(frozen=True)
class SearchSpace:
    """``num_blocks`` blocks per cell over ``ops`` (default: the 13 ops of the op registry).

    ``combiners`` defaults to the paper's two (``add``, ``concat``); a one-element tuple fixes the
    combiner (the decision then has a single choice and still occupies its slot).
    """

    num_blocks: int = 5
    ops: tuple[str, ...] = OP_NAMES
    combiners: tuple[str, ...] = COMBINERS
    _op_index: dict[str, int] = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.num_blocks, bool) or not isinstance(self.num_blocks, int):
            raise ValueError(f"num_blocks must be a positive integer, got {self.num_blocks!r}")
        if self.num_blocks < 1:
            raise ValueError(f"num_blocks must be a positive integer, got {self.num_blocks}")
        object.__setattr__(self, "ops", tuple(self.ops))
        object.__setattr__(self, "combiners", tuple(self.combiners))
        if not self.ops:
            raise ValueError("ops: expected at least one op name")
        for op in self.ops:
            if op not in OP_NAMES:
                raise ValueError(
                    f"unknown op {op!r} in search space; expected one of {', '.join(OP_NAMES)}"
                )
        if len(set(self.ops)) != len(self.ops):
            raise ValueError(f"ops: an op is listed twice in {list(self.ops)}")
        if not self.combiners or any(c not in COMBINERS for c in self.combiners):
            raise ValueError(
                f"combiners must be a non-empty subset of {COMBINERS}, got {list(self.combiners)}"
            )
        object.__setattr__(self, "_op_index", {op: i for i, op in enumerate(self.ops)})

    @classmethod
    def from_config(cls, cfg: dict | None) -> SearchSpace:
        """From the ``space`` node of a search config (``num_blocks``, ``ops``, ``combiners``;
        ``ops`` None or ``"all"``: every op of the registry)."""
        cfg = dict(cfg or {})
        unknown = set(cfg) - {"num_blocks", "ops", "combiners"}
        if unknown:
            raise ValueError(
                f"space: unknown key(s) {sorted(unknown)}; expected num_blocks, ops, combiners"
            )
        kwargs = {}
        if "num_blocks" in cfg:
            kwargs["num_blocks"] = cfg["num_blocks"]
        if cfg.get("ops") not in (None, "all"):
            kwargs["ops"] = tuple(cfg["ops"])
        if cfg.get("combiners") is not None:
            kwargs["combiners"] = tuple(cfg["combiners"])
        return cls(**kwargs)

    # ------------------------------------------------------------------ shape of the sequence
    @property
    def num_decisions(self) -> int:
        return 2 * 5 * self.num_blocks

    def num_choices(self) -> list[int]:
        """Number of options of each decision, in sequence order."""
        per_cell = []
        for k in range(self.num_blocks):
            per_cell += [k + 2, k + 2, len(self.ops), len(self.ops), len(self.combiners)]
        return per_cell * 2

    def size(self) -> float:
        """Number of distinct children (as a float: it overflows quickly)."""
        return float(np.prod(np.array(self.num_choices(), dtype=np.float64)))

    def validate(self, decisions: Sequence[int]) -> Decisions:
        choices = self.num_choices()
        if len(decisions) != len(choices):
            raise ValueError(
                f"expected {len(choices)} decisions for a {self.num_blocks}-block "
                f"space, got {len(decisions)}"
            )
        out = []
        for i, (d, n) in enumerate(zip(decisions, choices)):
            d = int(d)
            if not 0 <= d < n:
                raise ValueError(f"decision {i} is {d}; expected 0..{n - 1}")
            out.append(d)
        return tuple(out)

    # ------------------------------------------------------------------ the bijection
    def decode(self, decisions: Sequence[int], name: str = "") -> Genotype:
        """The genotype a decision sequence describes (concat = unused block outputs)."""
        d = self.validate(decisions)
        half = 5 * self.num_blocks
        cells = []
        for c in range(2):
            blocks = []
            for k in range(self.num_blocks):
                ia, ib, oa, ob, cb = d[c * half + 5 * k : c * half + 5 * k + 5]
                blocks.append(
                    Block(Branch(self.ops[oa], ia), Branch(self.ops[ob], ib), self.combiners[cb])
                )
            cells.append(tuple(blocks))
        return Genotype(
            normal=cells[0],
            normal_concat=loose_ends(cells[0]),
            reduce=cells[1],
            reduce_concat=loose_ends(cells[1]),
            name=name,
        )

    def encode(self, genotype: Genotype, strict: bool = True) -> Decisions:
        """The decision sequence of ``genotype``.

        With ``strict`` the genotype must lie in this space, its concat lists included (they
        must be the unused block outputs); ``strict=False`` ignores the concat lists, so that
        hand-designed cells such as NASNet-A (which also concatenate a cell input) can be
        compared with the space's members.
        """
        if genotype.num_blocks != self.num_blocks:
            raise ValueError(
                f"genotype has {genotype.num_blocks} blocks per cell; this space "
                f"has {self.num_blocks}"
            )
        out: list[int] = []
        for field_name in ("normal", "reduce"):
            blocks = getattr(genotype, field_name)
            for k, b in enumerate(blocks):
                for br in (b.left, b.right):
                    if br.op not in self._op_index:
                        raise ValueError(
                            f"genotype field {field_name!r}, block {k}: op "
                            f"{br.op!r} is not in this search space's ops "
                            f"{list(self.ops)}"
                        )
                if b.combine not in self.combiners:
                    raise ValueError(
                        f"genotype field {field_name!r}, block {k}: combiner "
                        f"{b.combine!r} is not in {list(self.combiners)}"
                    )
                out += [
                    b.left.input,
                    b.right.input,
                    self._op_index[b.left.op],
                    self._op_index[b.right.op],
                    self.combiners.index(b.combine),
                ]
            concat = getattr(genotype, field_name + "_concat")
            if strict and tuple(concat) != loose_ends(blocks):
                raise ValueError(
                    f"genotype field {field_name + '_concat'!r} is {list(concat)}; "
                    f"this space concatenates the unused block outputs "
                    f"{list(loose_ends(blocks))}"
                )
        return self.validate(out)

    # ------------------------------------------------------------------ helpers for strategies
    def sample(self, rng: np.random.Generator) -> Decisions:
        """A uniformly random child."""
        return tuple(int(rng.integers(n)) for n in self.num_choices())

    def mutate(self, decisions: Sequence[int], rng: np.random.Generator) -> Decisions:
        """Change one decision to a different value (the decision is drawn among those with a
        choice; regularized evolution's hidden-state / op mutations are the special cases)."""
        d = list(self.validate(decisions))
        choices = self.num_choices()
        free = [i for i, n in enumerate(choices) if n > 1]
        i = free[int(rng.integers(len(free)))]
        new = int(rng.integers(choices[i] - 1))
        d[i] = new if new < d[i] else new + 1
        return tuple(d)

    def key(self, decisions: Sequence[int]) -> str:
        """A canonical string for deduplication and storage."""
        return ",".join(str(int(x)) for x in decisions)

    @staticmethod
    def parse_key(key: str) -> Decisions:
        return tuple(int(x) for x in key.split(",")) if key else ()

    def genotype_json(self, decisions: Sequence[int]) -> str:
        return json.dumps(self.decode(decisions).to_dict(), separators=(",", ":"))


def loose_ends(blocks: Sequence[Block]) -> tuple[int, ...]:
    """Block outputs (states ``2..B+1``) that no block of the cell reads, in order."""
    used = {s for b in blocks for s in (b.left.input, b.right.input)}
    return tuple(s for s in range(2, len(blocks) + 2) if s not in used)
