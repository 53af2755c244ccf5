"""The compile switch as the applications set it: XLSTMPPO, the LM trainer and the forecasting training loop
declare their plan, and "auto" compiles only where the plan is long (nothing is compiled here)."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

from xlstm_seq.compiled import AUTO_MIN_CALLS, configure_stacks
from xlstm_seq.config import xLSTMConfig
from xlstm_seq.forecasting.training import TrainingSettings, train_network
from xlstm_seq.lm.trainer import TrainConfig
from xlstm_seq.rl.ppo import XLSTMPPO
from xlstm_seq.stack import xLSTMStack


def _stacks(model: torch.nn.Module) -> list[xLSTMStack]:
    return [m for m in model.modules() if isinstance(m, xLSTMStack)]


def test_configure_stacks_sets_every_stack_and_its_plan():
    net = torch.nn.ModuleList([xLSTMStack(xLSTMConfig(embedding_dim=8, num_blocks=1, num_heads=2)) for _ in range(2)])
    assert configure_stacks(net, "auto", step_calls=AUTO_MIN_CALLS["step"], forward_calls=5) == 2
    for stack in _stacks(net):
        assert stack.compiled_path("step").wants_compile("cpu")
        assert not stack.compiled_path("forward").wants_compile("cpu")
    configure_stacks(net, False, step_calls=10**9)
    assert not any(s.compiled_path("step").wants_compile("cpu") for s in _stacks(net))


def test_ppo_plans_rollout_steps_and_training_passes(monkeypatch):
    agent = XLSTMPPO("MlpXLSTMPolicy", gym.make("CartPole-v1"), n_steps=16, batch_size=16, n_epochs=4, compile="auto")
    stacks = _stacks(agent.policy)
    assert stacks and all(s.compile_mode == "auto" for s in stacks)
    # learn() declares its plan before the first rollout; a short run stays eager.
    monkeypatch.setattr(XLSTMPPO.__mro__[1], "learn", lambda self, **kw: self)
    agent.learn(64)
    assert not any(s.compiled_path("step").wants_compile("cpu") for s in stacks)
    agent.learn(AUTO_MIN_CALLS["step"])  # one env: one step call per time step
    assert all(s.compiled_path("step").wants_compile("cpu") for s in stacks)
    assert all(s.compiled_path("forward").wants_compile("cpu") for s in stacks)  # 3,125 updates x 4 epochs


def test_ppo_refuses_a_bad_switch():
    with pytest.raises(ValueError, match="compile must be True, False or 'auto'"):
        XLSTMPPO("MlpXLSTMPolicy", gym.make("CartPole-v1"), n_steps=16, batch_size=16, compile="always")


def test_lm_config_checks_the_switch():
    assert TrainConfig().compile == "auto"
    with pytest.raises(ValueError, match="compile must be"):
        TrainConfig(compile="yes")


def test_forecasting_loop_declares_its_steps():
    net = xLSTMStack(xLSTMConfig(embedding_dim=8, num_blocks=1, num_heads=2))
    x = torch.randn(2, 4, 8)
    settings = TrainingSettings(
        max_steps=2, learning_rate=1e-3, weight_decay=0.0, val_check_steps=1, early_stop_patience_steps=0
    )
    train_network(net, settings, lambda n: n(x)[0].square().mean(), None)
    path = net.compiled_path("forward")
    assert path.expected_calls == 2 and not path.is_compiled
    with pytest.raises(ValueError, match="compile must be"):
        train_network(net, TrainingSettings(**{**settings.__dict__, "compile": "on"}), lambda n: n(x)[0].sum(), None)
