import math

import numpy as np
import pytest
import torch
from nasnet_det.search.space import SearchSpace
from nasnet_det.search.strategies import STRATEGIES, build_strategy
from nasnet_det.search.strategies.controller import Controller
from nasnet_det.search.strategies.ppo import PPO, ppo_clipped_loss


def test_ppo_clipped_loss_hand_computed():
    # ratios 1.5, 0.5, 1.1, 0.7; advantages 1, 1, -2, -1; clip 0.2:
    #   min(1.5*1, 1.2*1) = 1.2      (clipped: no gradient)
    #   min(0.5*1, 0.8*1) = 0.5      (unclipped, d/dlogp = 0.5)
    #   min(1.1*-2, 1.1*-2) = -2.2   (inside the range, d/dlogp = -2.2)
    #   min(0.7*-1, 0.8*-1) = -0.8   (clipped: no gradient)
    # loss = -(1.2 + 0.5 - 2.2 - 0.8) / 4 - 1e-5 * mean(2, 4, 6, 8) = 0.325 - 5e-5
    ratio = torch.tensor([1.5, 0.5, 1.1, 0.7], dtype=torch.float64)
    logp_new = ratio.log().requires_grad_()
    logp_old = torch.zeros(4, dtype=torch.float64)
    adv = torch.tensor([1.0, 1.0, -2.0, -1.0], dtype=torch.float64)
    ent = torch.tensor([2.0, 4.0, 6.0, 8.0], dtype=torch.float64)
    loss = ppo_clipped_loss(logp_new, logp_old, adv, ent, clip_eps=0.2, entropy_weight=1e-5)
    assert loss.item() == pytest.approx(0.32495, abs=1e-12)
    loss.backward()
    expected = torch.tensor([0.0, -0.5 / 4, 2.2 / 4, 0.0], dtype=torch.float64)
    torch.testing.assert_close(logp_new.grad, expected)


def test_paper_defaults():
    p = PPO(SearchSpace(), seed=0)
    c = p.controller
    assert c.hidden == 100 and isinstance(c.lstm, torch.nn.LSTMCell)
    assert p.optimizer.param_groups[0]["lr"] == 0.00035
    assert p.entropy_weight == 1e-5 and p.baseline_decay == 0.95 and p.batch_size == 20
    assert all(p.data.abs().max() <= 0.1 for p in c.parameters())
    assert len(c.heads) == 50


def test_controller_log_prob_matches_step_by_step():
    torch.manual_seed(0)
    c = Controller([2, 3, 4])
    a = torch.tensor([[1, 2, 3], [0, 0, 1]])
    logp, ent = c.log_prob_entropy(a)
    # Recompute by hand with the LSTM cell, one step at a time.
    for n in range(2):
        x, h = c.start, (torch.zeros(1, 100), torch.zeros(1, 100))
        total = 0.0
        for t in range(3):
            h = c.lstm(x, h)
            p = torch.softmax(c.heads[t](h[0]), -1)[0]
            total += math.log(p[a[n, t]].item())
            if t < 2:
                x = c.embed[t](a[n, t : t + 1])
        assert logp[n].item() == pytest.approx(total, rel=1e-5)
    assert (ent > 0).all()


def test_baseline_is_ema():
    p = PPO(SearchSpace(num_blocks=1), seed=0)
    adv = p.advantages([1.0, 0.0])
    assert p.baseline == pytest.approx(0.95 * (0.95 * 0.5 + 0.05 * 1.0) + 0.05 * 0.0)
    torch.testing.assert_close(adv, torch.tensor([0.5, -0.5]))


@pytest.mark.parametrize("name", ["ppo", "reinforce"])
def test_policy_gradient_moves_toward_reward(name):
    # Reward 1 for children whose first decision is 1, else 0: p(first = 1) must rise.
    space = SearchSpace(num_blocks=1, ops=("identity", "avg_pool_3x3"))
    s = build_strategy(name, space, seed=0, batch_size=20, lr=0.01)

    def p_first():
        c = s.controller
        with torch.no_grad():
            h = c.lstm(c.start, (torch.zeros(1, 100), torch.zeros(1, 100)))[0]
            return torch.softmax(c.heads[0](h), -1)[0, 1].item()

    before = p_first()
    for _ in range(10):
        kids = s.propose(20)
        s.observe(kids, [float(k[0] == 1) for k in kids])
    assert p_first() > before + 0.1


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_state_dict_resumes_identically(name):
    space = SearchSpace(num_blocks=2)
    extra = {"population_size": 4, "sample_size": 2} if name == "evolution" else {}
    a = build_strategy(name, space, seed=3, batch_size=4, **extra)
    rng = np.random.default_rng(0)
    for _ in range(2):
        kids = a.propose(4)
        a.observe(kids, [float(rng.random()) for _ in kids])
    import io

    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    b = build_strategy(name, space, seed=99, batch_size=4, **extra)
    b.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    for _ in range(2):
        ka, kb = a.propose(4), b.propose(4)
        assert ka == kb
        r = [float(rng.random()) for _ in ka]
        a.observe(ka, r)
        b.observe(kb, r)


