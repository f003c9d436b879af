"""Architectures as data: the genotype of a NASNet cell pair and its JSON form.

A genotype names, for the normal and the reduction cell, ``B`` blocks. Each block applies an op
to each of two hidden states and combines the two results (``add`` or ``concat``). Hidden states
0 and 1 are the cell's inputs (0: the previous cell's output, 1: the cell before it, following
TF-slim's ``nasnet_utils``); state ``2 + k`` is the output of block ``k``. The listed concat
states are joined along channels to form the cell's output.

Genotypes are saved as JSON with named keys and validated on load; every entry point of the
project (builder, search, Detectron2 config, tools) resolves them through :func:`get_genotype`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Branch",
    "Block",
    "Genotype",
    "COMBINERS",
    "GENOTYPES",
    "NASNET_A",
    "get_genotype",
    "register_genotype",
]

COMBINERS = ("add", "concat")


def _op_names() -> tuple[str, ...]:
    # Imported lazily: the op registry pulls in torch, genotype validation should not need to.
    from nasnet_det.ops import OP_NAMES

    return OP_NAMES


@dataclass(frozen=True)
class Branch:
    """One half of a block: ``op`` applied to hidden state ``input``."""

    op: str
    input: int


@dataclass(frozen=True)
class Block:
    """Two branches and how their outputs are combined (``add`` or ``concat``)."""

    left: Branch
    right: Branch
    combine: str = "add"


@dataclass(frozen=True)
class Genotype:
    """A normal and a reduction cell, each a tuple of blocks plus the states concatenated."""

    normal: tuple[Block, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Block, ...]
    reduce_concat: tuple[int, ...]
    name: str = ""

    def __post_init__(self) -> None:
        self.validate()

    @property
    def num_blocks(self) -> int:
        return len(self.normal)

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and position of the first problem."""
        if len(self.normal) == 0:
            raise ValueError("genotype field 'normal': expected at least one block, got 0")
        if len(self.reduce) != len(self.normal):
            raise ValueError(
                f"genotype field 'reduce': expected {len(self.normal)} blocks (as many as "
                f"'normal'), got {len(self.reduce)}"
            )
        ops = _op_names()
        for field in ("normal", "reduce"):
            blocks = getattr(self, field)
            for k, block in enumerate(blocks):
                where = f"genotype field '{field}', block {k}"
                if not isinstance(block, Block):
                    raise ValueError(f"{where}: expected a Block, got {type(block).__name__}")
                if block.combine not in COMBINERS:
                    raise ValueError(
                        f"{where}: unknown combiner {block.combine!r}; expected one of {COMBINERS}"
                    )
                for side in ("left", "right"):
                    br = getattr(block, side)
                    w = f"{where}, {side} branch"
                    if br.op not in ops:
                        raise ValueError(
                            f"{w}: unknown op {br.op!r}; expected one of {', '.join(ops)}"
                        )
                    if isinstance(br.input, bool) or not isinstance(br.input, int):
                        raise ValueError(f"{w}: input must be an integer, got {br.input!r}")
                    if br.input < 0:
                        raise ValueError(f"{w}: input {br.input} is out of range (must be >= 0)")
                    if br.input == k + 2:
                        raise ValueError(
                            f"{w}: input {br.input} refers to the block itself; block {k} may "
                            f"read states 0..{k + 1}"
                        )
                    if br.input > k + 2:
                        raise ValueError(
                            f"{w}: input {br.input} refers to a later block; block {k} may read "
                            f"states 0..{k + 1}"
                        )
            concat = getattr(self, field + "_concat")
            cfield = f"genotype field '{field}_concat'"
            if len(concat) == 0:
                raise ValueError(f"{cfield}: expected at least one state, got an empty list")
            n_states = len(blocks) + 2
            seen: set[int] = set()
            for i, s in enumerate(concat):
                if isinstance(s, bool) or not isinstance(s, int):
                    raise ValueError(f"{cfield}, position {i}: expected an integer, got {s!r}")
                if not 0 <= s < n_states:
                    raise ValueError(
                        f"{cfield}, position {i}: state {s} is out of range 0..{n_states - 1}"
                    )
                if s in seen:
                    raise ValueError(f"{cfield}, position {i}: state {s} is listed twice")
                seen.add(s)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        def cell(blocks: Iterable[Block]) -> list[dict[str, Any]]:
            return [
                {
                    "left": [b.left.op, b.left.input],
                    "right": [b.right.op, b.right.input],
                    "combine": b.combine,
                }
                for b in blocks
            ]

        return {
            "name": self.name,
            "normal": cell(self.normal),
            "normal_concat": list(self.normal_concat),
            "reduce": cell(self.reduce),
            "reduce_concat": list(self.reduce_concat),
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "genotype") -> Genotype:
        """Build from the JSON layout of :meth:`to_dict`; errors name the field and position."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(data).__name__}")
        for key in ("normal", "normal_concat", "reduce", "reduce_concat"):
            if key not in data:
                raise ValueError(f"{source}: missing field {key!r}")
        unknown = set(data) - {"name", "normal", "normal_concat", "reduce", "reduce_concat"}
        if unknown:
            raise ValueError(f"{source}: unknown field(s) {sorted(unknown)}")

        def parse_branch(raw: Any, where: str) -> Branch:
            if isinstance(raw, dict):
                raw = [raw.get("op"), raw.get("input")]
            if not isinstance(raw, (list, tuple)) or len(raw) != 2 or not isinstance(raw[0], str):
                raise ValueError(f"{where}: expected [op_name, input_index], got {raw!r}")
            return Branch(raw[0], raw[1])

        def parse_cell(field: str) -> tuple[Block, ...]:
            raw = data[field]
            if not isinstance(raw, list):
                raise ValueError(f"{source}: field {field!r} must be a list of blocks")
            blocks = []
            for k, b in enumerate(raw):
                where = f"{source}: field {field!r}, block {k}"
                if not isinstance(b, dict) or "left" not in b or "right" not in b:
                    raise ValueError(f"{where}: expected an object with 'left' and 'right'")
                extra = set(b) - {"left", "right", "combine"}
                if extra:
                    raise ValueError(f"{where}: unknown key(s) {sorted(extra)}")
                blocks.append(
                    Block(
                        parse_branch(b["left"], where + ", left branch"),
                        parse_branch(b["right"], where + ", right branch"),
                        b.get("combine", "add"),
                    )
                )
            return tuple(blocks)

        def parse_concat(field: str) -> tuple[int, ...]:
            raw = data[field]
            if not isinstance(raw, list):
                raise ValueError(f"{source}: field {field!r} must be a list of state indices")
            return tuple(raw)

        name = data.get("name", "")
        if not isinstance(name, str):
            raise ValueError(f"{source}: field 'name' must be a string")
        try:
            return cls(
                normal=parse_cell("normal"),
                normal_concat=parse_concat("normal_concat"),
                reduce=parse_cell("reduce"),
                reduce_concat=parse_concat("reduce_concat"),
                name=name,
            )
        except ValueError as e:
            msg = str(e)
            raise ValueError(msg if msg.startswith(source) else f"{source}: {msg}") from None

    def to_json(self, path: str | os.PathLike | None = None, indent: int = 2) -> str:
        """Serialise; when ``path`` is given, write atomically (see :mod:`nasnet_det.io`)."""
        text = json.dumps(self.to_dict(), indent=indent) + "\n"
        if path is not None:
            from nasnet_det.io import atomic_write_text

            atomic_write_text(path, text, "genotype file")
        return text

    def inline(self) -> str:
        """``inline:`` and one line of JSON, which :func:`get_genotype` reads back: a config
        value that carries the cell itself, so a run reads its genotype file once. (The prefix
        keeps yacs from reading the JSON as a Python dict literal.)"""
        return INLINE + json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> Genotype:
        from nasnet_det.limits import read_input_bytes

        path = Path(path)
        where = f"genotype file {str(path)!r}"
        try:
            data = json.loads(read_input_bytes(path, "json", "genotype file").decode("utf-8"))
        except RecursionError:
            raise ValueError(f"{where} is nested too deeply to be a genotype") from None
        except UnicodeDecodeError as e:
            raise ValueError(f"{where} is not UTF-8 text (byte {e.start}); expected JSON") from None
        except json.JSONDecodeError as e:
            raise ValueError(
                f"{where} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}"
            ) from None
        try:
            return cls.from_dict(data, source=where)
        except RecursionError:
            raise ValueError(f"{where} is nested too deeply to be a genotype") from None


#: Prefix of a genotype written into a config value (:meth:`Genotype.inline`).
INLINE = "inline:"


def _cell(spec: list[tuple[str, int, str, int]]) -> tuple[Block, ...]:
    return tuple(Block(Branch(lo, li), Branch(ro, ri), "add") for lo, li, ro, ri in spec)


#: NASNet-A, the paper's best cell (Fig. 4; TF-slim ``NasNetANormalCell``/``NasNetAReductionCell``).
NASNET_A = Genotype(
    normal=_cell(
        [
            ("sep_conv_5x5", 0, "sep_conv_3x3", 1),
            ("sep_conv_5x5", 1, "sep_conv_3x3", 1),
            ("avg_pool_3x3", 0, "identity", 1),
            ("avg_pool_3x3", 1, "avg_pool_3x3", 1),
            ("sep_conv_3x3", 0, "identity", 0),
        ]
    ),
    normal_concat=(1, 2, 3, 4, 5, 6),
    reduce=_cell(
        [
            ("sep_conv_5x5", 0, "sep_conv_7x7", 1),
            ("max_pool_3x3", 0, "sep_conv_7x7", 1),
            ("avg_pool_3x3", 0, "sep_conv_5x5", 1),
            ("identity", 3, "avg_pool_3x3", 2),
            ("sep_conv_3x3", 2, "max_pool_3x3", 0),
        ]
    ),
    reduce_concat=(3, 4, 5, 6),
    name="nasnet_a",
)

GENOTYPES: dict[str, Genotype] = {"nasnet_a": NASNET_A}
_BUILT_IN = frozenset(GENOTYPES)


def register_genotype(name: str, genotype: Genotype) -> None:
    """Make ``genotype`` resolvable by ``name`` (e.g. in ``MODEL.NASNET.GENOTYPE``).

    ``name`` is a non-empty string that cannot be read as a path; a built-in name, or a name
    already registered to another genotype, is refused (one ``ValueError``)."""
    if not isinstance(name, str) or not name.strip() or os.sep in name or name.endswith(".json"):
        raise ValueError(f"genotype name must be a non-empty string, not a path; got {name!r}")
    if not isinstance(genotype, Genotype):
        raise ValueError(
            f"register_genotype({name!r}, ...) needs a Genotype (Genotype.from_dict or "
            f"from_json makes one), got {type(genotype).__name__}"
        )
    if name in _BUILT_IN or GENOTYPES.get(name, genotype) != genotype:
        raise ValueError(f"genotype name {name!r} is taken; register under another name")
    GENOTYPES[name] = genotype


def get_genotype(name_or_path: str | os.PathLike | Genotype | dict[str, Any]) -> Genotype:
    """Resolve a registered name, a ``.json`` path or a :meth:`Genotype.to_dict` dict (as
    checkpoints inline it), or pass a :class:`Genotype` through."""
    if isinstance(name_or_path, Genotype):
        return name_or_path
    if isinstance(name_or_path, dict):
        return Genotype.from_dict(name_or_path, "inline genotype")
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise ValueError(
            "genotype must be a registered name, a .json path, a dict or a Genotype, got "
            f"{type(name_or_path).__name__} {name_or_path!r}"
        )
    key = os.fspath(name_or_path)
    if key in GENOTYPES:
        return GENOTYPES[key]
    if key.startswith(INLINE):  # Genotype.inline(): a config value that carries its cell
        try:
            data = json.loads(key[len(INLINE) :])
        except (json.JSONDecodeError, RecursionError) as e:
            raise ValueError(f"inline genotype is not valid JSON ({type(e).__name__})") from None
        return Genotype.from_dict(data, "inline genotype")
    if key.endswith(".json") or os.sep in key or Path(key).exists():
        return Genotype.from_json(key)
    raise ValueError(
        f"unknown genotype {key!r}: expected a registered name ({', '.join(sorted(GENOTYPES))}) "
        f"or a path to a .json file"
    )
