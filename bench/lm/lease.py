"""The 125M xLSTM-vs-GPT-2 comparison as one command for one lent GPU, in phases that each have a time limit.

    xlstm-seq lm benchmark --config configs/lm/lease-125m.yaml --no-track out=$OUT/lease_125m.md

``lm benchmark`` hands a config with a ``lease`` section to :func:`run_lease`. It runs these phases, each in its own
process under its own limit (the process group is killed at the limit, so a hang costs that phase only):

    prepare       tokenises the carried corpus slice into token shards (``data.num_threads`` threads)
    train_gpt2    trains GPT-2 (torch.compile, bf16 on the GPU); writes its summary, loss history and weights
    eval_gpt2     the evaluation suite on the full sets, one task after another, each written when done
    train_xlstm   the same for the xLSTM
    eval_xlstm

GPT-2 goes first: its result is the surer one. A phase ends by the sum of its own and the earlier phases' limits, so
time a phase leaves unused goes to the later ones. Training stops early (and the report says so) when its phase is
about to run out, and keeps what it learned. After every phase the report is written again with what is done: the
markdown at ``out``, a JSON of every number beside it (``<stem>.json``) and the loss curves (``<stem>.png``). Weights
and shards stay under ``runs_dir`` and ``data.out_dir``; nothing else is written next to the report.

A second lease repeats the recipe: ``seeds=[1] lease.previous=<first lease's JSON>`` adds a seed (the runs of both
appear in one table, mean and spread), ``lease.tokens_factor=2`` doubles the tokens (steps and shard budget).
:func:`dry_run_overrides` shrinks the same command to seconds on a CPU (tests, ``LM_LEASE_DRY_RUN=1``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import logging
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xlstm_seq.config import ConfigMixin

if TYPE_CHECKING:
    from xlstm_seq.tracking.provenance import Provenance
    from xlstm_seq_bench.lm.benchmark import LMBenchmarkConfig
    from xlstm_seq_bench.lm.lease_report import LeaseReport

log = logging.getLogger(__name__)

LEASE_KINDS = ("gpt2", "xlstm")
"""Training order: GPT-2 first."""
PHASES = ("prepare", "train_gpt2", "eval_gpt2", "train_xlstm", "eval_xlstm")
FORMAT = "xlstm-seq lm lease v1"
NAMES = {"gpt2": "GPT-2", "xlstm": "xLSTM"}
#: Dense bf16 peak of the lent GPUs (FLOP/s, H100/H200 SXM datasheet), for the planned MFU.
PLAN_PEAK_FLOPS = 989e12


def _default_limits() -> dict[str, float]:
    return {"prepare": 30.0, "train_gpt2": 110.0, "eval_gpt2": 45.0, "train_xlstm": 240.0, "eval_xlstm": 90.0}


@dataclass
class LeaseSettings(ConfigMixin):
    """How ``lm benchmark`` runs as one command on a lent GPU: phases, their time limits, the plan behind the token
    budget, and the switches of a second lease."""

    tokens_factor: int = 1
    """Multiplies ``train.max_steps`` and ``data.max_train_tokens`` (2 doubles the tokens; nothing else changes)."""
    limits_s: dict[str, float] = field(default_factory=_default_limits)
    """Seconds per phase (per seed): prepare, train_gpt2, eval_gpt2, train_xlstm, eval_xlstm. A phase ends by the
    sum of its own and the earlier limits."""
    stop_margin_s: float = 20.0
    """Training stops once fewer than this many seconds of its phase would be left after the next steps: room for
    the final validation and writing the weights."""
    assumed_tokens_per_s: dict[str, float] = field(default_factory=lambda: {"gpt2": 300_000.0, "xlstm": 40_000.0})
    """Training throughput the token budget was planned with; replace it with a lease's measurement."""
    assumed_startup_s: dict[str, float] = field(default_factory=lambda: {"gpt2": 60.0, "xlstm": 110.0})
    """Process start, model build and the first (compiling) step, as planned."""
    previous: str | None = None
    """JSON of an earlier lease with the same recipe: its runs join the table (another seed)."""
    reference_slstm: str = "eager"
    """Where the sLSTM runs its reference loop (no CUDA kernel for its head dim here) and train.compile is on:
    "eager" keeps the sLSTM layers out of torch.compile (its T steps would unroll into the graph, and compiling that
    takes minutes), "compile" compiles them too. The report names what ran."""

    def __post_init__(self) -> None:
        if not isinstance(self.tokens_factor, int) or self.tokens_factor < 1:
            raise ValueError(f"lease.tokens_factor must be an integer >= 1, got {self.tokens_factor!r}")
        self.limits_s = {k: float(v) for k, v in self.limits_s.items()}
        if set(self.limits_s) != set(PHASES):
            raise ValueError(f"lease.limits_s needs exactly the phases {list(PHASES)}, got {sorted(self.limits_s)}")
        if min(self.limits_s.values()) <= 0 or self.stop_margin_s < 0:
            raise ValueError("lease.limits_s must be positive and lease.stop_margin_s >= 0")
        for name in ("assumed_tokens_per_s", "assumed_startup_s"):
            value = {k: float(v) for k, v in getattr(self, name).items()}
            if set(value) != set(LEASE_KINDS) or min(value.values()) <= 0:
                raise ValueError(f"lease.{name} needs a positive number for each of {list(LEASE_KINDS)}, got {value}")
            setattr(self, name, value)
        if self.reference_slstm not in ("eager", "compile"):
            raise ValueError(f"lease.reference_slstm must be 'eager' or 'compile', got {self.reference_slstm!r}")

    @property
    def total_s(self) -> float:
        """The sum of the limits: the longest the phases of one seed may take."""
        return sum(self.limits_s.values())