def test_evolution_is_aging():
    space = SearchSpace(num_blocks=1)
    e = build_strategy("evolution", space, seed=0, population_size=3, sample_size=2)
    kids = e.propose(3)
    e.observe(kids, [0.9, 0.1, 0.2])
    more = e.propose(2)
    # Every new child is one mutation away from a member of the population.
    for m in more:
        assert min(sum(x != y for x, y in zip(m, k)) for k in kids) == 1
    e.observe(more, [0.0, None])
    # The oldest (the best, 0.9) died; a failed child entered with reward 0.
    assert [r for _, r in e.population] == [0.2, 0.0, 0.0]


def test_synthetic_objective_golden_values(bench_script):
    bench = bench_script("search_efficiency")
    children_to_target, nasnet_a_match = bench.children_to_target, bench.nasnet_a_match

    from nasnet_det import NASNET_A

    space = SearchSpace()
    d = space.encode(NASNET_A, strict=False)
    assert nasnet_a_match(space, d) == 1.0
    wrong = list(d)
    wrong[2] = (wrong[2] + 1) % 13  # one op of 50 decisions
    assert nasnet_a_match(space, wrong) == pytest.approx(49 / 50)
    # A target every child meets is met by the first child.
    assert children_to_target("random", seed=0, target=0.0, budget=5) == 1


def test_ppo_updates_once_per_minibatch_of_a_round():
    p = PPO(SearchSpace(num_blocks=1), seed=0, batch_size=20, ppo_epochs=4)
    kids = p.propose(40)  # a round of two minibatches
    p.observe(kids, [0.5] * 40)
    steps = {int(s["step"]) for s in p.optimizer.state.values()}
    assert steps == {8}  # 2 minibatches x 4 PPO epochs


def test_a_new_strategy_is_one_class_with_its_params_dataclass():
    """The config reads a strategy's parameters from its Params dataclass (no constructor
    signature), types and checks them there; a new strategy needs no other edit."""
    from dataclasses import dataclass, fields

    from nasnet_det.search.config import apply_overrides, get_search_defaults
    from nasnet_det.search.strategies import Strategy, StrategyParams, register_strategy
    from nasnet_det.search.strategies.controller import ControllerParams
    from nasnet_det.search.strategies.ppo import PPOParams

    # PPO declares only what it adds to the controller's parameters.
    own = [
        f.name
        for f in fields(PPOParams)
        if f.name not in {g.name for g in fields(ControllerParams)}
    ]
    assert own == ["clip_eps", "ppo_epochs"]
    saved = dict(STRATEGIES)

    @dataclass(frozen=True)
    class GreedyParams(StrategyParams):
        temperature: float = 1.0

        def __post_init__(self):
            super().__post_init__()
            if self.temperature <= 0:
                raise ValueError(f"need temperature > 0, got {self.temperature}")

    try:

        @register_strategy
        class Greedy(Strategy):
            name = "greedy_test"
            Params = GreedyParams

            def propose(self, n):
                return [self.space.sample(self.rng) for _ in range(n)]

        base = get_search_defaults()
        cfg = apply_overrides(base, ["strategy.name", "greedy_test", "strategy.temperature", "2"])
        assert cfg.strategy.temperature == 2.0  # an int for a float field: a float
        with pytest.raises(ValueError, match="need temperature > 0"):
            apply_overrides(base, ["strategy.name", "greedy_test", "strategy.temperature", "0"])
        with pytest.raises(ValueError, match="its parameters are batch_size, failed_reward, temp"):
            apply_overrides(base, ["strategy.name", "greedy_test", "strategy.lr", "0.1"])
        s = build_strategy("greedy_test", SearchSpace(), seed=0, temperature=3.0)
        assert s.temperature == 3.0 and s.params == GreedyParams(temperature=3.0)
    finally:
        STRATEGIES.clear()
        STRATEGIES.update(saved)


def test_params_object_and_keywords_build_the_same_strategy():
    from nasnet_det.search.strategies.ppo import PPOParams

    space = SearchSpace(num_blocks=2)
    a = PPO(space, seed=5, params=PPOParams(batch_size=4, lr=0.01, ppo_epochs=2))
    b = PPO(space, seed=5, batch_size=4, lr=0.01, ppo_epochs=2)
    assert a.params == b.params and a.propose(6) == b.propose(6)
    with pytest.raises(ValueError, match="need clip_eps > 0"):
        PPO(space, clip_eps=0.0)
