"""The settings of ``xlstm-seq rl benchmark``: the grid (algorithms, seeds, environments with their budgets), the
suite's default environment settings (``defaults``, which every entry and every id named on the command line starts
from) and the model of each algorithm."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xlstm_seq.compiled import check_compile_setting
from xlstm_seq.config import ConfigMixin, xLSTMConfig
from xlstm_seq.rl.policies import default_memory_config
from xlstm_seq.rl.train import EnvBudget

__all__ = ["ALGORITHMS", "ALGORITHM_LABELS", "MODEL_KEYS", "BenchmarkEnv", "RLBenchmarkConfig"]

ALGORITHMS = ("xlstm_ppo", "recurrent_ppo", "ppo_framestack", "ppo_memoryless")
ALGORITHM_LABELS = {
    "xlstm_ppo": "XLSTMPPO (xLSTM)",
    "recurrent_ppo": "RecurrentPPO (LSTM)",
    "ppo_framestack": "PPO (MLP, stacked frames)",
    "ppo_memoryless": "PPO (MLP, current observation only)",
}


# RLBenchmarkConfig fields that an environment entry may change for itself (BenchmarkEnv.overrides).
MODEL_KEYS = (
    "xlstm", "critic_memory", "xlstm_actor_net_arch", "xlstm_critic_net_arch", "xlstm_sequence_length",
    "lstm_hidden_size", "lstm_critic_net_arch", "frame_stack", "mlp_net_arch",
)  # fmt: skip


def _merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """base with changes applied; nested mappings are merged key by key."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@dataclass
class BenchmarkEnv(EnvBudget):
    """One environment of the benchmark: its budget and the PPO settings shared by all algorithms (the library's
    :class:`~xlstm_seq.rl.train.EnvBudget`), and the model settings changed for this environment only."""

    overrides: dict[str, Any] = field(default_factory=dict)
    """Model settings of the benchmark changed for this environment only, e.g. ``{critic_memory: separate, xlstm:
    {mlstm: {conv_kernel_size: 8}}}``; keys from MODEL_KEYS, ``xlstm`` merged field by field."""

    def __post_init__(self) -> None:
        if not isinstance(self.overrides, dict):
            raise TypeError(f"envs[{self.env_id}].overrides must be a mapping, got {type(self.overrides).__name__}")
        unknown = sorted(set(self.overrides) - set(MODEL_KEYS))
        if unknown:
            raise ValueError(f"envs[{self.env_id}].overrides: unknown key(s) {unknown}; valid keys: {list(MODEL_KEYS)}")
        super().__post_init__()


def _default_envs() -> list[BenchmarkEnv]:
    return [BenchmarkEnv()]


def _default_memory() -> xLSTMConfig:
    return default_memory_config()  # MlpXLSTMPolicy's own default: the suite checks what a new user gets


