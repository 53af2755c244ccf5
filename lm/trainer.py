"""Language-model training: AdamW, warmup + cosine tied to max_steps, bf16 on GPU, clipping, accumulation,
validation, tokens/s and MFU to the tracker, safetensors checkpoints with exact resume, DDP under torchrun.

    trainer = Trainer(TrainConfig(model=LMModelConfig(kind="xlstm", ...), data_dir="data/lm/..."))
    summary = trainer.fit()

Under ``torchrun --nproc-per-node N`` every process runs the same code: the environment (RANK, WORLD_SIZE,
LOCAL_RANK) selects DDP with NCCL on GPUs or gloo on CPUs; only rank 0 logs and writes checkpoints.
A checkpoint is a folder ``out_dir/checkpoints/step_0000100/`` with ``model.safetensors``,
``optimizer.safetensors`` (AdamW moments and RNG states) and ``trainer.json`` (step, loader position,
config, loss history): no pickles, and resuming continues the loss curve exactly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import Tensor, nn

from xlstm_seq import devices
from xlstm_seq.compiled import check_compile_setting, configure_stacks
from xlstm_seq.components import BlockDiagonalLinear
from xlstm_seq.config import ConfigMixin
from xlstm_seq.lm.loader import TokenBatches, fixed_batches
from xlstm_seq.lm.models import LMModelConfig, build_model, flops_per_token
from xlstm_seq.lm.shards import TokenShards
from xlstm_seq.tracking import Tracker, create_tracker

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")
# Dense bf16 tensor-core peaks (FLOP/s) used for MFU when the config gives none.
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}


@dataclass
class TrainConfig(ConfigMixin):
    """Settings of ``xlstm-seq lm train``."""

    model: LMModelConfig = field(default_factory=LMModelConfig)
    """The model to train (kind "gpt2", "xlstm" or "lstm" and its size)."""
    data_dir: str = "data/lm/enwiki-gutenberg"
    """Folder of token shards written by ``xlstm-seq lm prepare``."""
    out_dir: str = "runs/lm/xlstm"
    """Checkpoints go to ``out_dir/checkpoints``."""
    seq_len: int = 256
    """Tokens per training sequence (the survey's context)."""
    batch_size: int = 16
    """Sequences per micro-batch and process."""
    grad_accum_steps: int = 1
    """Micro-batches per optimiser step (tokens per step = batch_size * seq_len * accum * processes)."""
    max_steps: int = 1000
    """Optimiser steps; the cosine schedule ends here."""
    learning_rate: float = 6e-4
    """Peak learning rate after warmup."""
    min_lr_ratio: float = 0.1
    """The cosine decays to learning_rate * min_lr_ratio at max_steps."""
    warmup_steps: int = 100
    """Linear warmup steps from learning_rate / warmup_steps to learning_rate."""
    weight_decay: float = 0.1
    """AdamW weight decay, applied to weight matrices only (not biases, norms, gate biases, conv taps)."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    """AdamW betas."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0 disables)."""
    eval_every: int = 100
    """Validation loss every this many steps (and at the end); 0 only at the end."""
    eval_batches: int = 20
    """Validation micro-batches (a fixed set from the start of the validation split)."""
    log_every: int = 10
    """Train loss, learning rate, tokens/s and MFU every this many steps."""
    checkpoint_every: int = 0
    """Checkpoint every this many steps (and at the end); 0 only at the end."""
    keep_checkpoints: int = 2
    """Newest checkpoints kept on disk."""
    resume: bool = True
    """Continue from the newest checkpoint in out_dir when there is one."""
    precision: str = "auto"
    """"auto" (bf16 autocast on CUDA, fp32 on CPU), "fp32", or "bf16" (autocast on CUDA or CPU)."""
    compile: bool | str = "auto"
    """True wraps the whole model in torch.compile; "auto" compiles the model's xLSTM stacks on a CPU when the run
    has enough steps to repay the first compile (xlstm_seq.compiled); False runs everything eagerly."""
    device: str = "auto"
    """"auto" (cuda:LOCAL_RANK when available, else cpu), "cpu" or "cuda"."""
    seed: int = 0
    """Seed of the initial weights and of the data order."""
    shuffle: bool = True
    """Visit the training windows in a seeded random order per epoch (False: in shard order)."""
    peak_flops: float | None = None
    """Peak FLOP/s of one device for MFU; None looks the GPU up (no MFU on CPU)."""
    experiment: str = "xlstm-seq-lm"
    """MLflow experiment name."""
    run_name: str | None = None
    """MLflow run name (None: "<kind>-train")."""

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = LMModelConfig.from_dict(self.model)
        for name in ("seq_len", "batch_size", "grad_accum_steps", "max_steps", "eval_batches", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "eval_every", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.warmup_steps > self.max_steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) must be <= max_steps ({self.max_steps})")
        if self.learning_rate <= 0 or not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(
                f"need learning_rate > 0 and min_lr_ratio in [0, 1], got {self.learning_rate} and {self.min_lr_ratio}"
            )
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas}")
        self.betas = [float(b) for b in self.betas]
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        check_compile_setting(self.compile)
        context = self.model.context_length
        if context is not None and self.seq_len > context:
            raise ValueError(f"seq_len ({self.seq_len}) exceeds the GPT-2 context_length ({context})")

    @property
    def min_lr(self) -> float:
        return self.learning_rate * self.min_lr_ratio


