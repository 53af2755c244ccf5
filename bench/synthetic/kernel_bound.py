"""Ideal kernel readouts for nearest-neighbour search with the query after the set (``nearest_neighbour``).

When the query comes last, a linear-memory model (the mLSTM) can only answer with a readout of the form
``score(label c) = sum over items i with label c of K(x_i . q)``: its memory ``sum_i v_i k_i^T`` read with the
query's ``q``, so ``K`` is an inner product of finite feature maps of the item and the query. This module scores
the test sets of the benchmark with such readouts for fixed kernels ``K(s)`` of the cosine ``s = x_i . q``, with
no learning, and reports how many features each kernel needs on the unit sphere. A sharper kernel (closer to an
argmax) needs more features; the measured mLSTM accuracy can be set against the kernel it matches.

    lines = kernel_bound_lines(task, [16, 32, 64], TrainSettings())   # markdown lines for the report
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from xlstm_seq_bench.synthetic.tasks import NearestNeighbourSearch, SyntheticBatch

__all__ = [
    "KERNELS",
    "Kernel",
    "kernel_bound_lines",
    "kernel_features",
    "kernel_readout_accuracy",
    "sphere_polynomial_dim",
]


@dataclass(frozen=True)
class Kernel:
    """A kernel of the cosine s in [-1, 1] between an item and the query."""

    name: str
    degree: int | None
    """Polynomial degree in s (None: not a polynomial, infinitely many features)."""
    homogeneous: bool
    """Only the degree-``degree`` part (K(s) = s: the item's own coordinates) rather than every degree up to it."""
    weight: Callable[[np.ndarray], np.ndarray]
    """Cosines (B, Q, N) -> K(s) up to a positive factor per query (which leaves the argmax alone), finite."""


KERNELS: tuple[Kernel, ...] = (
    Kernel("s (linear attention)", 1, True, lambda s: s),
    Kernel("(1+s)^4", 4, False, lambda s: ((1.0 + s) / 2.0) ** 4),
    Kernel("(1+s)^8", 8, False, lambda s: ((1.0 + s) / 2.0) ** 8),
    Kernel("(1+s)^16", 16, False, lambda s: ((1.0 + s) / 2.0) ** 16),
    Kernel("exp(20 s) (softmax attention)", None, False, lambda s: np.exp(20.0 * (s - 1.0))),
)
"""The kernels of the report, from the linear one of plain linear attention to a softmax-like one."""


def sphere_polynomial_dim(dim: int, degree: int) -> int:
    """Dimension of the polynomials of degree <= ``degree`` on the unit sphere in ``dim`` dimensions: the
    number of features a kernel that is a polynomial of that degree in x . q needs at most (and in general)."""
    if dim < 1 or degree < 0:
        raise ValueError(f"need dim >= 1 and degree >= 0, got dim={dim}, degree={degree}")
    if dim == 1:
        return min(2, degree + 1)  # the sphere is {-1, 1}
    return math.comb(degree + dim - 1, dim - 1) + (math.comb(degree + dim - 2, dim - 1) if degree >= 1 else 0)


def kernel_features(kernel: Kernel, dim: int) -> int | None:
    """Features (q.k width) the kernel needs on the unit sphere in ``dim`` dimensions; None: unbounded."""
    if kernel.degree is None:
        return None
    if kernel.homogeneous:  # the harmonics of exactly that degree
        return sphere_polynomial_dim(dim, kernel.degree) - sphere_polynomial_dim(dim, kernel.degree - 1)
    return sphere_polynomial_dim(dim, kernel.degree)


def kernel_readout_accuracy(task: NearestNeighbourSearch, batches: list[SyntheticBatch], kernel: Kernel) -> float:
    """Accuracy at the queries of the readout ``argmax_c sum_{i: label_i = c} K(x_i . q)`` over ``batches``."""
    if not isinstance(task, NearestNeighbourSearch):
        raise TypeError(f"kernel readouts need a NearestNeighbourSearch task, got {type(task).__name__}")
    D, C, Q = task.dim, task.num_labels, task.num_queries
    correct = counted = 0
    for batch in batches:
        x = batch.inputs.double().numpy()  # (B, T, D + C + 1)
        N = x.shape[1] - Q  # set items
        items, queries, labels = x[:, :N, :D], x[:, N:, :D], x[:, :N, D : D + C]  # (B, N, D), (B, Q, D), (B, N, C)
        s = np.einsum("bqd,bnd->bqn", queries, items)  # (B, Q, N) cosines
        weights = kernel.weight(s)  # (B, Q, N)
        scores = np.einsum("bqn,bnc->bqc", weights, labels)  # (B, Q, C)
        targets = batch.targets[:, N:].numpy()  # (B, Q)
        correct += int((scores.argmax(-1) == targets).sum())
        counted += targets.size
    return correct / counted


def kernel_bound_lines(
    task: NearestNeighbourSearch, lengths: list[int], settings, label: str, qk_widths: dict[str, int]
) -> list[str]:
    """The report's section: accuracy of each kernel readout on the benchmark's test sets, per test length.

    Args:
        task: the query-last task as the benchmark ran it.
        lengths: the test lengths.
        settings: the benchmark's TrainSettings (the test sets' seed and size).
        label: the task's label in the report.
        qk_widths: q.k channels per head of each mLSTM-containing model on this task, for the text.
    """
    from xlstm_seq_bench.synthetic.training import test_batches

    widths = ", ".join(f"{width} for {kind}" for kind, width in qk_widths.items()) or "none here"
    header = " | ".join(f"T={length}" for length in lengths)
    lines = [
        "",
        f"## {label}: what a fixed kernel readout can reach (no learning)",
        "",
        "With the query after the set, a linear memory answers with `sum_i v_i (k_i . q)`: per label, a sum of a "
        "kernel of the item and the query whose feature dimension is at most the q.k width per head "
        f"({widths}). The table scores the same test sets with ideal readouts "
        "`argmax_c sum_{i: label c} K(x_i . q)` for fixed kernels of the cosine s; 'features' is the dimension "
        "of the polynomials on the unit sphere that the kernel spans, i.e. the q.k width it needs. Softmax "
        "attention computes the last row's kind of readout directly. A guide, not a proof: a learned q.k map "
        "need not be one of these kernels.",
        "",
        f"| kernel K(s) | features (dim {task.dim}) | {header} |",
        "|---|---|" + "---|" * len(lengths),
    ]
    for kernel in KERNELS:
        features = kernel_features(kernel, task.dim)
        accs = [kernel_readout_accuracy(task, test_batches(task, length, settings), kernel) for length in lengths]
        cells = " | ".join(f"{a:.3f}" for a in accs)
        lines.append(f"| {kernel.name} | {'unbounded' if features is None else features} | {cells} |")
    return lines