@dataclass
class RLBenchmarkConfig(ConfigMixin):
    """The grid of the RL benchmark and the model of each algorithm."""

    algorithms: list[str] = field(default_factory=lambda: list(ALGORITHMS[:3]))
    """Which of xlstm_ppo, recurrent_ppo, ppo_framestack, ppo_memoryless run (default the first three)."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Seeds; every algorithm runs every seed on every environment."""
    envs: list[BenchmarkEnv] = field(default_factory=_default_envs)
    """Environments with their budgets and PPO settings; a mapping entry starts from ``defaults``."""
    defaults: dict[str, Any] = field(default_factory=dict)
    """The suite's default environment settings (BenchmarkEnv fields but ``env_id`` and ``overrides``): each mapping
    entry of ``envs`` fills the fields it leaves out from here, and so does an id named with ``--envs`` that no entry
    holds. Empty: BenchmarkEnv's own defaults."""
    xlstm: xLSTMConfig = field(default_factory=_default_memory)
    """XLSTMPPO's memory stack."""
    critic_memory: str = "shared"
    """XLSTMPPO: the critic reads the actor's stack ("shared") or has its own ("separate")."""
    xlstm_actor_net_arch: list[int] = field(default_factory=list)
    """XLSTMPPO's actor MLP after the memory (default none: the action head sits on the memory output)."""
    xlstm_critic_net_arch: list[int] = field(default_factory=lambda: [64])
    """XLSTMPPO's critic MLP after the memory (default [64], as RecurrentPPO's; [] puts the value head on the memory
    output; with a shared memory the extra layer keeps the value fit from dominating the memory's features)."""
    xlstm_sequence_length: int | None = None
    """XLSTMPPO's training sequence length (must divide n_steps and batch_size); None: min(n_steps, batch_size)."""
    xlstm_compile: bool | str = "auto"
    """XLSTMPPO's ``compile`` switch (:mod:`xlstm_seq.compiled`): True compiles the rollout step and the training
    pass on the CPU, False keeps them eager, "auto" (the library's default) compiles each once the run plans
    enough calls to repay the first compile."""
    lstm_hidden_size: int = 64
    """RecurrentPPO's LSTM width (separate critic LSTM, as its default)."""
    frame_stack: int = 4
    """PPO's stacked observations."""
    lstm_critic_net_arch: list[int] = field(default_factory=lambda: [64])
    """RecurrentPPO's critic MLP after the LSTM (sb3-contrib's CartPoleNoVel test setup, no ortho init)."""
    mlp_net_arch: list[int] = field(default_factory=lambda: [64, 64])
    """PPO's MLP for actor and critic."""
    torch_threads: int = 1
    """torch intra-op threads for every run (tiny per-step tensors are fastest, and fairest, on one)."""
    jobs: int = 1
    """Runs trained at the same time, each in a process of its own (forked; each with ``torch_threads``). More
    than one shares the machine's cores between the runs, which lowers each run's measured throughput alike."""
    out: str = "benchmarks/rl/pomdp.md"
    """Markdown table written at the end."""
    figure: str | None = None
    """Learning-curve PNG written at the end; None: beside ``out`` as ``<out stem>_learning_curves.png`` (so
    per-environment runs with their own ``out`` do not overwrite each other's figure)."""
    experiment: str = "xlstm-seq-rl-benchmark"
    """MLflow experiment of the runs."""
    notes: list[str] = field(default_factory=list)
    """Lines written under the table as they are (e.g. how the recipe was chosen, and on which seeds)."""

    def __post_init__(self) -> None:
        if isinstance(self.xlstm, dict):
            self.xlstm = xLSTMConfig.from_dict(self.xlstm)
        if not isinstance(self.defaults, dict):
            raise TypeError(f"defaults must be a mapping of environment settings, got {type(self.defaults).__name__}")
        unknown = sorted(set(self.defaults) - (set(BenchmarkEnv.__dataclass_fields__) - {"env_id", "overrides"}))
        if unknown:
            raise ValueError(f"defaults: unknown key(s) {unknown}; valid keys: fields of an envs entry but env_id")
        self.envs = [self.env_settings(**e) if isinstance(e, dict) else e for e in self.envs]
        if not self.envs or not all(isinstance(e, BenchmarkEnv) for e in self.envs):
            raise ValueError("envs must be a non-empty list of environment entries (env_id, total_timesteps, ...)")
        unknown = sorted(set(self.algorithms) - set(ALGORITHMS))
        if unknown or not self.algorithms:
            raise ValueError(f"algorithms must be a non-empty subset of {list(ALGORITHMS)}, got {self.algorithms}")
        if not isinstance(self.notes, list) or not all(isinstance(n, str) for n in self.notes):
            raise TypeError(f"notes must be a list of strings, got {self.notes!r}")
        if not self.seeds or not all(isinstance(s, int) for s in self.seeds):
            raise ValueError(f"seeds must be a non-empty list of integers, got {self.seeds}")
        check_compile_setting(self.xlstm_compile, "xlstm_compile")
        if self.critic_memory not in ("shared", "separate"):
            raise ValueError(f"critic_memory must be 'shared' or 'separate', got {self.critic_memory!r}")
        for name in ("lstm_hidden_size", "frame_stack", "torch_threads", "jobs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for budget in self.envs:
            self.for_env(budget)  # every override builds valid settings, or fails here naming the environment

    def env_settings(self, env_id: str, **changes: Any) -> BenchmarkEnv:
        """The entry of ``env_id`` built from ``defaults`` with ``changes`` on top (any gymnasium or POPGym id)."""
        return BenchmarkEnv.from_dict({**self.defaults, **changes, "env_id": env_id})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RLBenchmarkConfig:
        """The config of a YAML mapping; each mapping entry of ``envs`` is completed from ``defaults`` first."""
        defaults = data.get("defaults") or {}
        if isinstance(data.get("envs"), list):
            for entry in data["envs"]:
                if isinstance(entry, dict) and "env_id" not in entry:
                    raise ValueError(f"every envs entry needs an env_id; got an entry with keys {sorted(entry)}")
            envs = [{**defaults, **e} if isinstance(e, dict) else e for e in data["envs"]]
            data = {**data, "envs": envs}
        return super().from_dict(data)

    def for_env(self, budget: BenchmarkEnv) -> RLBenchmarkConfig:
        """This config with ``budget.overrides`` applied (itself when there are none)."""
        if not budget.overrides:
            return self
        data = self.to_dict()  # nested plain dicts, xlstm included
        try:
            resolved = {**budget.to_dict(), "overrides": {}}  # applied here, so the result holds none
            return RLBenchmarkConfig.from_dict({**_merged(data, budget.overrides), "envs": [resolved]})
        except (TypeError, ValueError) as err:
            raise ValueError(f"envs[{budget.env_id}].overrides: {err}") from err

    @property
    def figure_path(self) -> Path:
        """The learning-curve PNG: ``figure`` if set, else ``<out without .md>_learning_curves.png``."""
        if self.figure:
            return Path(self.figure)
        out = Path(self.out)
        return out.with_name(f"{out.stem}_learning_curves.png")
