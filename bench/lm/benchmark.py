"""`xlstm-seq lm benchmark`: trains GPT-2 and the xLSTM LM on identical data and budget, evaluates both with
the same suite, and writes the survey's table with our numbers beside the survey's (markdown + MLflow).

    xlstm-seq lm benchmark --config configs/lm/tiny.yaml          # CPU, minutes
    xlstm-seq lm benchmark --config configs/lm/scaled-125m.yaml   # one GPU, >= 100M tokens per model
    xlstm-seq lm benchmark --config configs/lm/lease-125m.yaml    # one lent GPU, one ~9-minute command

A config with a ``lease`` section runs as timed phases in their own processes (:mod:`xlstm_seq_bench.lm.lease`).

The survey's numbers come from ``survey_125m.yaml`` beside this file (with their source); the header of the report
is the run's :class:`~xlstm_seq.tracking.provenance.Provenance`.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xlstm_seq.config import ConfigMixin, xLSTMConfig
from xlstm_seq.lm.eval_suite import EvalSettings, run_suite
from xlstm_seq.lm.gpt2 import GPT2Config
from xlstm_seq.lm.models import LMModelConfig
from xlstm_seq.lm.shards import PrepareConfig, prepare
from xlstm_seq.lm.trainer import TrainConfig, Trainer
from xlstm_seq.lm.xlstm_lm import xLSTMLMConfig
from xlstm_seq.tracking.provenance import Provenance, cpu_model, visible_cores
from xlstm_seq_bench.lm.lease import LeaseSettings

log = logging.getLogger(__name__)

KINDS = ("xlstm", "gpt2")
#: The survey's published table (125M xLSTM vs 124M GPT-2, 0.52B FineWeb-Edu tokens) and its source.
SURVEY_FILE = Path(__file__).with_name("survey_125m.yaml")


@dataclass(frozen=True)
class SurveyTable:
    """The survey's numbers as ``survey_125m.yaml`` holds them."""

    rows: tuple[tuple[str, str, bool, float, float], ...]
    """(metric key, label, higher is better, survey xLSTM, survey GPT-2) per row of the comparison table."""
    budget: str
    """The survey's training budget."""
    throughput: str
    """The survey's measured throughput of xLSTM relative to GPT-2."""
    source: str
    """Where the numbers come from."""


def survey_table(path: Path = SURVEY_FILE) -> SurveyTable:
    """The survey's published table, read from ``survey_125m.yaml``."""
    from xlstm_seq.config_io import load_yaml

    data = load_yaml(path)
    rows = tuple((r["metric"], r["label"], r["higher_is_better"], r["xlstm"], r["gpt2"]) for r in data["rows"])
    return SurveyTable(rows=rows, budget=data["budget"], throughput=data["throughput"], source=data["source"])


EXTRA_ROWS = (
    ("val_loss", "validation loss (held-out shard)", False),
    ("lambada/accuracy", "LAMBADA last-word accuracy", True),
    ("lambada/target_ppl", "LAMBADA target-word perplexity", False),
    ("hellaswag/acc", "HellaSwag acc (unnormalised)", True),
    ("wikitext-2/ppl_rare", "WikiText-2 word ppl, rare words (< 100)", False),
    ("wikitext-2/ppl_medium", "WikiText-2 word ppl, medium (100-1,000)", False),
    ("wikitext-2/ppl_frequent", "WikiText-2 word ppl, frequent (> 1,000)", False),
)


def _default_xlstm() -> xLSTMLMConfig:
    return xLSTMLMConfig(xlstm=xLSTMConfig(embedding_dim=768, num_blocks=24, slstm_at=[3, 20], num_heads=4))


