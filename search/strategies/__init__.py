"""Search strategies behind one interface (:class:`~.base.Strategy`); one file each.

Adding a strategy is one new file that defines a subclass, its parameters as a
:class:`~.base.StrategyParams` dataclass (``Params``), and registers it with
:func:`register_strategy`; :func:`build_strategy` looks strategies up by name and the search
config reads the parameters from that dataclass.
"""

# Importing the modules registers their strategies.
from nasnet_det.search.strategies import evolution, ppo, random, reinforce  # noqa: E402, F401, I001
from nasnet_det.search.strategies.base import (
    STRATEGIES,
    Strategy,
    StrategyParams,
    build_strategy,
    register_strategy,
)

__all__ = ["STRATEGIES", "Strategy", "StrategyParams", "build_strategy", "register_strategy"]
