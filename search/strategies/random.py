"""Random search: every child drawn uniformly from the space (the paper's baseline); restricted
to a table, uniformly among the table's cells not proposed yet."""

from __future__ import annotations

from nasnet_det.search.space import Decisions
from nasnet_det.search.strategies.base import Strategy, register_strategy


@register_strategy
class RandomSearch(Strategy):
    name = "random"

    def propose(self, n: int) -> list[Decisions]:
        if self.support is not None:
            return self.draw_unqueried(n)
        return [self.space.sample(self.rng) for _ in range(n)]
