"""Quickstart: a recurrent xLSTM agent on CartPole without velocities (stable-baselines3 API).

The agent sees only the cart position and the pole angle, so it must remember earlier observations to
know how fast things move. A memoryless PPO policy scores about 50 here (the maximum is 500); the RL pages under
benchmarks/rl/ show what XLSTMPPO reaches in 50k steps.

    python examples/rl_quickstart.py                 # 50k steps, a few minutes on 2 CPU cores
    python examples/rl_quickstart.py --steps 5000    # a quick look
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecNormalize

from xlstm_seq.config import xLSTMConfig
from xlstm_seq.rl import XLSTMPPO, tracked_logger  # importing xlstm_seq.rl registers CartPoleNoVel-v1
from xlstm_seq.tracking import create_tracker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50_000, help="training steps (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    args = parser.parse_args()
    torch.set_num_threads(1)  # per-step tensors are tiny: one thread is fastest

    env = VecNormalize(make_vec_env("CartPoleNoVel-v1", n_envs=8, seed=args.seed))
    model = XLSTMPPO(
        "MlpXLSTMPolicy",
        env,
        n_steps=128,
        batch_size=256,  # two whole 128-step sequences per minibatch, each run in one parallel pass
        learning_rate=7e-4,
        gae_lambda=0.98,
        max_grad_norm=1.0,
        seed=args.seed,
        device="cpu",
        policy_kwargs=dict(
            xlstm=xLSTMConfig(embedding_dim=64, num_blocks=1, num_heads=1),  # one mLSTM block, one head
            critic_memory="shared",
            net_arch=dict(pi=[], vf=[64]),  # a small critic MLP on the shared memory (the benchmark's recipe)
        ),
    )

    with create_tracker("xlstm-seq-rl-quickstart", enabled=not args.no_track) as tracker:
        model.set_logger(tracked_logger(tracker))  # SB3's table on stdout, the same numbers in MLflow
        model.learn(args.steps, progress_bar=True)

        # Evaluate with frozen normalisation statistics and the raw reward.
        env.training, env.norm_reward = False, False
        mean, std = evaluate_policy(model, env, n_eval_episodes=20, deterministic=True)
        print(f"deterministic return over 20 episodes: {mean:.1f} +- {std:.1f} (max 500)")
        tracker.log_metrics({"eval/mean_return": mean})

    # The memory by hand: predict returns the new state; episode_start clears it for finished episodes.
    obs, state = env.reset(), None
    episode_start = np.ones(env.num_envs, dtype=bool)
    for _ in range(200):
        action, state = model.predict(obs, state, episode_start, deterministic=True)
        obs, _, episode_start, _ = env.step(action)
    print(f"state after 200 steps: {len(state.blocks)} block(s), batch {state.batch_size}")

    # Save and load without an env: the policy is rebuilt with its xLSTM config.
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "cartpole_novel")
        loaded = XLSTMPPO.load(Path(tmp) / "cartpole_novel", device="cpu")
        same, _ = loaded.predict(obs, state, deterministic=True)
        print("loaded model agrees:", bool((same == model.predict(obs, state, deterministic=True)[0]).all()))


if __name__ == "__main__":
    main()
