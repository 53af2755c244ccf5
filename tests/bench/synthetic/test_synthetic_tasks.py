"""Synthetic task generators: determinism by seed, any length, and labels checked against brute force."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from xlstm_seq_bench.synthetic import IGNORE_INDEX, TASKS, make_task
from xlstm_seq_bench.synthetic.tasks import MODARITH_SYMBOLS, evaluate_modarith

LENGTHS = [1, 2, 3, 7, 24, 33, 100]


def _tasks():
    return [make_task(name) for name in TASKS]


@pytest.mark.parametrize("name", sorted(TASKS))
def test_same_seed_same_batch_other_seed_other_batch(name):
    task = make_task(name)
    length = max(task.min_length, 30)
    first, again = task.sample(8, length, seed=3), task.sample(8, length, seed=3)
    other = task.sample(8, length, seed=4)
    for a, b in [(first.inputs, again.inputs), (first.targets, again.targets), (first.scored, again.scored)]:
        assert torch.equal(a, b)
    assert not torch.equal(first.inputs, other.inputs)
    # A tuple seed is another stream, and also reproducible.
    assert torch.equal(task.sample(4, length, seed=(3, 1)).inputs, task.sample(4, length, seed=(3, 1)).inputs)
    assert not torch.equal(task.sample(4, length, seed=(3, 1)).inputs, task.sample(4, length, seed=(3, 2)).inputs)


@pytest.mark.parametrize("name", sorted(TASKS))
@pytest.mark.parametrize("length", LENGTHS)
def test_any_length_gives_consistent_shapes(name, length):
    task = make_task(name)
    if length < task.min_length:
        with pytest.raises(ValueError, match=f"length must be an int >= {task.min_length}"):
            task.sample(2, length, seed=0)
        return
    batch = task.sample(5, length, seed=1)
    assert batch.targets.shape == batch.scored.shape == (5, length)
    assert batch.targets.dtype == torch.int64 and batch.scored.dtype == torch.bool
    if task.input_features is None:
        assert batch.inputs.shape == (5, length) and batch.inputs.dtype == torch.int64
        assert int(batch.inputs.min()) >= 0 and int(batch.inputs.max()) < task.input_vocab
    else:
        assert batch.inputs.shape == (5, length, task.input_features) and batch.inputs.dtype == torch.float32
    supervised = batch.targets != IGNORE_INDEX
    assert batch.scored.any(dim=1).all(), "every sequence must have a scored position"
    assert not (batch.scored & ~supervised).any(), "scored positions must be supervised"
    labels = batch.targets[supervised]
    assert int(labels.min()) >= 0 and int(labels.max()) < task.num_classes


@pytest.mark.parametrize("dense", [True, False])
def test_parity_labels_are_prefix_parities(dense):
    batch = make_task("parity", dense=dense).sample(16, 37, seed=5)
    for bits, targets in zip(batch.inputs.tolist(), batch.targets.tolist(), strict=True):
        assert targets[-1] == sum(bits) % 2
        for t in range(len(bits) - 1):
            assert targets[t] == (sum(bits[: t + 1]) % 2 if dense else IGNORE_INDEX)
    assert batch.scored[:, -1].all() and batch.scored.sum() == 16


def _brute_force_value(text: str) -> int:
    """Left-to-right evaluation mod 5 by rewriting: innermost brackets first, then the leftmost operation."""
    text = text.replace(" ", "")
    while "(" in text:
        text = re.sub(r"\(([^()]*)\)", lambda m: str(_brute_force_value(m.group(1))), text, count=1)
    while True:
        match = re.match(r"^(\d+)([-+*])(\d+)", text)
        if match is None:
            return int(text) % 5
        a, op, b = int(match.group(1)), match.group(2), int(match.group(3))
        value = {"+": a + b, "-": a - b, "*": a * b}[op] % 5
        text = str(value) + text[match.end() :]


@pytest.mark.parametrize("name", ["modarith", "modarith_brackets"])
@pytest.mark.parametrize("length", [2, 3, 10, 41, 160])
def test_modular_arithmetic_answers_match_brute_force(name, length):
    batch = make_task(name).sample(24, length, seed=11)
    saw_brackets = False
    for tokens, targets in zip(batch.inputs.tolist(), batch.targets.tolist(), strict=True):
        text = "".join(MODARITH_SYMBOLS[t] for t in tokens)
        assert text.endswith("=") and text.lstrip("_") == text[(length % 2) :]  # one pad exactly when T is odd
        expression = text.strip("_=")
        saw_brackets |= "(" in expression
        assert ("(" in expression) <= (name == "modarith_brackets")
        assert targets[-1] == _brute_force_value(expression), text
        # Dense targets: the value of the expression up to that operand, wherever one is given.
        offset = length - 1 - len(expression)
        for pos, target in enumerate(targets[:-1]):
            if target != IGNORE_INDEX:
                prefix = expression[: pos - offset + 1]
                assert prefix.count("(") == prefix.count(")"), "dense targets only at bracket depth 0"
                assert target == _brute_force_value(prefix), (text, pos)
    if name == "modarith_brackets" and length >= 41:
        assert saw_brackets


def test_modarith_evaluator_rejects_malformed_expressions():
    with pytest.raises(ValueError, match="unbalanced"):
        evaluate_modarith([1, 5, 2, 9])
    with pytest.raises(ValueError, match="incomplete"):
        evaluate_modarith([8, 1, 5, 2])
    with pytest.raises(ValueError, match="no left operand"):
        evaluate_modarith([5, 2])


@pytest.mark.parametrize("length", [24, 25, 90])
def test_mqar_answers_are_the_values_stored_with_the_queried_keys(length):
    task = make_task("mqar", num_pairs=8, vocab_size=33)
    K = task.num_keys
    batch = task.sample(16, length, seed=2)
    rows = zip(batch.inputs.tolist(), batch.targets.tolist(), batch.scored.tolist(), strict=True)
    for tokens, targets, scored in rows:
        pairs = {tokens[2 * j]: tokens[2 * j + 1] for j in range(8)}
        assert len(pairs) == 8 and all(1 <= k <= K and K < v <= 2 * K for k, v in pairs.items())
        queries = [t for t in range(16, length) if tokens[t] != 0]
        assert sorted(tokens[t] for t in queries) == sorted(pairs), "every key is queried exactly once"
        assert [t for t in range(length) if scored[t]] == queries
        for t in queries:
            assert targets[t] == pairs[tokens[t]] - K - 1


def test_nearest_neighbour_label_is_that_of_the_closest_item():
    task = make_task("nearest_neighbour", dim=3, num_labels=5, num_queries=2)
    batch = task.sample(8, 20, seed=9)
    x = batch.inputs.double().numpy()
    for row in range(8):
        items, queries = x[row, :18], x[row, 18:]
        assert np.allclose(np.linalg.norm(x[row, :, :3], axis=1), 1.0, atol=1e-6)
        assert (items[:, -1] == 0).all() and (queries[:, -1] == 1).all() and (queries[:, 3:8] == 0).all()
        for q in range(2):
            best = min(range(18), key=lambda i: sum((queries[q, d] - items[i, d]) ** 2 for d in range(3)))
            assert int(batch.targets[row, 18 + q]) == int(np.argmax(items[best, 3:8]))
        assert batch.scored[row].tolist() == [False] * 18 + [True, True]


def test_bad_task_arguments_are_named():
    with pytest.raises(ValueError, match="unknown synthetic task 'parityy'"):
        make_task("parityy")
    with pytest.raises(ValueError, match="takes parameters"):
        make_task("parity", num_pairs=3)
    with pytest.raises(ValueError, match="fewer than num_pairs"):
        make_task("mqar", num_pairs=20, vocab_size=21)
    with pytest.raises(ValueError, match="fixes brackets=False"):
        make_task("modarith", brackets=True)
    with pytest.raises(ValueError, match="batch_size must be"):
        make_task("parity").sample(0, 4, seed=0)
    with pytest.raises(TypeError, match="seed must be"):
        make_task("parity").sample(2, 4, seed=-1)


@pytest.mark.parametrize("dense", [True, False])
@pytest.mark.parametrize("length", [2, 3, 17, 64])
def test_query_first_targets_are_the_running_nearest_label_by_brute_force(dense, length):
    task = make_task("nearest_neighbour_query_first", dim=3, num_labels=5, dense=dense)
    batch = task.sample(6, length, seed=13)
    x = batch.inputs.double().numpy()  # (B, T, 3 + 5 + 1)
    assert x.shape == (6, length, 9)
    for row in range(6):
        query, items = x[row, 0], x[row, 1:]
        assert np.allclose(np.linalg.norm(x[row, :, :3], axis=1), 1.0, atol=1e-6)
        assert query[-1] == 1 and (query[3:8] == 0).all(), "step 0 is the query: flag set, no label"
        assert (items[:, -1] == 0).all() and (items[:, 3:8].sum(axis=1) == 1).all(), "items: one-hot label, no flag"
        assert int(batch.targets[row, 0]) == IGNORE_INDEX
        for t in range(1, length):
            # Brute force: Euclidean distance from the query to every item seen so far (items 1..t).
            best = min(range(1, t + 1), key=lambda i: sum((query[d] - x[row, i, d]) ** 2 for d in range(3)))
            expected = int(np.argmax(x[row, best, 3:8]))
            if dense or t == length - 1:
                assert int(batch.targets[row, t]) == expected, (row, t)
            else:
                assert int(batch.targets[row, t]) == IGNORE_INDEX
        assert batch.scored[row].tolist() == [False] * (length - 1) + [True]


def test_query_first_is_its_own_task_and_leaves_the_query_last_layout_alone():
    first = make_task("nearest_neighbour_query_first")
    last = make_task("nearest_neighbour")
    assert first.name == "nearest_neighbour_query_first" and last.name == "nearest_neighbour"
    assert first.input_features == last.input_features == 4 + 4 + 1 and first.num_classes == 4
    assert first.min_length == 2
    # Same seed, same length: a different layout (the flag on step 0 here, on the last num_queries steps there).
    a, b = first.sample(4, 20, seed=1), last.sample(4, 20, seed=1)
    assert (a.inputs[:, 0, -1] == 1).all() and (a.inputs[:, 1:, -1] == 0).all()
    assert (b.inputs[:, -4:, -1] == 1).all() and (b.inputs[:, :-4, -1] == 0).all()


@pytest.mark.parametrize(
    ("params", "error", "message"),
    [
        ({"dim": 0}, ValueError, "dim must be an int >= 1"),
        ({"num_labels": 0}, ValueError, "num_labels must be an int >= 1"),
        ({"dim": 2.5}, ValueError, "dim must be an int >= 1, got 2.5"),
        ({"dense": "yes"}, ValueError, "dense must be a bool"),
        ({"num_queries": 2}, ValueError, "takes parameters"),
    ],
)
def test_query_first_bad_parameters_are_named(params, error, message):
    with pytest.raises(error, match=message):
        make_task("nearest_neighbour_query_first", **params)
    with pytest.raises(ValueError, match="length must be an int >= 2"):
        make_task("nearest_neighbour_query_first").sample(2, 1, seed=0)
