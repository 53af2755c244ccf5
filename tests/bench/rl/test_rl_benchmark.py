"""`xlstm-seq rl benchmark` at tiny budgets: the grid, the table, the targets, per-environment overrides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from xlstm_seq.cli.main import build_parser, main
from xlstm_seq.config import xLSTMConfig
from xlstm_seq.tracking.provenance import Provenance
from xlstm_seq_bench.rl.benchmark import _build_model, _make_vec_env, run_benchmark
from xlstm_seq_bench.rl.config import BenchmarkEnv, RLBenchmarkConfig
from xlstm_seq_bench.rl.report import _models_text, render_markdown, target_lines

TINY_ENV = dict(n_envs=2, n_steps=32, batch_size=32, n_epochs=1, eval_episodes=2)


def test_benchmark_runs_every_algorithm_and_writes_table_and_curves(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'bench.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    config = RLBenchmarkConfig(
        seeds=[0],
        envs=[BenchmarkEnv(env_id="CartPoleNoVel-v1", total_timesteps=128, **TINY_ENV)],
        xlstm=xLSTMConfig(embedding_dim=8, num_blocks=1, num_heads=2),
        lstm_hidden_size=8,
        out=str(tmp_path / "rl_cartpole.md"),
        experiment="rl-bench-test",
    )
    lines: list[str] = []
    rows = run_benchmark(config, out=lines.append)
    assert [r["algorithm"] for r in rows] == ["xlstm_ppo", "recurrent_ppo", "ppo_framestack"]
    assert all(r["sps_mean"] > 0 and 0 < r["return_mean"] <= 500 for r in rows)
    markdown = (tmp_path / "rl_cartpole.md").read_text()
    assert len(re.findall(r"^\| CartPoleNoVel-v1 \|", markdown, flags=re.M)) == 4  # and the random policy's row
    assert "| CartPoleNoVel-v1 | random policy (2 episodes) |" in markdown
    # no figure configured: the PNG goes beside the markdown, named after it, and the markdown names it
    assert (tmp_path / "rl_cartpole_learning_curves.png").stat().st_size > 1000
    assert "rl_cartpole_learning_curves.png" in markdown
    assert "XLSTMPPO >= 450 on every seed: NOT met" in markdown  # 128 steps cannot balance the pole
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("rl-bench-test")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted(
        ["summary", "xlstm_ppo-CartPoleNoVel-v1-seed0", "recurrent_ppo-CartPoleNoVel-v1-seed0",
         "ppo_framestack-CartPoleNoVel-v1-seed0"]
    )  # fmt: skip
    per_run = [r for r in runs if r.info.run_name != "summary"]
    assert all("eval/mean_return" in r.data.metrics and "time/fps" in r.data.metrics for r in per_run)


def test_figure_path_follows_out_unless_set():
    assert RLBenchmarkConfig(out="benchmarks/rl.md").figure_path == Path("benchmarks/rl_learning_curves.png")
    per_env = RLBenchmarkConfig(out="benchmarks/rl_autoencode.md").figure_path
    assert per_env == Path("benchmarks/rl_autoencode_learning_curves.png")
    assert RLBenchmarkConfig(out="a/rl.md", figure="b/c.png").figure_path == Path("b/c.png")


def _row(env_id, algorithm, per_seed, sps):
    return dict(env_id=env_id, algorithm=algorithm, per_seed=per_seed, return_mean=sum(per_seed) / len(per_seed),
                sps_mean=sps)  # fmt: skip


def test_target_lines_judge_the_targets():
    rows = [
        _row("CartPoleNoVel-v1", "xlstm_ppo", [500.0, 449.0, 500.0], 600.0),
        _row("CartPoleNoVel-v1", "recurrent_ppo", [500.0, 500.0, 500.0], 150.0),
        _row("popgym-LabyrinthEscapeEasy-v0", "xlstm_ppo", [-0.2, -0.3], 900.0),
        _row("popgym-LabyrinthEscapeEasy-v0", "recurrent_ppo", [-0.1, -0.2], 300.0),
        _row("popgym-AutoencodeEasy-v0", "xlstm_ppo", [-0.2, -0.3], 900.0),
        _row("popgym-AutoencodeEasy-v0", "recurrent_ppo", [-0.1, -0.2], 300.0),
    ]
    text = "\n".join(target_lines(rows))
    assert "every seed: NOT met (lowest seed 449.0)" in text
    assert "3x RecurrentPPO's: met (4.00x)" in text
    # without seeds' spreads the means decide; a task of the suite table is judged there, not here
    assert "LabyrinthEscapeEasy-v0: XLSTMPPO level with or ahead of RecurrentPPO: NOT met" in text
    assert "AutoencodeEasy" not in text
    for row, std in zip(rows[2:4], (0.05, 0.05), strict=True):
        row.update(seeds=[0, 1], return_std=std)
    assert "LabyrinthEscapeEasy-v0: XLSTMPPO level with or ahead of RecurrentPPO: NOT met (behind)" in "\n".join(
        target_lines(rows)
    )
    rows[2]["return_std"] = 0.2  # the difference of 0.1 is within the spread now
    assert "RecurrentPPO: met (tie)" in "\n".join(target_lines(rows))
    rows[1]["sps_mean"] = 250.0
    rows[0]["per_seed"] = [450.0, 460.0, 500.0]
    text = "\n".join(target_lines(rows))
    assert "every seed: met (lowest seed 450.0)" in text and "NOT met (2.40x)" in text


def test_config_notes_are_written_under_the_table_and_must_be_strings():
    rows = [_row("popgym-AutoencodeEasy-v0", "xlstm_ppo", [-0.2, -0.3], 900.0)]
    for row in rows:
        row.update(seeds=[0, 1], return_std=0.05, sps_std=1.0)
    config = RLBenchmarkConfig(notes=["recipe chosen on seeds 10 and 11"])
    provenance = Provenance.capture("xlstm-seq rl benchmark --config c.yaml", threads=1)
    markdown = render_markdown(rows, config, provenance)
    assert "Notes (from the config):\n\n- recipe chosen on seeds 10 and 11" in markdown
    assert "Notes" not in render_markdown(rows, config.replace(notes=[]), provenance)
    with pytest.raises(TypeError, match="notes must be a list of strings"):
        RLBenchmarkConfig(notes="one line")


def test_xlstm_head_mlps_of_the_config_reach_the_policy():
    from torch import nn

    budget = BenchmarkEnv(env_id="CartPoleNoVel-v1", total_timesteps=64, **TINY_ENV)
    config = RLBenchmarkConfig(
        xlstm=xLSTMConfig(embedding_dim=8, num_blocks=1, num_heads=2),
        xlstm_actor_net_arch=[5],
        xlstm_critic_net_arch=[7, 3],
    )
    env = _make_vec_env(budget, 0, 2, None)
    extractor = _build_model("xlstm_ppo", config, budget, env, 0).policy.mlp_extractor
    env.close()
    widths = lambda net: [m.out_features for m in net if isinstance(m, nn.Linear)]  # noqa: E731
    assert widths(extractor.policy_net) == [5] and widths(extractor.value_net) == [7, 3]


def test_the_compile_switch_reaches_xlstm_ppo_and_keys_its_runs():
    from xlstm_seq_bench.rl.benchmark import run_settings

    budget = BenchmarkEnv(env_id="CartPoleNoVel-v1", total_timesteps=64, **TINY_ENV)
    config = RLBenchmarkConfig(xlstm=xLSTMConfig(embedding_dim=8, num_blocks=1, num_heads=2), xlstm_compile=False)
    env = _make_vec_env(budget, 0, 2, None)
    assert _build_model("xlstm_ppo", config, budget, env, 0).compile is False
    env.close()
    # "auto" keeps the settings of results recorded before the switch; another setting is a different run.
    auto = run_settings("xlstm_ppo", config.replace(xlstm_compile="auto"), budget)
    assert "xlstm_compile" not in auto["model"]
    assert run_settings("xlstm_ppo", config, budget)["model"]["xlstm_compile"] is False
    assert "xlstm_compile" not in run_settings("recurrent_ppo", config, budget)["model"]
    assert "compile=False" in _models_text(config)
    with pytest.raises(ValueError, match="xlstm_compile"):
        RLBenchmarkConfig(xlstm_compile="sometimes")


def test_env_overrides_change_the_model_of_that_environment_only():
    plain = BenchmarkEnv(env_id="CartPoleNoVel-v1", total_timesteps=64, **TINY_ENV)
    changed = BenchmarkEnv(
        env_id="CartPoleNoVel-v1",
        total_timesteps=64,
        **TINY_ENV,
        overrides={"critic_memory": "separate", "xlstm": {"mlstm": {"conv_kernel_size": 8}}},
    )
    config = RLBenchmarkConfig(xlstm=xLSTMConfig(embedding_dim=8, num_blocks=1, num_heads=2), envs=[plain, changed])
    assert config.for_env(plain) is config
    own = config.for_env(changed)
    assert own.critic_memory == "separate" and own.xlstm.mlstm.conv_kernel_size == 8
    assert own.xlstm.embedding_dim == 8  # untouched fields keep the grid-wide value
    assert config.critic_memory == "shared" and config.xlstm.mlstm.conv_kernel_size == 4
    env = _make_vec_env(changed, 0, 2, None)
    policy = _build_model("xlstm_ppo", own, changed, env, 0).policy
    env.close()
    assert policy.critic_memory == "separate"
    rows = [_row("CartPoleNoVel-v1", "xlstm_ppo", [500.0], 900.0)]
    rows[0].update(seeds=[0], return_std=0.0, sps_std=1.0)
    markdown = render_markdown(rows, config.replace(envs=[changed]), Provenance.capture("cmd"))
    assert "Per-environment model changes" in markdown and "mLSTM convolution 8, separate critic memory" in markdown
    with pytest.raises(ValueError, match=r"envs\[CartPoleNoVel-v1\].overrides: unknown key\(s\) \['gamma'\]"):
        BenchmarkEnv(env_id="CartPoleNoVel-v1", overrides={"gamma": 0.5})
    with pytest.raises(ValueError, match=r"envs\[CartPoleNoVel-v1\].overrides: .*critic_memory"):
        RLBenchmarkConfig(envs=[BenchmarkEnv(overrides={"critic_memory": "both"})])


def test_benchmark_config_rejects_unknown_algorithms_and_empty_grids():
    with pytest.raises(ValueError, match="algorithms must be a non-empty subset"):
        RLBenchmarkConfig(algorithms=["dqn"])
    with pytest.raises(ValueError, match="seeds must be a non-empty list"):
        RLBenchmarkConfig(seeds=[])
    with pytest.raises(ValueError, match="total_timesteps must be a positive integer"):
        RLBenchmarkConfig(envs=[{"env_id": "CartPoleNoVel-v1", "total_timesteps": 0}])


def test_rl_commands_are_listed_and_read_their_configs(tmp_path, capsys):
    args = build_parser().parse_args(["rl", "benchmark", "--envs", "CartPoleNoVel-v1", "--seeds", "1", "--no-track"])
    assert args.config == "configs/rl/pomdp.yaml" and args.seeds == ["1"]
    with pytest.raises(ValueError, match="--envs: cannot create environment 'Nope-v0'"):
        main(["rl", "benchmark", "--envs", "Nope-v0", "--no-track"])
