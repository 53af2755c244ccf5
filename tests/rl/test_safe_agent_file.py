"""XLSTMPPO.save_safetensors / load_safetensors: one safetensors file that restores the agent without unpickling;
the loaded agent acts exactly like the saved one, for every observation and action space the policies support."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces
from rl_helpers import ACTIONS, BOX_OBS, DICT_OBS, SpacesEnv
from safetensors import safe_open
from safetensors.torch import save_file
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import DummyVecEnv

from xlstm_seq import xLSTMConfig
from xlstm_seq.rl import XLSTMPPO, MlpXLSTMPolicy
from xlstm_seq.rl.agent_file import space_from_json, space_to_json

TINY = dict(n_steps=8, batch_size=8, n_epochs=1, seed=0)
MEMORY = xLSTMConfig(embedding_dim=16, num_blocks=2, num_heads=2, slstm_at=[1], backend="torch")


def _env(obs_space: spaces.Space, action: spaces.Space, n_envs: int = 2) -> DummyVecEnv:
    env = DummyVecEnv([lambda: SpacesEnv(obs_space, action) for _ in range(n_envs)])
    env.seed(0)
    return env


def _rollout_actions(model: XLSTMPPO, env: DummyVecEnv, steps: int = 12) -> list[np.ndarray]:
    """Deterministic actions over ``steps`` steps, the memory carried and reset at episode starts."""
    env.seed(1)
    obs, state, starts, actions = env.reset(), None, np.ones(env.num_envs, dtype=bool), []
    for _ in range(steps):
        action, state = model.predict(obs, state, starts, deterministic=True)
        actions.append(action)
        obs, _, starts, _ = env.step(action)
    return actions


@pytest.mark.parametrize(
    ("obs_space", "action", "policy_kwargs"),
    [
        (BOX_OBS, "discrete", {}),
        (BOX_OBS, "box", dict(critic_memory="shared", net_arch=dict(pi=[8], vf=[8]), activation_fn=torch.nn.ReLU)),
        (DICT_OBS, "multidiscrete", {}),
        (BOX_OBS, "multibinary", dict(optimizer_kwargs=dict(eps=1e-5, betas=(0.8, 0.9)))),
    ],
    ids=["box-discrete", "box-box-shared", "dict-multidiscrete", "box-multibinary"],
)
def test_round_trip_gives_identical_weights_and_actions(obs_space, action, policy_kwargs, tmp_path):
    policy = "MultiInputXLSTMPolicy" if isinstance(obs_space, spaces.Dict) else "MlpXLSTMPolicy"
    env = _env(obs_space, ACTIONS[action])
    model = XLSTMPPO(policy, env, policy_kwargs=dict(xlstm=MEMORY, **policy_kwargs), **TINY)
    model.learn(16)
    path = model.save_safetensors(tmp_path / "agent")
    assert path == tmp_path / "agent.safetensors" and path.is_file()

    loaded = XLSTMPPO.load_safetensors(path, device="cpu")  # no env: a standalone load
    assert loaded.observation_space == model.observation_space and loaded.action_space == model.action_space
    assert loaded.policy.xlstm_config == model.policy.xlstm_config
    assert type(loaded.policy) is type(model.policy) and loaded.num_timesteps == model.num_timesteps
    saved, restored = model.policy.state_dict(), loaded.policy.state_dict()
    assert saved.keys() == restored.keys() and all(torch.equal(saved[k], restored[k]) for k in saved)
    one_env = _env(obs_space, ACTIONS[action], n_envs=1)
    for ours, theirs in zip(_rollout_actions(model, one_env), _rollout_actions(loaded, one_env), strict=True):
        np.testing.assert_array_equal(ours, theirs)

    # With an env it trains on, with the saved settings.
    again = XLSTMPPO.load_safetensors(path, env=env)
    assert (again.n_steps, again.batch_size, again.sequence_length, again.seed) == (8, 8, 8, 0)
    again.learn(16)


def test_the_header_is_json_and_schedules_survive(tmp_path):
    env = _env(BOX_OBS, ACTIONS["discrete"])
    model = XLSTMPPO("MlpXLSTMPolicy", env, learning_rate=LinearSchedule(1e-3, 1e-4, 0.5), clip_range=0.3, **TINY)
    path = model.save_safetensors(tmp_path / "agent.safetensors")
    with safe_open(str(path), "pt") as f:
        header = json.loads(f.metadata()["agent"])
    assert header["policy"] == "MlpXLSTMPolicy" and header["policy_kwargs"]["xlstm"]["embedding_dim"] == 64
    assert header["algorithm"]["learning_rate"] == {"linear": {"start": 1e-3, "end": 1e-4, "end_fraction": 0.5}}
    assert header["action_space"] == {"type": "Discrete", "n": 3, "start": 0}
    loaded = XLSTMPPO.load_safetensors(path)
    assert loaded.lr_schedule(1.0) == pytest.approx(1e-3) and loaded.lr_schedule(0.0) == pytest.approx(1e-4)
    assert loaded.clip_range(0.5) == pytest.approx(0.3)


@pytest.mark.parametrize("setting", [False, True, "auto"])
def test_the_compile_switch_survives_a_round_trip(setting, tmp_path):
    env = _env(BOX_OBS, ACTIONS["discrete"])
    model = XLSTMPPO("MlpXLSTMPolicy", env, compile=setting, **TINY)
    loaded = XLSTMPPO.load_safetensors(model.save_safetensors(tmp_path / "agent"))
    assert loaded.compile == setting and type(loaded.compile) is type(setting)


def test_a_file_without_the_compile_switch_loads_with_auto(tmp_path):
    """Files written before the switch was saved hold no "compile" key: they load with the default."""
    model = XLSTMPPO("MlpXLSTMPolicy", _env(BOX_OBS, ACTIONS["discrete"]), compile=False, **TINY)
    path = model.save_safetensors(tmp_path / "agent")
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
        weights = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 - a safe_open handle is no mapping
    header = json.loads(metadata["agent"])
    del header["algorithm"]["compile"]
    save_file(weights, str(path), metadata={**metadata, "agent": json.dumps(header)})
    assert XLSTMPPO.load_safetensors(path).compile == "auto"


@pytest.mark.parametrize(
    "space",
    [
        spaces.Box(low=np.array([-np.inf, 0.0]), high=np.array([np.inf, 1.0]), dtype=np.float64),
        spaces.Box(0, 255, shape=(2, 3, 1), dtype=np.uint8),
        spaces.Discrete(4, start=-1),
        spaces.MultiDiscrete([2, 5]),
        spaces.MultiBinary([2, 2]),
        spaces.Dict({"a": spaces.Discrete(2), "b": spaces.Box(-1, 1, shape=(1,))}),
    ],
    ids=lambda s: type(s).__name__,
)
def test_spaces_round_trip_through_json(space):
    assert space_from_json(json.loads(json.dumps(space_to_json(space), allow_nan=False))) == space


def test_loading_unpickles_nothing(tmp_path):
    """In a fresh interpreter: every unpickling entry point raises, and an audit hook records each global a pickle
    would look up; load_safetensors and predict run, SB3's zip load trips the hook (so the check can see one)."""
    env = _env(BOX_OBS, ACTIONS["discrete"], n_envs=1)
    model = XLSTMPPO("MlpXLSTMPolicy", env, **TINY)
    model.save_safetensors(tmp_path / "agent")
    model.save(tmp_path / "agent.zip")
    obs = np.zeros((1, 3), dtype=np.float32)
    expected = model.predict(obs, deterministic=True)[0]
    script = textwrap.dedent(f"""
        import sys, pickle
        events = []
        sys.addaudithook(lambda event, args: events.append(args) if event == "pickle.find_class" else None)
        import numpy as np, torch, cloudpickle
        from xlstm_seq.rl import XLSTMPPO

        def refuse(*args, **kwargs):
            raise AssertionError("unpickling was attempted")

        class RefusingUnpickler(pickle.Unpickler):  # a class: torch subclasses pickle.Unpickler when it imports
            def __init__(self, *args, **kwargs):
                refuse()

        originals = (pickle.load, pickle.loads, pickle.Unpickler, cloudpickle.loads, torch.load)
        pickle.load = pickle.loads = cloudpickle.loads = torch.load = refuse
        pickle.Unpickler = RefusingUnpickler
        model = XLSTMPPO.load_safetensors({str(tmp_path / "agent")!r}, device="cpu")
        action = model.predict(np.zeros((1, 3), dtype=np.float32), deterministic=True)[0]
        print("safe", action.tolist(), len(events))
        pickle.load, pickle.loads, pickle.Unpickler, cloudpickle.loads, torch.load = originals
        XLSTMPPO.load({str(tmp_path / "agent.zip")!r}, device="cpu")
        print("zip", len(events) > 0)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert f"safe {expected.tolist()} 0" in lines, done.stdout
    assert "zip True" in lines, done.stdout


def test_damaged_and_foreign_files_are_refused_by_name(tmp_path):
    env = _env(BOX_OBS, ACTIONS["discrete"])
    path = XLSTMPPO("MlpXLSTMPolicy", env, **TINY).save_safetensors(tmp_path / "agent")
    with pytest.raises(FileNotFoundError, match="no saved agent at"):
        XLSTMPPO.load_safetensors(tmp_path / "missing")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match=r"junk\.safetensors is not a safetensors file"):
        XLSTMPPO.load_safetensors(tmp_path / "junk.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "weights.safetensors"))
    with pytest.raises(ValueError, match=r"weights\.safetensors is not an agent written by XLSTMPPO.save_safetensors"):
        XLSTMPPO.load_safetensors(tmp_path / "weights.safetensors")

    with safe_open(str(path), "pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("nan")
    save_file(tensors, str(tmp_path / "nan.safetensors"), metadata=metadata)
    with pytest.raises(ValueError, match=rf"nan\.safetensors holds NaN or infinite values in '{name}'"):
        XLSTMPPO.load_safetensors(tmp_path / "nan.safetensors")
    save_file({k: v for k, v in tensors.items() if k != name}, str(tmp_path / "short.safetensors"), metadata=metadata)
    with pytest.raises(ValueError, match=r"short\.safetensors does not hold the weights of the policy"):
        XLSTMPPO.load_safetensors(tmp_path / "short.safetensors")
    header = json.loads(metadata["agent"])
    header["policy_kwargs"]["activation_fn"] = {"class": "os.system"}
    save_file(tensors, str(tmp_path / "evil.safetensors"), metadata={**metadata, "agent": json.dumps(header)})
    with pytest.raises(ValueError, match=r"evil\.safetensors holds an agent description .*'os\.system'"):
        XLSTMPPO.load_safetensors(tmp_path / "evil.safetensors")
    with pytest.raises(ValueError, match="spaces"):
        XLSTMPPO.load_safetensors(path, env=_env(spaces.Box(-1, 1, shape=(5,)), ACTIONS["discrete"]))


class _CustomPolicy(MlpXLSTMPolicy):
    pass


def test_what_json_cannot_hold_is_named_at_save(tmp_path):
    env = _env(BOX_OBS, ACTIONS["discrete"])
    with pytest.raises(ValueError, match="_CustomPolicy is none of them: use save"):
        XLSTMPPO(_CustomPolicy, env, **TINY).save_safetensors(tmp_path / "a")
    with pytest.raises(ValueError, match="learning_rate is a callable"):
        XLSTMPPO("MlpXLSTMPolicy", env, learning_rate=lambda progress: 1e-3 * progress, **TINY).save_safetensors(
            tmp_path / "b"
        )
    assert not list(Path(tmp_path).iterdir())
