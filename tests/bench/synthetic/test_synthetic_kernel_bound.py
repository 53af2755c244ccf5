"""Ideal kernel readouts for query-last nearest-neighbour search: feature counts and accuracies that can fail."""

from __future__ import annotations

import numpy as np
import pytest

from xlstm_seq_bench.synthetic import make_task
from xlstm_seq_bench.synthetic.kernel_bound import (
    KERNELS,
    Kernel,
    kernel_bound_lines,
    kernel_features,
    kernel_readout_accuracy,
    sphere_polynomial_dim,
)
from xlstm_seq_bench.synthetic.training import TrainSettings
from xlstm_seq_bench.synthetic.training import test_batches as make_test_batches


@pytest.mark.parametrize(
    ("dim", "degree", "expected"),
    [(2, 0, 1), (2, 1, 3), (2, 5, 11), (3, 1, 4), (3, 3, 16), (4, 1, 5), (4, 4, 55), (4, 16, 1785)],
)
def test_polynomials_on_the_sphere_are_counted(dim, degree, expected):
    # Circle: 1 + 2p (cos, sin up to p); 2-sphere: (p + 1)^2; 3-sphere: sum of (k + 1)^2 for k <= p.
    assert sphere_polynomial_dim(dim, degree) == expected


def test_linear_kernel_needs_only_the_coordinates():
    linear = next(k for k in KERNELS if k.homogeneous)
    assert kernel_features(linear, 4) == 4 and kernel_features(KERNELS[-1], 4) is None
    with pytest.raises(ValueError, match="dim >= 1"):
        sphere_polynomial_dim(0, 2)


def test_a_sharp_kernel_is_the_exact_nearest_neighbour_and_sharper_kernels_do_better():
    task = make_task("nearest_neighbour", dim=3, num_labels=4, num_queries=2)
    settings = TrainSettings(eval_sequences=64, eval_batch_size=32, eval_seed=5)
    batches = make_test_batches(task, 30, settings)
    # exp(1000 s), scaled per query by its largest item so that it does not underflow: an argmax over items.
    argmax_like = Kernel("exp(1000 s)", None, False, lambda s: np.exp(1e3 * (s - s.max(axis=-1, keepdims=True))))
    assert kernel_readout_accuracy(task, batches, argmax_like) == 1.0
    linear, softmax = KERNELS[0], KERNELS[-1]
    assert kernel_readout_accuracy(task, batches, linear) < kernel_readout_accuracy(task, batches, softmax)
    with pytest.raises(TypeError, match="NearestNeighbourSearch"):
        kernel_readout_accuracy(make_task("parity"), batches, linear)


def test_report_lines_hold_one_row_per_kernel_and_length():
    task = make_task("nearest_neighbour", dim=2, num_labels=3, num_queries=2)
    settings = TrainSettings(eval_sequences=16, eval_batch_size=16)
    lines = kernel_bound_lines(task, [6, 12], settings, "nearest_neighbour", {"xlstm[1:0]": 80})
    rows = [line for line in lines if line.startswith("| ") and "kernel K(s)" not in line]
    assert len(rows) == len(KERNELS) and all(row.count("|") == 5 for row in rows)
    assert "80 for xlstm[1:0]" in "\n".join(lines)