# Config helpers ------------------------------------------------------------------------------------------------


def scaled(config: LMBenchmarkConfig) -> LMBenchmarkConfig:
    """The config with ``lease.tokens_factor`` applied (steps and shard budget multiplied; factor reset to 1)."""
    factor = config.lease.tokens_factor
    if factor == 1:
        return config
    data = config.data.replace(
        max_train_tokens=None if config.data.max_train_tokens is None else config.data.max_train_tokens * factor
    )
    train = config.train.replace(max_steps=config.train.max_steps * factor)
    lease = config.lease.replace(tokens_factor=1)
    return config.replace(data=data, train=train, lease=lease)


def recipe_of(config: LMBenchmarkConfig) -> dict[str, Any]:
    """What must be equal for runs to share a table: data, training, models and evaluation (not seeds, paths,
    threads, time limits or the device)."""
    data = config.data.to_dict()
    for key in ("out_dir", "num_threads"):
        data.pop(key)
    train = config.train.to_dict()
    for key in ("model", "data_dir", "out_dir", "device", "experiment", "run_name", "seed", "resume", "log_every"):
        train.pop(key, None)
    return {
        "data": data,
        "train": train,
        "gpt2": config.gpt2.to_dict(),
        "xlstm": config.xlstm.to_dict(),
        "eval": config.eval.to_dict(),
    }


def tokens_per_model(config: LMBenchmarkConfig) -> int:
    t = config.train
    return t.max_steps * t.batch_size * t.seq_len * t.grad_accum_steps


def plan(config: LMBenchmarkConfig) -> dict[str, Any]:
    """The token budget against the time limits, from FLOPs per token and the assumed throughputs."""
    import torch

    from xlstm_seq.lm.models import build_model, flops_per_token

    lease, tokens = config.lease, tokens_per_model(config)
    models = {}
    for kind in LEASE_KINDS:
        with torch.device("meta"):
            model = build_model(config.run_config(kind, config.seeds[0]).model)
        fpt = flops_per_token(model, config.train.seq_len)
        tps = lease.assumed_tokens_per_s[kind]
        train_s = tokens / tps
        needed = lease.assumed_startup_s[kind] + train_s + lease.stop_margin_s
        models[kind] = {
            "parameters": model.num_parameters(),
            "flops_per_token": fpt,
            "assumed_tokens_per_s": tps,
            "assumed_mfu": fpt * tps / PLAN_PEAK_FLOPS,
            "assumed_startup_s": lease.assumed_startup_s[kind],
            "planned_train_s": train_s,
            "planned_phase_s": needed,
            "limit_s": lease.limits_s[f"train_{kind}"],
            "margin": lease.limits_s[f"train_{kind}"] / needed,
        }
    return {"tokens_per_model": tokens, "peak_flops": PLAN_PEAK_FLOPS, "total_s": lease.total_s, "models": models}