@dataclass
class LMBenchmarkConfig(ConfigMixin):
    """Settings of ``xlstm-seq lm benchmark``: data, one training recipe for both models, the two sizes."""

    data: PrepareConfig = field(default_factory=PrepareConfig)
    """Token shards to prepare (resumed or reused when already there)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """The training recipe shared by both models; its model, data_dir, out_dir and seed are set per run."""
    gpt2: GPT2Config = field(default_factory=GPT2Config)
    """The GPT-2 baseline."""
    xlstm: xLSTMLMConfig = field(default_factory=_default_xlstm)
    """The xLSTM LM."""
    eval: EvalSettings = field(default_factory=EvalSettings)
    """Evaluation tasks and protocol."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """One training run per model and seed; the table shows mean and spread over seeds."""
    runs_dir: str = "runs/lm/benchmark"
    """Checkpoints go to runs_dir/<kind>-seed<seed> (cleared at the start of each run)."""
    out: str = "benchmarks/lm/tiny.md"
    """Markdown report."""
    experiment: str = "xlstm-seq-lm-benchmark"
    """MLflow experiment of the training runs and the summary run."""
    lease: LeaseSettings | None = None
    """Set: run as one command on a lent GPU, in phases with time limits (:mod:`xlstm_seq_bench.lm.lease`)."""

    def __post_init__(self) -> None:
        for name, cls in (("data", PrepareConfig), ("train", TrainConfig), ("gpt2", GPT2Config)):
            if isinstance(getattr(self, name), dict):
                setattr(self, name, cls.from_dict(getattr(self, name)))
        if isinstance(self.xlstm, dict):
            self.xlstm = xLSTMLMConfig.from_dict(self.xlstm)
        if isinstance(self.eval, dict):
            self.eval = EvalSettings.from_dict(self.eval)
        if isinstance(self.lease, dict):
            self.lease = LeaseSettings.from_dict(self.lease)
        self.seeds = list(self.seeds)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list without repeats, got {self.seeds}")
        if self.gpt2.vocab_size != self.xlstm.vocab_size:
            raise ValueError(
                f"both models need one vocabulary: gpt2 {self.gpt2.vocab_size} != xlstm {self.xlstm.vocab_size}"
            )
        if self.eval.window > self.gpt2.context_length:
            raise ValueError(
                f"eval.window ({self.eval.window}) exceeds the GPT-2 context_length ({self.gpt2.context_length})"
            )
        # Building each run's config validates it now (e.g. seq_len against GPT-2's context) instead of mid-run.
        for kind in KINDS:
            self.run_config(kind, self.seeds[0])

    def run_config(self, kind: str, seed: int) -> TrainConfig:
        """The training config of one model and seed."""
        if kind == "gpt2":
            model = LMModelConfig(kind=kind, gpt2=self.gpt2)
        else:
            model = LMModelConfig(kind=kind, xlstm=self.xlstm)
        return self.train.replace(
            model=model,
            data_dir=self.data.out_dir,
            out_dir=str(Path(self.runs_dir) / f"{kind}-seed{seed}"),
            seed=seed,
            resume=False,
            experiment=self.experiment,
            run_name=f"{kind}-seed{seed}",
        )


def run_benchmark(config: LMBenchmarkConfig, *, track: bool = True, command: str = "") -> dict[str, Any]:
    """Prepares the data, trains and evaluates both models for every seed, writes ``config.out``; a config with a
    ``lease`` section goes to :func:`xlstm_seq_bench.lm.lease.run_lease`."""
    from xlstm_seq.tracking import create_tracker

    if config.lease is not None:
        from xlstm_seq_bench.lm.lease import run_lease

        return run_lease(config, track=track, command=command)

    provenance = _provenance(config, command)
    started = _dt.datetime.now(_dt.timezone.utc)
    index = prepare(config.data)
    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
    for seed in config.seeds:
        for kind in KINDS:
            run = config.run_config(kind, seed)
            shutil.rmtree(run.out_dir, ignore_errors=True)
            trainer = Trainer(run, track=track)
            try:
                summary = trainer.fit()
                metrics = run_suite(trainer.raw_model, config.eval)
                trainer.tracker.log_metrics({f"eval/{k}": float(v) for k, v in metrics.items()}, step=trainer.step)
            finally:
                trainer.close()
            results[kind].append({**summary, **metrics, "val_loss": summary["val_loss"]})
            log.info("%s seed %d: %s", kind, seed, json.dumps(results[kind][-1]))
    provenance = provenance.finish()
    wall_min = (_dt.datetime.now(_dt.timezone.utc) - started).total_seconds() / 60
    markdown = render_markdown(config, results, index, provenance, wall_min)
    Path(config.out).parent.mkdir(parents=True, exist_ok=True)
    Path(config.out).write_text(markdown)
    tags = provenance.tags()
    with create_tracker(config.experiment, run_name="benchmark-summary", enabled=track, tags=tags) as tracker:
        tracker.log_params({"config": config.to_dict()})
        for kind in KINDS:
            tracker.log_metrics({f"{kind}/{k}": _mean(results[kind], k) for k in results[kind][0]})
        tracker.log_text(markdown, "lm_benchmark.md")
    print(markdown)
    return {"results": results, "markdown": markdown}


def _mean(runs: list[dict[str, float]], key: str) -> float:
    return float(statistics.fmean(float(r[key]) for r in runs))


def _cell(runs: list[dict[str, float]], key: str, digits: int) -> str:
    values = [float(r[key]) for r in runs if key in r]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _verdict(results: dict[str, list[dict[str, float]]], key: str, higher_better: bool) -> str:
    """Which model is better on ``key``, and whether the gap exceeds the seed spread."""
    xs = [float(r[key]) for r in results["xlstm"] if key in r]
    gs = [float(r[key]) for r in results["gpt2"] if key in r]
    if not xs or not gs:
        return "-"
    gap = statistics.fmean(xs) - statistics.fmean(gs)
    better = "xLSTM" if (gap > 0) == higher_better else "GPT-2"
    if gap == 0:
        return "tie"
    if len(xs) > 1 and len(gs) > 1:
        spread = max(statistics.stdev(xs), statistics.stdev(gs))
        if abs(gap) <= 2 * spread:
            return f"{better} (within noise: gap {abs(gap):.3g} <= 2 sd {2 * spread:.3g})"
    elif len(xs) == 1:
        return f"{better} (one seed: spread unknown)"
    return better


def render_markdown(
    config: LMBenchmarkConfig,
    results: dict[str, list[dict[str, float]]],
    index: dict[str, Any],
    provenance: Provenance,
    wall_min: float,
    survey: SurveyTable | None = None,
) -> str:
    """The benchmark report: the provenance header, setup, the survey's table beside ours, throughput, extra
    metrics. ``survey`` defaults to :func:`survey_table`."""
    survey = survey or survey_table()
    t = config.train
    first = {kind: results[kind][0] for kind in KINDS}
    tokens = int(first["xlstm"]["tokens_seen"])
    lines = [
        "# Language modelling: xLSTM vs GPT-2",
        "",
        *provenance.markdown(notes=[f"wall time {wall_min:.1f} min"]),
        "",
        "## Setup",
        "",
        f"- Data: sources {config.data.sources}, GPT-2 BPE, {index['num_tokens']['train']:,} train tokens in the "
        f"shards, {index['num_tokens']['val']:,} held-out validation tokens ({config.data.val_fraction:.1%} of "
        "documents, chosen by a hash of the document key).",
        f"- Training (identical for both): {t.max_steps} steps of {t.batch_size} x {t.seq_len} tokens x "
        f"{t.grad_accum_steps} accumulation = {tokens:,} tokens per model; AdamW lr {t.learning_rate:g} "
        f"(warmup {t.warmup_steps}, cosine to {t.min_lr:g} at step {t.max_steps}), weight decay "
        f"{t.weight_decay:g} on matrices, clip {t.grad_clip:g}, precision {t.precision}, compile {t.compile}.",
        f"- Models: xLSTM {first['xlstm']['parameters'] / 1e6:.2f}M parameters "
        f"({config.xlstm.xlstm.num_blocks} blocks, width {config.xlstm.xlstm.embedding_dim}, sLSTM at "
        f"{config.xlstm.xlstm.slstm_block_ids}, {config.xlstm.xlstm.num_heads} heads, backend "
        f"{config.xlstm.xlstm.backend}); GPT-2 {first['gpt2']['parameters'] / 1e6:.2f}M "
        f"({config.gpt2.num_layers} layers, {config.gpt2.num_heads} heads, width {config.gpt2.embedding_dim}).",
        f"- Seeds: {config.seeds}. Evaluation: window {config.eval.window}, stride {config.eval.stride}; "
        f"HellaSwag/LAMBADA items: {config.eval.max_items or 'all'}; perplexity tokens per text: "
        f"{config.eval.max_tokens or 'all'}.",
        "",
        "## The survey's table and ours",
        "",
        "| metric | survey xLSTM | survey GPT-2 | our xLSTM | our GPT-2 | better here |",
        "|---|---|---|---|---|---|",
    ]
    for key, label, higher, survey_x, survey_g in survey.rows:
        digits = 4 if higher else 2
        lines.append(
            f"| {label} | {survey_x} | {survey_g} | {_cell(results['xlstm'], key, digits)} | "
            f"{_cell(results['gpt2'], key, digits)} | {_verdict(results, key, higher)} |"
        )
    lines += [
        "",
        f"The survey's budget was {survey.budget}; ours is the one above, on other text, so compare the",
        "direction of each row, not the numbers.",
        "",
        "## Throughput (training, same device and settings)",
        "",
        "| model | tokens/s | relative to GPT-2 |",
        "|---|---|---|",
    ]
    x_tps, g_tps = _mean(results["xlstm"], "tokens_per_s_overall"), _mean(results["gpt2"], "tokens_per_s_overall")
    lines += [
        f"| xLSTM | {_cell(results['xlstm'], 'tokens_per_s_overall', 0)} | {x_tps / g_tps:.2f}x |",
        f"| GPT-2 | {_cell(results['gpt2'], 'tokens_per_s_overall', 0)} | 1.00x |",
        "",
        "Optimiser steps only (validation and checkpoints excluded), first step of each run left out. The survey",
        f"measured {survey.throughput}.",
        "",
        *more_metrics_lines(results),
    ]
    return "\n".join(lines)


def more_metrics_lines(results: dict[str, Any]) -> list[str]:
    """The "More metrics" section of a report (both models on ``EXTRA_ROWS``), ending in a blank line."""
    lines = ["## More metrics", "", "| metric | our xLSTM | our GPT-2 | better here |", "|---|---|---|---|"]
    for key, label, higher in EXTRA_ROWS:
        digits = 4 if higher or key == "val_loss" else 2
        lines.append(
            f"| {label} | {_cell(results['xlstm'], key, digits)} | {_cell(results['gpt2'], key, digits)} | "
            f"{_verdict(results, key, higher)} |"
        )
    return [*lines, ""]


def _provenance(config: LMBenchmarkConfig, command: str) -> Provenance:
    """The report's provenance, taken as the benchmark starts: the CUDA device the runs train on, else this CPU."""
    import torch

    from xlstm_seq.lm.trainer import resolve_device

    command = command or "xlstm-seq lm benchmark"
    if resolve_device(config.train.device).type == "cuda":
        return Provenance.capture(command)
    threads = torch.get_num_threads()
    device = f"CPU {cpu_model()} ({visible_cores()} cores visible, {threads} torch thread{'s' if threads > 1 else ''})"
    return Provenance.capture(command, threads=threads, device=device)
