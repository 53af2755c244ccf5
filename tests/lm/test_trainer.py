"""Trainer: schedule, weight-decay groups, exact resume from safetensors checkpoints, tracking, DDP (gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from xlstm_seq.config import xLSTMConfig
from xlstm_seq.lm.gpt2 import GPT2, GPT2Config
from xlstm_seq.lm.loader import TokenBatches
from xlstm_seq.lm.models import LMModelConfig
from xlstm_seq.lm.trainer import TrainConfig, Trainer, decay_parameter_names, latest_checkpoint, lr_at
from xlstm_seq.lm.xlstm_lm import xLSTMLM, xLSTMLMConfig

REPO = Path(__file__).resolve().parents[2]


def tiny_model(kind: str) -> LMModelConfig:
    if kind == "gpt2":
        return LMModelConfig(
            kind="gpt2", gpt2=GPT2Config(vocab_size=64, context_length=16, num_layers=2, num_heads=2, embedding_dim=32)
        )
    # "mlstm": no sLSTM block, whose per-step loop makes torch.compile unroll T steps (minutes on CPU).
    stack = xLSTMConfig(
        embedding_dim=32, num_blocks=2, slstm_at=[] if kind == "mlstm" else [1], num_heads=2, backend="torch"
    )
    return LMModelConfig(kind="xlstm", xlstm=xLSTMLMConfig(vocab_size=64, xlstm=stack))


def synthetic_tokens(n: int, seed: int) -> np.ndarray:
    """A learnable stream: a noisy counting sequence mod 64."""
    rng = np.random.default_rng(seed)
    base = np.arange(n) % 64
    noise = rng.integers(0, 64, n)
    return np.where(rng.random(n) < 0.2, noise, base).astype(np.uint16)


def tiny_train_config(tmp_path, kind="gpt2", **changes) -> TrainConfig:
    config = TrainConfig(
        model=tiny_model(kind), out_dir=str(tmp_path / "run"), seq_len=16, batch_size=4, grad_accum_steps=2,
        max_steps=8, warmup_steps=2, learning_rate=3e-3, eval_every=4, eval_batches=2, log_every=2, device="cpu",
    )  # fmt: skip
    return config.replace(**changes)


def make_trainer(config: TrainConfig) -> Trainer:
    train = [synthetic_tokens(3000, 0), synthetic_tokens(2000, 1)]
    return Trainer(config, track=False, train_shards=train, val_shards=[synthetic_tokens(500, 2)])


def test_schedule_warms_up_then_decays_to_the_floor_at_max_steps():
    kw = dict(max_lr=1.0, min_lr=0.1, warmup_steps=10)
    assert lr_at(0, max_steps=100, **kw) == pytest.approx(0.1)
    assert lr_at(9, max_steps=100, **kw) == pytest.approx(1.0)
    assert lr_at(55, max_steps=100, **kw) == pytest.approx(0.55)
    assert lr_at(100, max_steps=100, **kw) == pytest.approx(0.1)
    # The schedule follows max_steps: halfway is halfway for any length (not a fixed 5,000).
    assert lr_at(10 + 4995, max_steps=10_000, **kw) == pytest.approx(0.55)
    assert lr_at(10_000, max_steps=20_000, **kw) > 0.5


def test_weight_decay_only_on_matrices():
    gpt = GPT2(tiny_model("gpt2").gpt2)
    names = decay_parameter_names(gpt)
    assert "blocks.0.attn.qkv.weight" in names and "wte.weight" in names and "wpe.weight" in names
    assert not any(n.endswith("bias") or "ln_" in n for n in names)
    xl = xLSTMLM(tiny_model("xlstm").xlstm)
    names = decay_parameter_names(xl)
    assert "stack.blocks.1.layer.R" in names and "stack.blocks.0.layer.q_proj.weight" in names
    assert "stack.blocks.1.layer.b" not in names and "stack.blocks.0.layer.fgate.bias" not in names
    assert "stack.blocks.0.layer.skip" not in names and "stack.blocks.0.layer.conv.weight" not in names


@pytest.mark.parametrize("shuffle", [False, True])
def test_loader_ranks_split_the_rows_of_one_process(shuffle):
    tokens = [np.arange(1000, dtype=np.uint16), np.arange(1000, 1300, dtype=np.uint16)]
    one = TokenBatches(tokens, batch_size=4, seq_len=8, shuffle=shuffle, seed=3)
    ranks = [TokenBatches(tokens, 2, 8, rank=r, world_size=2, shuffle=shuffle, seed=3) for r in range(2)]
    assert one.num_windows == 31 + 9
    starts = []
    for _ in range(100):  # wraps around the data twice
        x, y = one.next_batch()
        parts = [r.next_batch() for r in ranks]
        torch.testing.assert_close(x, torch.cat([p[0] for p in parts]))
        torch.testing.assert_close(y, torch.cat([p[1] for p in parts]))
        torch.testing.assert_close(x[:, 1:], y[:, :-1])
        starts.append(int(x[0, 0]))
    # Every window is visited once per epoch; shuffled epochs use different orders.
    assert sorted(starts[:40]) == sorted(starts[40:80]) == sorted(list(range(0, 992, 32)) + list(range(1000, 1288, 32)))
    assert (starts[:40] != starts[40:80]) == shuffle and (starts[:40] == sorted(starts[:40])) != shuffle
    assert one.epoch == 2 and one.state_dict()["cursor"] == ranks[0].state_dict()["cursor"] == 20
    with pytest.raises(ValueError, match="global window"):
        TokenBatches([np.arange(10)], batch_size=4, seq_len=8)


def test_loader_resumes_mid_epoch():
    tokens = [np.arange(5000, dtype=np.uint16)]
    a = TokenBatches(tokens, 2, 8, shuffle=True, seed=1)
    for _ in range(400):
        a.next_batch()
    b = TokenBatches(tokens, 2, 8, shuffle=True, seed=1)
    b.load_state_dict(a.state_dict())
    for _ in range(10):
        torch.testing.assert_close(a.next_batch(), b.next_batch())
    with pytest.raises(ValueError, match="saved for"):
        TokenBatches(tokens, 2, 8, shuffle=True, seed=2).load_state_dict(a.state_dict())


@pytest.mark.parametrize("kind", ["gpt2", "xlstm"])
def test_resumed_loss_curve_equals_uninterrupted(tmp_path, kind):
    whole = make_trainer(tiny_train_config(tmp_path / "whole", kind))
    whole.fit()
    assert whole.history[-1]["loss"] < whole.history[0]["loss"]

    first = make_trainer(tiny_train_config(tmp_path / "parts", kind, checkpoint_every=3))
    first.fit(stop_at=5)  # checkpoints at steps 3 and 5
    checkpoint = latest_checkpoint(tmp_path / "parts" / "run")
    assert checkpoint.name == "step_0000005"
    files = sorted(p.name for p in checkpoint.iterdir())
    assert files == ["model.safetensors", "optimizer.safetensors", "trainer.json"]
    json.loads((checkpoint / "trainer.json").read_text())  # plain JSON, no pickles
    del first

    resumed = make_trainer(tiny_train_config(tmp_path / "parts", kind, checkpoint_every=3))
    assert resumed.step == 5
    resumed.fit()
    assert resumed.step == whole.step == 8
    for a, b in zip(whole.history, resumed.history, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6), (a, b)
        assert a.get("val_loss", 0.0) == pytest.approx(b.get("val_loss", 0.0), abs=1e-6)
    for (name, p), q in zip(whole.raw_model.named_parameters(), resumed.raw_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6, msg=name)


def test_resume_refuses_a_different_model(tmp_path):
    make_trainer(tiny_train_config(tmp_path, max_steps=2, warmup_steps=1)).fit()
    other = tiny_train_config(tmp_path, max_steps=2, warmup_steps=1)
    other.model.gpt2.num_layers = 1
    with pytest.raises(ValueError, match="different model"):
        make_trainer(other)


def test_metrics_reach_mlflow(tmp_path, monkeypatch):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    config = tiny_train_config(tmp_path, max_steps=4, warmup_steps=1, experiment="lm-test")
    trainer = Trainer(
        config, train_shards=[synthetic_tokens(3000, 0)], val_shards=[synthetic_tokens(500, 2)], track=True
    )
    trainer.fit()
    trainer.close()
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.search_runs([client.get_experiment_by_name("lm-test").experiment_id])[0]
    assert {"train/loss", "val/loss", "perf/tokens_per_s", "train/lr"} <= set(run.data.metrics)
    assert run.data.params["config.max_steps"] == "4"


def test_bad_configs_raise():
    with pytest.raises(ValueError, match="warmup_steps"):
        TrainConfig(max_steps=10, warmup_steps=20)
    with pytest.raises(ValueError, match="context_length"):
        TrainConfig(model=tiny_model("gpt2"), seq_len=32)
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(model=tiny_model("gpt2"), seq_len=16, precision="fp16")


@pytest.mark.parametrize("kind", ["gpt2", "xlstm"])
def test_bf16_autocast_trains_like_fp32(tmp_path, kind):
    # The GPU runs use bf16 autocast; on CPU the same code path runs when asked for explicitly.
    fp32 = make_trainer(tiny_train_config(tmp_path / "fp32", kind, precision="fp32"))
    bf16 = make_trainer(tiny_train_config(tmp_path / "bf16", kind, precision="bf16"))
    assert fp32.autocast_dtype is None and bf16.autocast_dtype == torch.bfloat16
    fp32.fit()
    bf16.fit()
    assert all(p.dtype == torch.float32 for p in bf16.raw_model.parameters())  # master weights stay fp32
    first, last = bf16.history[0]["loss"], bf16.history[-1]["loss"]
    assert first == pytest.approx(fp32.history[0]["loss"], abs=0.05)
    assert last < first and last == pytest.approx(fp32.history[-1]["loss"], abs=0.15)


@pytest.mark.slow  # inductor's first compile: 1.5-3 min per model on 2 loaded CPU cores (run with -m slow)
@pytest.mark.parametrize("kind", ["gpt2", "mlstm"])
def test_compiled_model_trains_like_eager(tmp_path, kind):
    model = tiny_model(kind)
    eager = make_trainer(tiny_train_config(tmp_path / "eager", model=model, max_steps=3, eval_every=3))
    compiled = make_trainer(
        tiny_train_config(tmp_path / "compiled", model=model, max_steps=3, eval_every=3, compile=True)
    )
    assert compiled.model is not compiled.raw_model
    eager.fit()
    compiled.fit()
    for a, b in zip(eager.history, compiled.history, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-4)


def write_shards(folder: Path) -> None:
    from xlstm_seq.lm.shards import INDEX_NAME

    folder.mkdir(parents=True)
    splits = {}
    for split, seeds in (("train", (0, 1)), ("val", (2,))):
        shards = []
        for i, seed in enumerate(seeds):
            tokens = synthetic_tokens(3000 if split == "train" else 600, seed)
            tokens.tofile(folder / f"{split}_{i:06d}.bin")
            shards.append({"file": f"{split}_{i:06d}.bin", "tokens": int(tokens.size)})
        splits[split] = {"shards": shards}
    num_tokens = {s: sum(x["tokens"] for x in v["shards"]) for s, v in splits.items()}
    index = {"complete": True, "splits": splits, "num_tokens": num_tokens}
    (folder / INDEX_NAME).write_text(json.dumps(index))


def test_ddp_two_gloo_processes_match_one_process_with_twice_the_batch(tmp_path):
    data = tmp_path / "shards"
    write_shards(data)
    base = tiny_train_config(tmp_path, data_dir=str(data), max_steps=3, warmup_steps=1, eval_every=0)
    ddp_config = base.replace(out_dir=str(tmp_path / "ddp"), batch_size=2)
    ddp_config.to_yaml(tmp_path / "ddp.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "xlstm_seq.cli.main", "lm", "train", "--config", str(tmp_path / "ddp.yaml"), "--no-track",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]

    single = Trainer(base.replace(out_dir=str(tmp_path / "single"), batch_size=4), track=False)
    single.fit()
    ddp_ckpt = latest_checkpoint(tmp_path / "ddp")
    ddp_history = json.loads((ddp_ckpt / "trainer.json").read_text())["history"]
    for a, b in zip(single.history, ddp_history, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
    from safetensors.torch import load_file

    weights = load_file(str(ddp_ckpt / "model.safetensors"))
    assert len(weights) >= len(single.raw_model.state_dict()) - 1  # the tied head is stored once
    # Adam divides by sqrt(v): the attention key bias has an analytically zero gradient, so its float noise
    # (summed in another order across ranks) moves it by up to ~2e-6; a DDP mistake would move ~lr = 3e-3.
    for name, param in single.raw_model.state_dict().items():
        if name in weights:
            torch.testing.assert_close(param, weights[name], rtol=0, atol=1e-5, msg=name)
