"""The paper's controller: a one-layer LSTM that emits a child's decisions one softmax at a time.

Step ``t`` feeds the embedding of decision ``t - 1`` (a learned start vector at ``t = 0``) to the
LSTM and reads decision ``t`` from its own linear head (the number of choices differs per step:
block ``k``'s inputs have ``k + 2``). All weights are initialised uniformly in [-0.1, 0.1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from nasnet_det.search.space import Decisions, SearchSpace
from nasnet_det.search.strategies.base import Strategy, StrategyParams
from torch import nn

__all__ = ["Controller", "ControllerParams", "ControllerStrategy"]


class Controller(nn.Module):
    def __init__(self, num_choices: Sequence[int], hidden: int = 100, init_range: float = 0.1):
        super().__init__()
        self.num_choices = list(num_choices)
        self.hidden = hidden
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.embed = nn.ModuleList(nn.Embedding(n, hidden) for n in self.num_choices[:-1])
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in self.num_choices)
        for p in self.parameters():
            nn.init.uniform_(p, -init_range, init_range)

    def _step_logits(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], t: int):
        h, c = self.lstm(x, state)
        return self.heads[t](h), (h, c)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``[n, T]`` int64 decisions drawn from the policy."""
        x = self.start.expand(n, -1)
        state = (x.new_zeros(n, self.hidden), x.new_zeros(n, self.hidden))
        out = []
        for t in range(len(self.num_choices)):
            logits, state = self._step_logits(x, state, t)
            a = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)[:, 0]
            out.append(a)
            if t + 1 < len(self.num_choices):
                x = self.embed[t](a)
        return torch.stack(out, 1)

    def log_prob_entropy(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-child log-probability of ``actions`` ``[n, T]`` and the policy's entropy (summed
        over the steps), both ``[n]``."""
        n = actions.shape[0]
        x = self.start.expand(n, -1)
        state = (x.new_zeros(n, self.hidden), x.new_zeros(n, self.hidden))
        logp = x.new_zeros(n)
        ent = x.new_zeros(n)
        for t in range(len(self.num_choices)):
            logits, state = self._step_logits(x, state, t)
            lsm = torch.log_softmax(logits, -1)
            logp = logp + lsm.gather(1, actions[:, t : t + 1])[:, 0]
            ent = ent - (lsm.exp() * lsm).sum(-1)
            if t + 1 < len(self.num_choices):
                x = self.embed[t](actions[:, t])
        return logp, ent


@dataclass(frozen=True)
class ControllerParams(StrategyParams):
    """The controller's parameters (the paper's defaults)."""

    lr: float = 0.00035
    entropy_weight: float = 1e-5
    baseline_decay: float = 0.95
    hidden: int = 100
    init_range: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        lr, hidden, decay, ent = self.lr, self.hidden, self.baseline_decay, self.entropy_weight
        if not lr > 0 or hidden < 1 or not 0 <= decay < 1 or ent < 0:
            raise ValueError(
                "need lr > 0, hidden >= 1, 0 <= baseline_decay < 1 and entropy_weight >= 0, got "
                f"{lr}, {hidden}, {decay} and {ent}"
            )


class ControllerStrategy(Strategy):
    """Shared plumbing of the policy-gradient strategies (``ppo``, ``reinforce``): the
    controller, its optimizer, its sampling generator and the EMA reward baseline."""

    Params = ControllerParams

    def __init__(self, space: SearchSpace, seed: int = 0, params=None, **kw: Any) -> None:
        super().__init__(space, seed, params, **kw)
        torch.manual_seed(seed)  # only the initial weights; sampling has its own generator
        self.controller = Controller(space.num_choices(), self.hidden, self.init_range)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=self.lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.baseline: float | None = None

    def propose(self, n: int) -> list[Decisions]:
        """``n`` children from the policy; restricted to a table, from the policy renormalised
        over the table's cells (each scored by its log-probability), with replacement."""
        if self.support is None:
            actions = self.controller.sample(n, self.generator)
        else:
            cells = torch.from_numpy(self.support.cells)
            with torch.no_grad():
                logp, _ = self.controller.log_prob_entropy(cells)
            idx = torch.multinomial(torch.softmax(logp, 0), n, True, generator=self.generator)
            actions = cells[idx]
        return [tuple(int(v) for v in row) for row in actions.tolist()]

    def advantages(self, rewards: Sequence[float]) -> torch.Tensor:
        """``reward - baseline`` with the baseline before this batch; then update the EMA."""
        if self.baseline is None:
            self.baseline = float(sum(rewards) / len(rewards))
        adv = torch.tensor([r - self.baseline for r in rewards], dtype=torch.float32)
        for r in rewards:
            self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * r
        return adv

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["controller"] = self.controller.state_dict()
        state["optimizer"] = self.optimizer.state_dict()
        state["generator"] = self.generator.get_state()
        state["baseline"] = self.baseline
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.baseline = state["baseline"]
