"""Cell search (paper section 3): the search space, strategies behind one interface, child
training, a kill-proof history, local or Ray execution, and the outputs people look at.

``run_search(config, output_dir)`` is the entry point (``SearchRunner`` for one round per
``step()``); ``tools/search_cells.py`` wraps it. Configs are fvcore ``CfgNode`` s
(:func:`load_config`); strategies and child-training functions are registries extended in
Python (:func:`register_strategy`, :func:`register_train_fn`).
"""

from nasnet_det.search.child import TRAIN_FNS, register_train_fn
from nasnet_det.search.config import (
    apply_overrides,
    get_search_defaults,
    load_config,
    resolve_config,
)
from nasnet_det.search.history import History, HistoryError
from nasnet_det.search.runner import SearchResult, SearchRunner, run_search
from nasnet_det.search.space import SearchSpace
from nasnet_det.search.strategies import STRATEGIES, Strategy, build_strategy, register_strategy

__all__ = [
    "STRATEGIES",
    "TRAIN_FNS",
    "History",
    "HistoryError",
    "SearchResult",
    "SearchRunner",
    "SearchSpace",
    "Strategy",
    "apply_overrides",
    "build_strategy",
    "get_search_defaults",
    "load_config",
    "register_strategy",
    "register_train_fn",
    "resolve_config",
    "run_search",
]
