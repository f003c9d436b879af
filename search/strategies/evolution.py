"""Regularized (aging) evolution (Real et al., 2019), in synchronous rounds.

Until ``population_size`` children have been observed, proposals are random. Afterwards each
proposal picks ``sample_size`` members of the population at random, mutates the best of them in
one decision, and each observed child joins the population while the oldest member leaves.
Defaults P = 100, S = 25 (values Real et al. use); on the synthetic benchmark
(``bench/search_efficiency.py``) they beat P = 50, S = 10.

Restricted to a table (:meth:`~.base.Strategy.restrict`), the random phase draws table cells not
proposed yet, and a mutation is the table cell nearest the parent among those not proposed yet
(fewest decisions changed, ties at random, never the parent itself; once every cell was
proposed, among all): one-decision mutants are almost never in the table, and without the
"not proposed yet" a sparse table's nearest neighbours form cycles that evolution re-proposes
for ever (on 230 cells, every run stalled short of 46 distinct cells).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nasnet_det.search.space import Decisions, SearchSpace
from nasnet_det.search.strategies.base import Strategy, StrategyParams, register_strategy


@dataclass(frozen=True)
class EvolutionParams(StrategyParams):
    """Population size P and tournament size S."""

    population_size: int = 100
    sample_size: int = 25

    def __post_init__(self) -> None:
        super().__post_init__()
        p, s = self.population_size, self.sample_size
        if p < 2 or not 1 <= s <= p:
            raise ValueError(
                f"need population_size >= 2 and 1 <= sample_size <= population_size, got "
                f"population_size {p}, sample_size {s}"
            )


@register_strategy
class RegularizedEvolution(Strategy):
    name = "evolution"

    Params = EvolutionParams

    def __init__(self, space: SearchSpace, seed: int = 0, params=None, **kw: Any) -> None:
        super().__init__(space, seed, params, **kw)
        self.population: list[tuple[Decisions, float]] = []  # oldest first

    def propose(self, n: int) -> list[Decisions]:
        out = []
        for _ in range(n):
            table = self.support is not None
            if len(self.population) < self.population_size:
                out += self.draw_unqueried(1) if table else [self.space.sample(self.rng)]
                continue
            idx = self.rng.choice(len(self.population), self.sample_size, replace=False)
            parent = max((self.population[int(i)] for i in idx), key=lambda m: m[1])[0]
            if table:
                child = self.support.nearest(parent, self.rng, self.queried)
                self.queried.add(self.space.key(child))
            else:
                child = self.space.mutate(parent, self.rng)
            out.append(child)
        return out

    def observe(self, children: Sequence[Decisions], rewards: Sequence[float | None]) -> None:
        for child, r in zip(children, self.reward_or_default(rewards)):
            if self.support is not None:
                self.queried.add(self.space.key(child))
            self.population.append((tuple(child), r))
            if len(self.population) > self.population_size:
                self.population.pop(0)  # aging: the oldest dies, not the worst

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["population"] = [[list(c), r] for c, r in self.population]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.population = [(tuple(int(x) for x in c), float(r)) for c, r in state["population"]]
