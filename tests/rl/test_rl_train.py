"""`xlstm-seq rl train`, the demo step, and the slow CartPoleNoVel bar."""

from __future__ import annotations

import pytest

from xlstm_seq.cli.main import main
from xlstm_seq.config import xLSTMConfig
from xlstm_seq.rl.train import EnvBudget, RLTrainConfig, rl_demo, run_train

TINY_ENV = dict(n_envs=2, n_steps=32, batch_size=32, n_epochs=1, eval_episodes=2)


def test_rl_train_command_trains_saves_and_evaluates(tmp_path):
    save = tmp_path / "agent" / "model.zip"
    config = RLTrainConfig(
        env=EnvBudget(total_timesteps=64, **TINY_ENV), xlstm=xLSTMConfig(8, 1, 2), save_path=str(save)
    )
    path = tmp_path / "train.yaml"
    config.to_yaml(path)
    assert main(["rl", "train", "--config", str(path), "--no-track"]) == 0
    assert save.exists() and (tmp_path / "agent" / "model_vecnormalize.pkl").exists()
    results = run_train(config.replace(save_path=None), track=False, out=lambda _: None)
    assert results["train/env_steps_per_second"] > 0


def test_rl_demo_is_tracked(tmp_path):
    lines: list[str] = []
    results = rl_demo(total_timesteps=64, out=lines.append)
    assert 0 < results["eval/mean_return"] <= 500
    assert any(line.startswith("MLflow run") for line in lines)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_xlstm_ppo_reaches_450_on_cartpole_novel_in_50k_steps(seed):
    """The bar on every benchmark seed (sb3-contrib's setup): deterministic return >= 450 after 50k steps."""
    config = RLTrainConfig(env=EnvBudget(env_id="CartPoleNoVel-v1", total_timesteps=50_000), seed=seed)
    results = run_train(config, track=False)
    assert results["eval/mean_return"] >= 450, results


def test_env_budget_rejects_bad_budgets_and_benchmark_keys():
    with pytest.raises(ValueError, match=r"envs\[CartPoleNoVel-v1\].total_timesteps must be a positive integer"):
        EnvBudget(total_timesteps=0)
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        EnvBudget(learning_rate=0.0)
    with pytest.raises(ValueError, match=r"unknown EnvBudget field\(s\) \['overrides'\]"):
        RLTrainConfig.from_dict({"env": {"overrides": {"critic_memory": "separate"}}})
