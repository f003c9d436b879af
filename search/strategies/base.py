"""The strategy interface: propose children, observe their rewards, checkpoint the state.

The runner works in rounds: ``propose(n)`` returns ``n`` decision sequences, every child of the
round is trained (in parallel), then ``observe`` receives all rewards in proposal order. A
strategy is therefore synchronous, which makes a search reproducible for a fixed seed whatever
order the workers finish in. ``state_dict`` must capture everything ``propose`` depends on,
random generators included, so a resumed search proposes what the uninterrupted one would have.

A strategy restricted to a table's cells (:meth:`Strategy.restrict`, what the runner does for
``execution.backend: tabular``) proposes only cells of ``self.support``
(:class:`~nasnet_det.search.tabular.TableSupport`): the tabular benchmark holds a tiny fraction
of the space, so each strategy's own proposal rule is restricted to it (random: unqueried table
cells; the controller: its policy renormalised over the table; evolution: the nearest table cell
not proposed yet).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

import numpy as np
from nasnet_det.search.space import Decisions, SearchSpace

__all__ = ["Strategy", "StrategyParams", "STRATEGIES", "register_strategy", "build_strategy"]


@dataclass(frozen=True)
class StrategyParams:
    """What every strategy takes; a strategy's own parameters extend this dataclass, and the
    search config's ``strategy.<key>`` values are these fields, typed by their defaults.

    ``batch_size`` is the update minibatch (PPO: the paper's 20 architectures) and, unless the
    config's ``round_size`` says otherwise, the number of children per round.
    ``failed_reward`` is what a failed child (exception, NaN, out of memory) counts as.
    """

    batch_size: int = 20
    failed_reward: float = 0.0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


class Strategy:
    """Base class. Subclasses set ``name`` and ``Params`` (a :class:`StrategyParams`
    subclass) and implement :meth:`propose` (and usually :meth:`observe`, :meth:`state_dict`,
    :meth:`load_state_dict`). Each parameter is also an attribute (``self.batch_size``)."""

    name = "base"
    Params: ClassVar[type[StrategyParams]] = StrategyParams

    def __init__(
        self, space: SearchSpace, seed: int = 0, params: StrategyParams | None = None, **kw: Any
    ) -> None:
        params = self.Params(**kw) if params is None else replace(params, **kw)
        if not isinstance(params, self.Params):
            raise TypeError(
                f"{self.name} takes {self.Params.__name__}, got {type(params).__name__}"
            )
        self.params = params
        for f in fields(params):
            setattr(self, f.name, getattr(params, f.name))
        self.space = space
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.support = None
        self.queried: set[str] = set()  # keys proposed so far (kept only when restricted)

    def restrict(self, support: Any) -> Strategy:
        """Propose only cells of ``support`` (a :class:`~nasnet_det.search.tabular.TableSupport`
        of the strategy's space) from now on; returns ``self``."""
        if support.space != self.space:
            raise ValueError("the table's space is not the strategy's; search the table's space")
        self.support = support
        return self

    def draw_unqueried(self, n: int) -> list[Decisions]:
        """``n`` table cells drawn uniformly among those not proposed yet (random search on a
        table; once every cell was proposed, among all)."""
        out = self.support.draw(self.rng, n, self.queried)
        self.queried.update(self.space.key(d) for d in out)
        return out

    def propose(self, n: int) -> list[Decisions]:
        raise NotImplementedError

    def observe(self, children: Sequence[Decisions], rewards: Sequence[float | None]) -> None:
        """Rewards of the children of the last ``propose`` (``None`` for a failed child)."""

    def reward_or_default(self, rewards: Sequence[float | None]) -> list[float]:
        return [self.failed_reward if r is None else float(r) for r in rewards]

    # State: a dict of Python scalars, lists, strings and tensors (saved with torch.save, loaded
    # with weights_only=True). Subclasses extend both methods.
    def state_dict(self) -> dict[str, Any]:
        return {"rng": _rng_state(self.rng), "queried": sorted(self.queried)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = _rng_from_state(state["rng"])
        self.queried = set(state.get("queried", ()))


def _rng_state(rng: np.random.Generator) -> dict[str, Any]:
    # PCG64's 128-bit integers are stored as strings: checkpoints hold only plain types.
    st = rng.bit_generator.state
    return {
        "bit_generator": st["bit_generator"],
        "state": str(st["state"]["state"]),
        "inc": str(st["state"]["inc"]),
        "has_uint32": int(st["has_uint32"]),
        "uinteger": int(st["uinteger"]),
    }


def _rng_from_state(s: dict[str, Any]) -> dict[str, Any]:
    return {
        "bit_generator": s["bit_generator"],
        "state": {"state": int(s["state"]), "inc": int(s["inc"])},
        "has_uint32": s["has_uint32"],
        "uinteger": s["uinteger"],
    }


STRATEGIES: dict[str, type[Strategy]] = {}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make ``cls`` available to configs as ``strategy.name: <cls.name>``."""
    STRATEGIES[cls.name] = cls
    return cls


def build_strategy(name: str, space: SearchSpace, seed: int, **params: Any) -> Strategy:
    """Instantiate a registered strategy; unknown names or parameters raise ``ValueError``."""
    if name not in STRATEGIES:
        raise ValueError(
            f"unknown strategy {name!r}; expected one of {', '.join(sorted(STRATEGIES))}"
        )
    try:
        return STRATEGIES[name](space, seed=seed, **params)
    except TypeError as e:
        raise ValueError(f"strategy {name!r}: bad parameters {sorted(params)}: {e}") from None