def dry_run_overrides(work: str | Path) -> list[str]:
    """Dotted overrides that shrink the lease to seconds on a CPU: the same phases and code, a few hundred tokens,
    two-block models, three items per evaluation set, no torch.compile; shards and runs under ``work``."""
    w = Path(work)
    return [
        f"data.out_dir={w}/shards",
        "data.max_train_tokens=600",
        "data.shard_tokens=100000",
        "data.val_fraction=0.2",
        "data.commit_every=8",
        "data.num_threads=1",
        "train.seq_len=16",
        "train.batch_size=2",
        "train.max_steps=6",
        "train.warmup_steps=1",
        "train.eval_batches=2",
        "train.log_every=2",
        "train.compile=false",
        "train.device=cpu",
        "gpt2.context_length=32",
        "gpt2.num_layers=1",
        "gpt2.num_heads=2",
        "gpt2.embedding_dim=16",
        "xlstm.xlstm.embedding_dim=16",
        "xlstm.xlstm.num_blocks=2",
        "xlstm.xlstm.slstm_at=[1]",
        "xlstm.xlstm.num_heads=2",
        "eval.window=32",
        "eval.stride=16",
        "eval.batch_size=4",
        "eval.max_items=3",
        "eval.max_tokens=200",
        f"runs_dir={w}/runs",
    ]