def lr_at(step: int, *, max_lr: float, min_lr: float, warmup_steps: int, max_steps: int) -> float:
    """Learning rate of optimiser step ``step`` (0-based): linear warmup, then cosine to ``min_lr`` at max_steps."""
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= max_steps:
        return min_lr
    progress = (step - warmup_steps) / max(1, max_steps - warmup_steps)  # 0 -> 1
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)


def decay_parameter_names(model: nn.Module) -> set[str]:
    """Names of the parameters that get weight decay: weight matrices of linear maps and embeddings, the sLSTM
    recurrent matrices and nn.LSTM's input and recurrent matrices (``weight_ih_l0``, ...). Biases (including the
    sLSTM gate biases), norms, skips and conv taps do not."""
    names = set()
    for module_name, module in model.named_modules():
        for param_name, _ in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            matrix_module = isinstance(module, (nn.Linear, nn.Embedding, BlockDiagonalLinear))
            rnn_matrix = isinstance(module, nn.RNNBase) and param_name.startswith("weight_")
            if (matrix_module and param_name == "weight") or param_name == "R" or rnn_matrix:
                names.add(full)
    return names


def make_optimizer(model: nn.Module, config: TrainConfig, fused: bool = False) -> torch.optim.AdamW:
    """AdamW with two groups: decayed weight matrices and undecayed rest (tied weights counted once)."""
    decay_names = decay_parameter_names(model)
    decay, no_decay = [], []
    # named_parameters() yields a tied tensor once, under its first name; both of its names are matrices.
    for name, param in model.named_parameters():
        if param.requires_grad:
            (decay if name in decay_names else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=tuple(config.betas), fused=fused or None)


