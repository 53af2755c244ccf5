"""Recurrent xLSTM policies for stable-baselines3.

    from xlstm_seq.rl import XLSTMPPO
    model = XLSTMPPO("MlpXLSTMPolicy", "CartPoleNoVel-v1", n_steps=128, batch_size=256)
    model.learn(50_000)
    actions, state = model.predict(obs, state, episode_start, deterministic=True)

* ``XLSTMPPO`` (rl/ppo.py): PPO's clipped loss; training runs whole sequences through the stack in one
  parallel pass from states stored only at sequence starts (rl/buffers.py).
* ``MlpXLSTMPolicy``, ``CnnXLSTMPolicy``, ``MultiInputXLSTMPolicy`` (rl/policies.py): features -> xLSTM memory
  (mLSTM, sLSTM or mixed, by an ``xLSTMConfig``) -> actor/critic heads, shared or separate critic memory.
* rl/envs.py: ``CartPoleNoVel-v1``, ``PendulumNoVel-v1``, ``LunarLanderNoVel-v3`` (registered on import) and
  POPGym through ``make_env``; rl/logger.py: SB3 logger -> MLflow tracker; rl/train.py: ``xlstm-seq rl train``
  (``RLTrainConfig``, ``EnvBudget``, ``run_train``) and ``rl_demo``, the RL step of ``xlstm-seq demo``.

The comparison with RecurrentPPO and PPO (``xlstm-seq rl benchmark``) belongs to the benchmark suite
(``xlstm_seq_bench.rl``), not to this package.
"""

from xlstm_seq.rl import envs as envs
from xlstm_seq.rl.logger import TrackerOutputFormat, tracked_logger
from xlstm_seq.rl.policies import (
    CnnXLSTMPolicy,
    MlpXLSTMPolicy,
    MultiInputXLSTMPolicy,
    XLSTMActorCriticPolicy,
    XLSTMPolicyState,
)
from xlstm_seq.rl.ppo import XLSTMPPO

__all__ = [
    "CnnXLSTMPolicy",
    "MlpXLSTMPolicy",
    "MultiInputXLSTMPolicy",
    "TrackerOutputFormat",
    "XLSTMActorCriticPolicy",
    "XLSTMPPO",
    "XLSTMPolicyState",
    "envs",
    "tracked_logger",
]
