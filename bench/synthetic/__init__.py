"""Synthetic benchmarks of memory and state tracking: task generators, the compared models, the benchmark.

    from xlstm_seq_bench.synthetic import make_task, ModelSpec, build_model
    task = make_task("parity")
    batch = task.sample(batch_size=32, length=40, seed=0)   # inputs, targets, scored: (B, T)
    model = build_model(ModelSpec("xlstm[0:1]", embedding_dim=32), task, context_length=320)
    logits = model(batch.inputs)                              # (B, T, task.num_classes)

The benchmark (``xlstm-seq synthetic benchmark``) lives in :mod:`xlstm_seq_bench.synthetic.benchmark` and is
imported on demand, not here.
"""

from xlstm_seq_bench.synthetic.models import MODEL_KINDS, ModelSpec, SyntheticModel, build_model, count_parameters
from xlstm_seq_bench.synthetic.tasks import (
    IGNORE_INDEX,
    TASKS,
    ModArithmetic,
    MultiQueryAssociativeRecall,
    NearestNeighbourQueryFirst,
    NearestNeighbourSearch,
    Parity,
    SyntheticBatch,
    SyntheticTask,
    make_task,
)

__all__ = [
    "IGNORE_INDEX",
    "MODEL_KINDS",
    "TASKS",
    "ModArithmetic",
    "ModelSpec",
    "MultiQueryAssociativeRecall",
    "NearestNeighbourQueryFirst",
    "NearestNeighbourSearch",
    "Parity",
    "SyntheticBatch",
    "SyntheticModel",
    "SyntheticTask",
    "build_model",
    "count_parameters",
    "make_task",
]
