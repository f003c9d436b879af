"""The controller trained with REINFORCE (Williams, 1992), as in Zoph & Le (2017): one
gradient step per minibatch on ``-(reward - baseline) log p(child)``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from nasnet_det.search.space import Decisions
from nasnet_det.search.strategies.base import register_strategy
from nasnet_det.search.strategies.controller import ControllerStrategy


@register_strategy
class Reinforce(ControllerStrategy):
    name = "reinforce"

    def observe(self, children: Sequence[Decisions], rewards: Sequence[float | None]) -> None:
        """One gradient step per minibatch of ``batch_size`` children."""
        rewards = self.reward_or_default(rewards)
        for i in range(0, len(children), self.batch_size):
            actions = torch.tensor([list(c) for c in children[i : i + self.batch_size]])
            adv = self.advantages(rewards[i : i + self.batch_size])
            logp, ent = self.controller.log_prob_entropy(actions)
            loss = -(adv * logp).mean() - self.entropy_weight * ent.mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
