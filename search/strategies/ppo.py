"""The paper's controller trained with Proximal Policy Optimization (Schulman et al., 2017).

Defaults are the paper's: learning rate 0.00035, entropy weight 1e-5, EMA baseline decay 0.95,
weights in [-0.1, 0.1], one update per minibatch of 20 architectures. The number of PPO epochs
over a minibatch and the clip range are not given in the paper; 4 and 0.2 are the usual values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from nasnet_det.search.space import Decisions
from nasnet_det.search.strategies.base import register_strategy
from nasnet_det.search.strategies.controller import ControllerParams, ControllerStrategy

__all__ = ["PPO", "PPOParams", "ppo_clipped_loss"]


def ppo_clipped_loss(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    entropy: torch.Tensor,
    clip_eps: float = 0.2,
    entropy_weight: float = 1e-5,
) -> torch.Tensor:
    """``-mean(min(rho A, clip(rho, 1 - eps, 1 + eps) A)) - entropy_weight mean(H)`` with
    ``rho = exp(logp_new - logp_old)``; all inputs ``[n]``."""
    ratio = torch.exp(logp_new - logp_old)
    surrogate = torch.minimum(
        ratio * advantages, ratio.clamp(1 - clip_eps, 1 + clip_eps) * advantages
    )
    return -surrogate.mean() - entropy_weight * entropy.mean()


@dataclass(frozen=True)
class PPOParams(ControllerParams):
    """The controller's parameters plus PPO's clip range and epochs per minibatch."""

    clip_eps: float = 0.2
    ppo_epochs: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.clip_eps > 0 or self.ppo_epochs < 1:
            raise ValueError(
                f"need clip_eps > 0 and ppo_epochs >= 1, got {self.clip_eps} and {self.ppo_epochs}"
            )


@register_strategy
class PPO(ControllerStrategy):
    name = "ppo"
    Params = PPOParams

    def observe(self, children: Sequence[Decisions], rewards: Sequence[float | None]) -> None:
        """One PPO update (``ppo_epochs`` steps) per minibatch of ``batch_size`` children, all
        against the policy that sampled them (a round may hold several minibatches)."""
        actions = torch.tensor([list(c) for c in children], dtype=torch.long)
        rewards = self.reward_or_default(rewards)
        with torch.no_grad():
            logp_old_all, _ = self.controller.log_prob_entropy(actions)
        for i in range(0, len(children), self.batch_size):
            a = actions[i : i + self.batch_size]
            adv = self.advantages(rewards[i : i + self.batch_size])
            logp_old = logp_old_all[i : i + self.batch_size]
            for _ in range(self.ppo_epochs):
                logp, ent = self.controller.log_prob_entropy(a)
                loss = ppo_clipped_loss(
                    logp, logp_old, adv, ent, self.clip_eps, self.entropy_weight
                )
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