def _run_dir(config: LMBenchmarkConfig, kind: str, seed: int) -> Path:
    return Path(config.run_config(kind, seed).out_dir)


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None, so that the JSON is strict (readable by any parser)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _write_json(path: Path, data: Any) -> None:
    """Writes ``data`` as strict JSON, replacing the file whole (a reader never sees half of it)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_finite(data), indent=1, default=str, allow_nan=False))
    tmp.replace(path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# The driver ----------------------------------------------------------------------------------------------------


def run_phase(command: list[str], limit_s: float) -> tuple[str, float]:
    """Runs ``command`` in its own process group; at ``limit_s`` the whole group is killed.

    Returns:
        ("ok" | "failed (exit N)" | "stopped at its limit (S s)", seconds taken).
    """
    start = time.monotonic()
    proc = subprocess.Popen(command, process_group=0)
    _RUNNING.append(proc)
    try:
        code = proc.wait(timeout=max(limit_s, 0.1))
        status = "ok" if code == 0 else f"failed (exit {code})"
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        status = f"stopped at its limit ({limit_s:.0f} s)"
    finally:
        _RUNNING.remove(proc)
    return status, time.monotonic() - start


_RUNNING: list[subprocess.Popen] = []


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the phase's process group; SIGKILL after 5 s, and to whatever the leader leaves behind."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            continue
        break
    # Compile workers of the phase outlive their leader otherwise.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _phase_command(phase: str, resolved: Path, kind: str | None, seed: int | None, stop_at: float) -> list[str]:
    command = [sys.executable, "-m", "xlstm_seq_bench.lm.lease", phase.split("_")[0], "--config", str(resolved)]
    if kind is not None:
        command += ["--kind", kind, "--seed", str(seed)]
    if phase.startswith("train"):
        command += ["--stop-at", f"{stop_at:.1f}", "--launched-at", f"{time.time():.2f}"]
    return command


def run_lease(config: LMBenchmarkConfig, *, track: bool = True, command: str = "") -> dict[str, Any]:
    """Runs the phases (see the module docstring) and writes the report after each; returns the report's data."""
    from xlstm_seq_bench.lm.lease_report import LeaseReport

    config = scaled(config)
    recipe = recipe_of(config)
    previous = load_previous(config.lease.previous, recipe)
    report = LeaseReport(config, recipe, plan(config), _provenance(config, command), previous)
    runs_dir = Path(config.runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    for seed in config.seeds:  # results of an earlier run in the same folder must not enter this report
        for kind in LEASE_KINDS:
            shutil.rmtree(_run_dir(config, kind, seed), ignore_errors=True)
    resolved = runs_dir / "lease-config.yaml"
    config.to_yaml(resolved, header="the resolved lease config (tokens_factor applied)")
    print(report.plan_text(), flush=True)
    report.write(0.0)

    phases = [("prepare", None, None)]
    phases += [
        (f"{step}_{kind}", kind, seed) for seed in config.seeds for kind in LEASE_KINDS for step in ("train", "eval")
    ]
    start = time.monotonic()
    deadline = start
    current = ("(before the first phase)", 0.0, start)  # label, limit, start of the phase in flight
    previous_handler = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        for name, kind, seed in phases:
            deadline += config.lease.limits_s[name]
            label = name if kind is None else f"{name} seed {seed}"
            blocked = report.blocked(name, kind, seed)
            if blocked:
                report.phase(label, config.lease.limits_s[name], "skipped: " + blocked, 0.0)
                continue
            limit = deadline - time.monotonic()
            stop_at = time.time() + limit - config.lease.stop_margin_s
            print(f"== lease phase {label}: limit {limit:.0f} s", flush=True)
            current = (label, limit, time.monotonic())
            status, seconds = run_phase(_phase_command(name, resolved, kind, seed, stop_at), limit)
            print(f"== lease phase {label}: {status} after {seconds:.1f} s", flush=True)
            report.phase(label, limit, status, seconds)
            report.write(time.monotonic() - start)
    except _Stopped:
        label, limit, began = current
        report.phase(label, limit, "stopped from outside (SIGTERM): the command's own limit", time.monotonic() - began)
        report.write(time.monotonic() - start, final=True)
        raise SystemExit(143) from None
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    data = report.write(time.monotonic() - start, final=True)
    print(report.markdown(time.monotonic() - start), flush=True)
    if track:
        _track_summary(config, report)
    return data


class _Stopped(Exception):
    pass


def _stop_on_sigterm(signum, frame) -> None:
    for proc in list(_RUNNING):
        _kill_group(proc)
    raise _Stopped


def _track_summary(config: LMBenchmarkConfig, report: LeaseReport) -> None:
    from xlstm_seq.tracking import create_tracker

    with create_tracker(config.experiment, run_name="lease-summary", enabled=True, tags=report.provenance.tags()) as t:
        t.log_params({"config": config.to_dict()})
        for kind, runs in report.results().items():
            for key in runs[0] if runs else {}:
                values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
                if values:
                    t.log_metrics({f"{kind}/{key}": float(statistics.fmean(values))})
        t.log_text(report.markdown(0.0), "lm_lease.md")


def _provenance(config: LMBenchmarkConfig, command: str) -> Provenance:
    """The report's provenance: the CUDA device the runs train on, else this CPU; triton and tiktoken named."""
    import torch

    from xlstm_seq.lm.trainer import resolve_device
    from xlstm_seq.tracking.provenance import Provenance, cpu_model, visible_cores

    command, packages = command or "xlstm-seq lm benchmark", ("triton", "tiktoken")
    if resolve_device(config.train.device).type == "cuda":
        return Provenance.capture(command, packages=packages)
    threads = torch.get_num_threads()
    device = f"CPU {cpu_model()} ({visible_cores()} cores visible, {threads} torch thread{'s' if threads > 1 else ''})"
    return Provenance.capture(command, packages=packages, threads=threads, device=device)


def load_previous(path: str | None, recipe: dict[str, Any]) -> dict[str, Any] | None:
    """An earlier lease's JSON whose runs join this table; refused (ValueError) when its recipe differs."""
    if path is None:
        return None
    data = _read_json(Path(path))
    if data is None or data.get("format") != FORMAT:
        raise ValueError(f"lease.previous: {path} is not a lease JSON ({FORMAT})")
    if data.get("recipe") != recipe:
        theirs, ours = data.get("recipe", {}), recipe
        differ = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        raise ValueError(f"lease.previous: {path} ran another recipe (differs in {differ}); only seeds may differ")
    return data


# The phases (each its own process) -----------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Linux: this process gets SIGKILL when the driver dies, so no phase outlives a killed command."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _load(path: str) -> LMBenchmarkConfig:
    from xlstm_seq_bench.lm.benchmark import LMBenchmarkConfig

    return LMBenchmarkConfig.from_yaml(path)


def prepare_phase(config: LMBenchmarkConfig) -> None:
    from xlstm_seq.lm.shards import prepare

    start = time.perf_counter()
    index = prepare(config.data, progress=False)
    print(
        f"prepared {index['num_tokens']['train']:,} train and {index['num_tokens']['val']:,} validation tokens "
        f"from {index['docs_done']:,} documents in {time.perf_counter() - start:.1f} s, "
        f"{config.data.num_threads} tokenizer thread(s)",
        flush=True,
    )


class _ProgressTracker:
    """Tracker that appends every metrics call as one JSON line (what survives a killed training)."""

    def __init__(self, path: Path):
        from xlstm_seq.tracking.base import NullTracker

        self._null = NullTracker()
        self.path = path
        self._file = path.open("a")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._null, name)

    def record(self, data: dict[str, Any]) -> None:
        self._file.write(json.dumps(data, default=str) + "\n")
        self._file.flush()

    def log_metrics(self, metrics: Any, step: int | None = None) -> None:
        self.record({"step": step, **{k: float(v) for k, v in metrics.items()}})

    def close(self, status: str = "FINISHED") -> None:
        self._file.close()


