"""Cell search (paper section 3): the search space, strategies behind one interface, child
training, a kill-proof history, local or Ray execution, and the outputs people look at.

``run_search(config, output_dir)`` is the entry point; ``tools/search_cells.py`` wraps it.
"""

from nasnet_det.search.config import apply_overrides, load_config, resolve_config
from nasnet_det.search.history import History, HistoryError
from nasnet_det.search.runner import SearchResult, run_search
from nasnet_det.search.space import SearchSpace
from nasnet_det.search.strategies import STRATEGIES, Strategy, build_strategy, register_strategy

__all__ = [
    "STRATEGIES",
    "History",
    "HistoryError",
    "SearchResult",
    "SearchSpace",
    "Strategy",
    "apply_overrides",
    "build_strategy",
    "load_config",
    "register_strategy",
    "resolve_config",
    "run_search",
]