@dataclass
class DistInfo:
    """Where this process stands in a torchrun job (rank 0 of 1 without one)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Joins the torchrun process group (NCCL on CUDA, gloo on CPU) when WORLD_SIZE > 1."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    info = DistInfo(int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world_size)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return info


def resolve_device(name: str) -> torch.device:
    """The device of this process: a bare "cuda" takes the process's LOCAL_RANK (torchrun) as its index."""
    return devices.resolve_device(name, cuda_index=int(os.environ.get("LOCAL_RANK", "0")))


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder under ``out_dir/checkpoints`` (None when there is none)."""
    folder = Path(out_dir) / "checkpoints"
    done = sorted(p for p in folder.glob("step_*") if (p / "trainer.json").is_file()) if folder.is_dir() else []
    return done[-1] if done else None


class Trainer:
    """Trains one language model; see the module docstring."""

    def __init__(
        self,
        config: TrainConfig,
        *,
        train_shards: list[np.ndarray] | None = None,
        val_shards: list[np.ndarray] | None = None,
        tracker: Tracker | None = None,
        track: bool = True,
    ):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"Trainer expects a TrainConfig, got {type(config).__name__}")
        self.config = config
        self.device = resolve_device(config.device)
        self.dist = init_distributed(self.device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if config.precision == "bf16" and self.device.type not in ("cuda", "cpu"):
            raise ValueError(f"precision 'bf16' autocast runs on CUDA or CPU; this run is on {self.device}: use 'fp32'")
        # "auto" keeps fp32 on CPU (bf16 matmuls are slow on most CPUs); "bf16" on CPU exists to test the path.
        use_bf16 = config.precision == "bf16" or (config.precision == "auto" and self.device.type == "cuda")
        self.autocast_dtype = torch.bfloat16 if use_bf16 else None

        if train_shards is None or val_shards is None:
            shards = TokenShards(config.data_dir)
            train_shards = train_shards if train_shards is not None else shards.split("train")
            val_shards = val_shards if val_shards is not None else shards.split("val")
        self.train_batches = TokenBatches(
            train_shards, config.batch_size, config.seq_len,
            rank=self.dist.rank, world_size=self.dist.world_size, shuffle=config.shuffle, seed=config.seed,
        )  # fmt: skip
        val_all = fixed_batches(val_shards, config.batch_size, config.seq_len, config.eval_batches)
        self.val_batches = val_all[self.dist.rank :: self.dist.world_size]

        torch.manual_seed(config.seed)
        self.raw_model = build_model(config.model).to(self.device)
        self.optimizer = make_optimizer(self.raw_model, config, fused=self.device.type == "cuda")
        self.model: nn.Module = self.raw_model
        if self.dist.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.raw_model, device_ids=ids)
        # The stacks' own switch: "auto" plans one training pass per micro-batch (evaluation passes come on top).
        planned_passes = config.max_steps * config.grad_accum_steps
        configure_stacks(self.raw_model, config.compile, forward_calls=planned_passes)
        if config.compile is True:
            self.model = torch.compile(self.model)

        self.step = 0
        self.tokens_seen = 0
        self.history: list[dict[str, float]] = []
        self.tokens_per_step = config.batch_size * config.seq_len * config.grad_accum_steps * self.dist.world_size
        self.flops_per_token = flops_per_token(self.raw_model, config.seq_len)
        self.peak_flops = config.peak_flops or self._lookup_peak_flops()
        if config.resume and (checkpoint := latest_checkpoint(config.out_dir)) is not None:
            self.load_checkpoint(checkpoint)
        self._own_tracker = tracker is None
        run_name = config.run_name or f"{config.model.kind}-train"
        self.tracker = tracker or create_tracker(config.experiment, run_name, enabled=track and self.dist.is_main)

    def _lookup_peak_flops(self) -> float | None:
        if self.device.type != "cuda":
            return None
        name = torch.cuda.get_device_name(self.device)
        return next((flops for key, flops in PEAK_BF16_FLOPS.items() if key in name), None)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def _loss(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Mean next-token cross-entropy of x (B, T) predicting y (B, T)."""
        with self._autocast():
            logits = model(x)  # (B, T, V)
        return F.cross_entropy(logits.float().flatten(0, 1), y.flatten())

    def lr(self, step: int) -> float:
        c = self.config
        return lr_at(step, max_lr=c.learning_rate, min_lr=c.min_lr, warmup_steps=c.warmup_steps, max_steps=c.max_steps)

    def train_step(self) -> dict[str, float]:
        """One optimiser step over ``grad_accum_steps`` micro-batches; returns loss, lr and gradient norm."""
        self.model.train()
        lr = self.lr(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        accum = self.config.grad_accum_steps
        total = torch.zeros((), device=self.device)
        for micro in range(accum):
            x, y = (t.to(self.device, non_blocking=True) for t in self.train_batches.next_batch())
            # Only the last micro-batch all-reduces gradients under DDP.
            sync = micro == accum - 1 or not isinstance(self.model, nn.parallel.DistributedDataParallel)
            with contextlib.nullcontext() if sync else self.model.no_sync():
                loss = self._loss(self.model, x, y) / accum
                loss.backward()
            total += loss.detach()
        grad_norm = float("nan")
        if self.config.grad_clip > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.raw_model.parameters(), self.config.grad_clip))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.dist.world_size > 1:
            dist.all_reduce(total, op=dist.ReduceOp.AVG)
        self.step += 1
        self.tokens_seen += self.tokens_per_step
        record = {"step": self.step, "loss": float(total), "lr": lr, "grad_norm": grad_norm}
        self.history.append(record)
        return record

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean validation loss over the fixed validation batches (averaged over all ranks)."""
        self.model.eval()
        sums = torch.zeros(2, device=self.device, dtype=torch.float64)  # (loss sum, batches)
        for x, y in self.val_batches:
            sums[0] += self._loss(self.raw_model, x.to(self.device), y.to(self.device)).double()
            sums[1] += 1
        if self.dist.world_size > 1:
            dist.all_reduce(sums)
        if sums[1] == 0:
            raise ValueError("the validation split is too small for one (batch_size, seq_len) batch")
        return float(sums[0] / sums[1])

    def fit(self, stop_at: int | None = None) -> dict[str, Any]:
        """Trains until ``max_steps`` (or until step ``stop_at``, for interrupted runs); returns a summary.

        ``tokens_per_s_overall`` counts optimiser steps only (not validation or checkpoints) and leaves out the
        first step of the call, which pays for warm-up and compilation.
        """
        c = self.config
        last_step = min(c.max_steps, stop_at) if stop_at is not None else c.max_steps
        self.tracker.log_params({"config": c.to_dict(), "model_parameters": self.raw_model.num_parameters()})
        self.tracker.log_text(c.to_yaml(), "config.yaml")
        val_loss = float("nan")
        start_time = time.perf_counter()
        window_time, window_steps = 0.0, 0  # since the last log line
        train_time, timed_steps, steps_run = 0.0, 0, 0
        while self.step < last_step:
            step_start = time.perf_counter()
            record = self.train_step()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            seconds = time.perf_counter() - step_start
            steps_run += 1
            window_time, window_steps = window_time + seconds, window_steps + 1
            if steps_run > 1:
                train_time, timed_steps = train_time + seconds, timed_steps + 1
            if self.step % c.log_every == 0 or self.step == last_step:
                tokens_per_s = window_steps * self.tokens_per_step / window_time
                metrics = {
                    "train/loss": record["loss"],
                    "train/lr": record["lr"],
                    "train/grad_norm": record["grad_norm"],
                    "perf/tokens_per_s": tokens_per_s,
                    "perf/tokens_seen": float(self.tokens_seen),
                }
                if self.peak_flops:
                    metrics["perf/mfu"] = self.flops_per_token * tokens_per_s / (self.peak_flops * self.dist.world_size)
                self.tracker.log_metrics(metrics, step=self.step)
                log.info("step %d loss %.4f lr %.2e %.0f tok/s", self.step, record["loss"], record["lr"], tokens_per_s)
                window_time, window_steps = 0.0, 0
            if (c.eval_every and self.step % c.eval_every == 0) or self.step == c.max_steps:
                val_loss = self.evaluate()
                self.history[-1]["val_loss"] = val_loss
                self.tracker.log_metrics({"val/loss": val_loss}, step=self.step)
            if (c.checkpoint_every and self.step % c.checkpoint_every == 0) or self.step == last_step:
                self.save_checkpoint()
        tokens_per_s = timed_steps * self.tokens_per_step / train_time if timed_steps else float("nan")
        summary = {
            "step": self.step,
            "train_loss": self.history[-1]["loss"] if self.history else float("nan"),
            "val_loss": val_loss,
            "tokens_seen": self.tokens_seen,
            "wall_s": time.perf_counter() - start_time,
            "train_s": train_time,
            "tokens_per_s_overall": tokens_per_s,
            "parameters": self.raw_model.num_parameters(),
        }
        if self.peak_flops and timed_steps:
            summary["mfu"] = self.flops_per_token * tokens_per_s / (self.peak_flops * self.dist.world_size)
        self.tracker.log_metrics({f"final/{k}": float(v) for k, v in summary.items()}, step=self.step)
        return summary

    def close(self) -> None:
        """Closes the tracker this trainer opened."""
        if self._own_tracker:
            self.tracker.close()

    # Checkpoints ---------------------------------------------------------------------------------------------

    def save_checkpoint(self) -> Path | None:
        """Writes ``out_dir/checkpoints/step_<step>/`` on rank 0 (atomically); returns its path there."""
        path = Path(self.config.out_dir) / "checkpoints" / f"step_{self.step:07d}"
        if self.dist.is_main:
            tmp = path.with_name(path.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            save_model(self.raw_model, str(tmp / "model.safetensors"))
            tensors, groups = self._optimizer_tensors()
            save_file(tensors, str(tmp / "optimizer.safetensors"))
            meta = {
                "step": self.step,
                "tokens_seen": self.tokens_seen,
                "loader": self.train_batches.state_dict(),
                "param_groups": groups,
                "config": self.config.to_dict(),
                "history": self.history,
            }
            (tmp / "trainer.json").write_text(json.dumps(meta, indent=1))
            shutil.rmtree(path, ignore_errors=True)
            tmp.rename(path)
            self._prune_checkpoints()
        if self.dist.world_size > 1:
            dist.barrier()
        return path

    def _optimizer_tensors(self) -> tuple[dict[str, Tensor], list[dict[str, Any]]]:
        state = self.optimizer.state_dict()
        tensors = {
            f"state.{idx}.{key}": value.detach().contiguous().cpu()
            for idx, entry in state["state"].items()
            for key, value in entry.items()
        }
        tensors["rng.cpu"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state["param_groups"]]
        return tensors, groups

    def _prune_checkpoints(self) -> None:
        folder = Path(self.config.out_dir) / "checkpoints"
        done = sorted(p for p in folder.glob("step_*") if p.suffix != ".tmp" and (p / "trainer.json").is_file())
        for old in done[: max(0, len(done) - max(1, self.config.keep_checkpoints))]:
            shutil.rmtree(old, ignore_errors=True)

    def load_checkpoint(self, path: str | Path) -> None:
        """Restores model, optimizer, RNG, step, loader position and loss history from a checkpoint folder."""
        path = Path(path)
        meta = json.loads((path / "trainer.json").read_text())
        saved_model = LMModelConfig.from_dict(meta["config"]["model"])
        if saved_model != self.config.model:
            raise ValueError(f"checkpoint {path} holds a different model ({saved_model}) than the config asks for")
        load_model(self.raw_model, str(path / "model.safetensors"), device=str(self.device))
        tensors = load_file(str(path / "optimizer.safetensors"))
        state: dict[int, dict[str, Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("state."):
                _, idx, name = key.split(".", 2)
                state.setdefault(int(idx), {})[name] = value
        groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
        self.optimizer.load_state_dict({"state": state, "param_groups": groups})
        torch.set_rng_state(tensors["rng.cpu"])
        if self.device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        self.train_batches.load_state_dict(meta["loader"])
        self.step, self.tokens_seen = int(meta["step"]), int(meta["tokens_seen"])
        self.history = list(meta["history"])
        log.info("resumed from %s at step %d", path, self.step)