def _backends_used(model: Any, device: Any, autocast_dtype: Any) -> tuple[dict[str, str], bool]:
    """Which kernels the model's layers run on this device, and whether the sLSTM runs its reference loop."""
    import torch

    from xlstm_seq.lm.xlstm_lm import xLSTMLM

    if not isinstance(model, xLSTMLM):
        return {"attention": "F.scaled_dot_product_attention"}, False
    from xlstm_seq.kernels.registry import resolve_backend

    stack = model.config.xlstm
    out = {"mLSTM": resolve_backend("mlstm", stack.mlstm_backend, device)}
    reference = False
    if stack.slstm_block_ids:
        slstm = resolve_backend("slstm", stack.slstm_backend, device)
        reference = slstm == "torch"
        if slstm == "cuda":
            head_dim, kernel = stack.embedding_dim // stack.slstm_num_heads, "fused"
            try:
                from xlstm_seq.kernels.slstm import cuda_loader, fused

                reason = fused.fallback_reason(head_dim, autocast_dtype or torch.float32)
                kernel = cuda_loader.resolve_variant(head_dim)
            except Exception as err:  # the loader's API is the kernels' business; the report only describes it
                reason = f"{type(err).__name__} while asking the CUDA kernels"
            reference = bool(reason)
            slstm = f"cuda (reference loop: {reason})" if reason else f"cuda ({kernel} kernel, head dim {head_dim})"
        out["sLSTM"] = slstm
    return out, reference


def _slstm_layers_eager(model: Any) -> None:
    """Keeps the sLSTM layers of ``model`` out of torch.compile (graph breaks around them; the rest compiles)."""
    import torch

    from xlstm_seq.slstm_layer import sLSTMLayer

    for module in model.modules():
        if isinstance(module, sLSTMLayer):
            module.forward = torch.compiler.disable(module.forward)


def train_phase(config: LMBenchmarkConfig, kind: str, seed: int, stop_at: float, launched_at: float) -> None:
    """Trains one model until max_steps or until ``stop_at`` (a Unix time) is near; writes train.json and the
    weights (model.safetensors) into the run's folder. ``launched_at``: when the driver started this process."""
    import torch
    from safetensors.torch import save_model

    from xlstm_seq.lm.trainer import Trainer

    class _LeaseTrainer(Trainer):
        def save_checkpoint(self):  # the lease keeps the weights only, written once at the end
            return None

    run = config.run_config(kind, seed).replace(checkpoint_every=0)
    folder = Path(run.out_dir)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    tracker = _ProgressTracker(folder / "progress.jsonl")
    trainer = _LeaseTrainer(run, tracker=tracker, track=False)
    info = {
        "kind": kind,
        "seed": seed,
        "parameters": trainer.raw_model.num_parameters(),
        "flops_per_token": trainer.flops_per_token,
        "tokens_per_step": trainer.tokens_per_step,
        "max_steps": run.max_steps,
        "train_windows": trainer.train_batches.num_windows,
        "device": str(trainer.device),
    }
    info["backends"], reference = _backends_used(trainer.raw_model, trainer.device, trainer.autocast_dtype)
    if reference and run.compile and config.lease.reference_slstm == "eager":
        _slstm_layers_eager(trainer.raw_model)  # before the first call: torch.compile traces lazily
        info["backends"]["sLSTM"] += ", outside torch.compile"
    tracker.record({"event": "start", **info})
    log.info("training %s seed %d: %s", kind, seed, json.dumps(info))
    # fit() in segments, so that the time left is checked between them; each call leaves its first step out of
    # its train_s, so the sum below times every step but the first of each segment.
    train_s, timed_steps, startup_s, step_s, segment = 0.0, 0, None, None, 2
    summary: dict[str, Any] = {}
    while trainer.step < run.max_steps:
        if step_s is not None:
            room = int((stop_at - time.time()) / step_s)
            if room < 2:
                break
            segment = min(segment, room)
        first = trainer.step
        summary = trainer.fit(stop_at=min(run.max_steps, first + segment))
        if startup_s is None:  # process start, model build and the compiling first step
            startup_s = time.time() - launched_at - summary["train_s"]
        train_s, timed_steps = train_s + summary["train_s"], timed_steps + trainer.step - first - 1
        if timed_steps:
            step_s = train_s / timed_steps
            segment = int(min(64, max(2, 5.0 / step_s)))
    stopped_early = trainer.step < run.max_steps
    val_loss = summary.get("val_loss", float("nan"))
    if stopped_early or not math.isfinite(val_loss):
        val_loss = trainer.evaluate()
    save_model(trainer.raw_model, str(folder / "model.safetensors"))
    tokens_per_s = timed_steps * trainer.tokens_per_step / train_s if timed_steps else float("nan")
    result = {
        **info,
        "step": trainer.step,
        "stopped_early": stopped_early,
        "tokens_seen": trainer.tokens_seen,
        "train_loss": trainer.history[-1]["loss"] if trainer.history else float("nan"),
        "val_loss": val_loss,
        "train_s": train_s,
        "timed_steps": timed_steps,
        "tokens_per_s_overall": tokens_per_s,
        "startup_s": startup_s,
        "wall_s": time.time() - launched_at,
        "epochs": trainer.step / max(1, trainer.train_batches.num_windows),
        "history": trainer.history,
    }
    if trainer.peak_flops and timed_steps:
        result["mfu"] = trainer.flops_per_token * tokens_per_s / trainer.peak_flops
    if trainer.device.type == "cuda":
        result["max_memory_gib"] = torch.cuda.max_memory_allocated(trainer.device) / 2**30
    _write_json(folder / "train.json", result)
    trainer.close()
    log.info("%s seed %d: %d steps, %.0f tokens/s, val loss %.4f", kind, seed, trainer.step, tokens_per_s, val_loss)


def eval_phase(config: LMBenchmarkConfig, kind: str, seed: int) -> None:
    """Runs the evaluation suite task by task on the trained weights; eval.json is rewritten after each task."""
    from safetensors.torch import load_model

    from xlstm_seq.lm.eval_suite import run_suite
    from xlstm_seq.lm.models import build_model
    from xlstm_seq.lm.trainer import resolve_device

    run = config.run_config(kind, seed)
    folder = Path(run.out_dir)
    device = resolve_device(config.train.device)
    model = build_model(run.model)
    load_model(model, str(folder / "model.safetensors"), device=str(device))
    model = model.to(device).eval()
    result: dict[str, Any] = {"metrics": {}, "tasks_done": [], "seconds": {}}
    for task in config.eval.tasks:
        start = time.perf_counter()
        result["metrics"] |= run_suite(model, config.eval.replace(tasks=[task]))
        result["tasks_done"].append(task)
        result["seconds"][task] = time.perf_counter() - start
        _write_json(folder / "eval.json", result)
        log.info("%s seed %d: %s in %.1f s", kind, seed, task, result["seconds"][task])


def main(argv: list[str] | None = None) -> int:
    """Entry point of the phases: ``python -m xlstm_seq_bench.lm.lease PHASE --config RESOLVED.yaml ...``, and
    ``dry-run-overrides WORK`` (prints :func:`dry_run_overrides`, one per line)."""
    parser = argparse.ArgumentParser(prog="python -m xlstm_seq_bench.lm.lease", description=__doc__.split("\n")[0])
    parser.add_argument("phase", choices=("prepare", "train", "eval", "dry-run-overrides"))
    parser.add_argument("work", nargs="?", help="dry-run-overrides: the folder for shards and runs")
    parser.add_argument("--config", help="the resolved lease config the driver wrote")
    parser.add_argument("--kind", choices=LEASE_KINDS)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--stop-at", type=float, help="train: Unix time by which training must have stopped")
    parser.add_argument("--launched-at", type=float, help="train: Unix time at which the driver started the phase")
    args = parser.parse_args(argv)
    if args.phase == "dry-run-overrides":
        print("\n".join(dry_run_overrides(args.work or "runs/lm/lease-dry-run")))
        return 0
    _die_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stdout)
    config = _load(args.config)
    if args.phase == "prepare":
        prepare_phase(config)
    elif args.phase == "train":
        stop_at = args.stop_at if args.stop_at is not None else math.inf
        train_phase(config, args.kind, args.seed, stop_at, args.launched_at or time.time())
    else:
        eval_phase(config, args.kind, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
