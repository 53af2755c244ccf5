"""Synthetic sequence tasks of the xLSTM paper: state tracking, associative recall, nearest-neighbour search.

Every task draws batches of any length, deterministically from a seed, as torch tensors::

    task = make_task("parity")
    batch = task.sample(batch_size=32, length=40, seed=7)
    batch.inputs    # (B, T) int64 token ids, or (B, T, F) float32 features (nearest-neighbour search)
    batch.targets   # (B, T) int64 class ids; IGNORE_INDEX (-100) where no loss is taken
    batch.scored    # (B, T) bool: the positions whose predictions count for accuracy

``targets`` may supervise more positions than ``scored`` counts ("dense" supervision, e.g. the running parity
after every bit), which makes the tasks learnable in a CPU budget; accuracy is always taken where ``scored``
says, and for the state-tracking tasks that is one answer per sequence (the last position).

Tasks (their docstrings give the exact token layout):

- ``parity``: bits in, parity of the bits so far out; scored: the parity of the whole sequence.
- ``modarith``: ``d op d op ... d =`` with digits 0..4 and ``+ - *`` evaluated left to right modulo 5 (no
  precedence, like a pocket calculator); scored: the answer at ``=``.
- ``modarith_brackets``: the same with nested brackets, evaluated innermost first (context-free).
- ``mqar``: multi-query associative recall (Arora et al., Zoology): key-value pairs, then the keys again as
  queries at random later positions; scored: the value at each query.
- ``nearest_neighbour``: a set of unit vectors with labels, then query vectors; scored: the label of the
  nearest set vector (Euclidean) at each query.
- ``nearest_neighbour_query_first``: the same search with one query FIRST, then the labelled set (the thesis's
  layout); dense supervision of the running nearest label; scored: the nearest item's label at the last position.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "IGNORE_INDEX",
    "TASKS",
    "ModArithmetic",
    "MultiQueryAssociativeRecall",
    "NearestNeighbourQueryFirst",
    "NearestNeighbourSearch",
    "Parity",
    "SyntheticBatch",
    "SyntheticTask",
    "make_task",
]

IGNORE_INDEX = -100
"""Target value of positions that take no loss (``torch.nn.functional.cross_entropy``'s default ignore_index)."""


@dataclass(frozen=True)
class SyntheticBatch:
    """One batch of a synthetic task."""

    inputs: Tensor
    """(B, T) int64 token ids, or (B, T, F) float32 feature vectors."""
    targets: Tensor
    """(B, T) int64 class ids in [0, num_classes), IGNORE_INDEX where no loss is taken."""
    scored: Tensor
    """(B, T) bool: positions whose predictions count for accuracy (always a subset of the supervised ones)."""

    @property
    def batch_size(self) -> int:
        return self.inputs.shape[0]

    @property
    def length(self) -> int:
        return self.inputs.shape[1]

    def to(self, device: torch.device | str) -> SyntheticBatch:
        return SyntheticBatch(self.inputs.to(device), self.targets.to(device), self.scored.to(device))


def _rng(seed: int | tuple[int, ...] | list[int]) -> np.random.Generator:
    if isinstance(seed, (tuple, list)):
        seed = [int(s) for s in seed]
        if any(s < 0 for s in seed):
            raise ValueError(f"seed entries must be >= 0, got {seed}")
        return np.random.default_rng(seed)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise TypeError(f"seed must be an int >= 0 or a tuple of them, got {seed!r}")
    return np.random.default_rng(int(seed))


class SyntheticTask(ABC):
    """A task that draws batches of any length (>= ``min_length``) from a seed."""

    name: ClassVar[str]
    input_vocab: int | None = None
    """Number of input token ids (token tasks), None for feature-vector inputs."""
    input_features: int | None = None
    """Width F of feature-vector inputs, None for token tasks."""
    num_classes: int
    """Number of output classes."""

    @property
    def min_length(self) -> int:
        """The shortest sequence this task can make."""
        return 1

    def sample(self, batch_size: int, length: int, seed: int | tuple[int, ...]) -> SyntheticBatch:
        """Draws ``batch_size`` sequences of exactly ``length`` steps; the same seed gives the same batch.

        Args:
            batch_size: B >= 1.
            length: T >= ``min_length``.
            seed: an int >= 0, or a tuple of them (e.g. ``(run_seed, step)``).

        Returns:
            A :class:`SyntheticBatch` on the CPU.
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"{self.name}: batch_size must be an int >= 1, got {batch_size!r}")
        if not isinstance(length, int) or length < self.min_length:
            raise ValueError(f"{self.name}: length must be an int >= {self.min_length}, got {length!r}")
        inputs, targets, scored = self._generate(_rng(seed), batch_size, length)
        dtype = torch.float32 if self.input_features is not None else torch.int64
        return SyntheticBatch(
            torch.as_tensor(inputs, dtype=dtype),
            torch.as_tensor(targets, dtype=torch.int64),
            torch.as_tensor(scored, dtype=torch.bool),
        )

    @abstractmethod
    def _generate(self, rng: np.random.Generator, B: int, T: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns numpy arrays inputs (B, T) or (B, T, F), targets (B, T), scored (B, T)."""


@dataclass
class Parity(SyntheticTask):
    """Parity of a bit string (regular; needs state tracking).

    Inputs: T bits, token ids 0 and 1. Targets: with ``dense`` the parity of bits 0..t at every position t,
    else only at the last position. Scored: the last position (the parity of the whole string).
    """

    dense: bool = True
    """Supervise the running parity at every position (True) or only the final one."""

    name: ClassVar[str] = "parity"
    input_vocab: ClassVar[int] = 2
    num_classes: ClassVar[int] = 2

    def _generate(self, rng, B, T):
        bits = rng.integers(0, 2, size=(B, T))  # (B, T)
        running = np.cumsum(bits, axis=1) % 2  # (B, T)
        scored = np.zeros((B, T), dtype=bool)
        scored[:, -1] = True
        targets = running if self.dense else np.where(scored, running, IGNORE_INDEX)
        return bits, targets, scored


# Token ids of the modular-arithmetic tasks.
_MOD = 5
_PLUS, _MINUS, _TIMES, _OPEN, _CLOSE, _EQUALS, _PAD = 5, 6, 7, 8, 9, 10, 11
_OPS = (_PLUS, _MINUS, _TIMES)
MODARITH_SYMBOLS = ("0", "1", "2", "3", "4", "+", "-", "*", "(", ")", "=", "_")
"""Printable symbol of each modular-arithmetic token id (``_`` is the left padding)."""


def _apply(op: int | np.ndarray, left, right):
    """left op right modulo 5 (op a token id; works on ints and numpy arrays)."""
    return np.where(op == _PLUS, left + right, np.where(op == _MINUS, left - right, left * right)) % _MOD


@dataclass
class ModArithmetic(SyntheticTask):
    """Arithmetic modulo 5 over digits 0..4 with ``+ - *``, evaluated strictly left to right.

    Token ids: digits 0..4, ``+`` 5, ``-`` 6, ``*`` 7, ``(`` 8, ``)`` 9, ``=`` 10, padding 11 (see
    ``MODARITH_SYMBOLS``). A sequence of length T is an expression of odd length (T - 1 or T - 2) followed by
    ``=``, left-padded with one padding token when T is odd. Without brackets: ``d op d op ... d =``; with
    brackets, any operand may be a bracketed sub-expression, evaluated first (e.g. ``2 * ( 3 + 4 ) - 1 = 3``).

    Targets: the answer (0..4) at ``=``; with ``dense`` also, after every operand at bracket depth 0 (a digit or a
    closing bracket), the value of the expression so far. Scored: the ``=`` position (the last one).
    """

    brackets: bool = False
    """Allow nested brackets (a context-free language) or not (a regular one)."""
    dense: bool = True
    """Also supervise the running value after every depth-0 operand."""
    bracket_prob: float = 0.2
    """Chance that an operand opens a bracketed sub-expression (with brackets only)."""

    input_vocab: ClassVar[int] = 12
    num_classes: ClassVar[int] = _MOD

    def __post_init__(self) -> None:
        if not 0.0 <= self.bracket_prob < 1.0:
            raise ValueError(f"bracket_prob must be in [0, 1), got {self.bracket_prob}")

    @property
    def name(self) -> str:  # type: ignore[override]
        return "modarith_brackets" if self.brackets else "modarith"

    @property
    def min_length(self) -> int:
        return 2

    def _generate(self, rng, B, T):
        n = T - 1 if (T - 1) % 2 == 1 else T - 2  # odd expression length
        inputs = np.full((B, T), _PAD, dtype=np.int64)
        targets = np.full((B, T), IGNORE_INDEX, dtype=np.int64)
        start = T - 1 - n
        if self.brackets:
            for row in range(B):
                tokens = _random_expression(rng, n, self.bracket_prob)
                value, running = evaluate_modarith(tokens)
                inputs[row, start : T - 1] = tokens
                targets[row, T - 1] = value
                if self.dense:
                    for pos, val in running:
                        targets[row, start + pos] = val
        else:
            k = (n + 1) // 2  # operands
            digits = rng.integers(0, _MOD, size=(B, k))  # (B, k)
            ops = rng.choice(np.array(_OPS), size=(B, k - 1))  # (B, k - 1)
            inputs[:, start : T - 1 : 2] = digits
            inputs[:, start + 1 : T - 1 : 2] = ops
            value = digits[:, 0]  # (B,)
            if self.dense:
                targets[:, start] = value
            for j in range(1, k):
                value = _apply(ops[:, j - 1], value, digits[:, j])
                if self.dense:
                    targets[:, start + 2 * j] = value
            targets[:, T - 1] = value
        inputs[:, T - 1] = _EQUALS
        scored = np.zeros((B, T), dtype=bool)
        scored[:, -1] = True
        return inputs, targets, scored


def _random_expression(rng: np.random.Generator, n: int, bracket_prob: float) -> list[int]:
    """Token ids of a random bracketed expression of exactly n tokens (n odd): a chain ``term op term ...``
    where a term is a digit or ``( expression )``."""
    tokens: list[int] = []
    remaining = n
    while True:
        if remaining >= 3 and rng.random() < bracket_prob:
            inner = 2 * int(rng.integers(0, (remaining - 2 + 1) // 2)) + 1  # odd, 1..remaining - 2
            tokens.append(_OPEN)
            tokens.extend(_random_expression(rng, inner, bracket_prob))
            tokens.append(_CLOSE)
            remaining -= inner + 2
        else:
            tokens.append(int(rng.integers(0, _MOD)))
            remaining -= 1
        if remaining == 0:
            return tokens
        tokens.append(int(rng.choice(_OPS)))
        remaining -= 1


def evaluate_modarith(tokens: list[int] | np.ndarray) -> tuple[int, list[tuple[int, int]]]:
    """Evaluates an expression of modular-arithmetic token ids (no ``=``, no padding) left to right.

    Returns:
        The value modulo 5, and ``(position, value so far)`` after every operand that ends at depth 0.
    """
    stack: list[tuple[int | None, int | None]] = []  # (value, pending op) of each enclosing level
    value: int | None = None
    op: int | None = None
    running: list[tuple[int, int]] = []
    for pos, tok in enumerate(int(t) for t in tokens):
        if tok == _OPEN:
            stack.append((value, op))
            value, op = None, None
            continue
        if tok in _OPS:
            if value is None:
                raise ValueError(f"operator at position {pos} has no left operand")
            op = tok
            continue
        if tok == _CLOSE:
            if not stack or value is None:
                raise ValueError(f"unbalanced ')' at position {pos}")
            operand = value
            value, op = stack.pop()
        elif 0 <= tok < _MOD:
            operand = tok
        else:
            raise ValueError(f"token id {tok} at position {pos} is not part of an expression")
        value = operand if value is None else int(_apply(op, value, operand))
        if not stack:
            running.append((pos, value))
    if stack or value is None:
        raise ValueError("expression is incomplete (open brackets or empty)")
    return value, running


@dataclass
class MultiQueryAssociativeRecall(SyntheticTask):
    """Multi-query associative recall (MQAR, Arora et al. 2023).

    Token ids: 0 filler, keys 1..K, values K + 1..K + V with K = V = (vocab_size - 1) // 2. A sequence of
    length T opens with ``num_pairs`` pairs ``key value`` (distinct keys, values drawn with replacement); each
    key is then queried once, in random order, at random positions in [2 * num_pairs, T); every other position
    holds the filler. Targets and scored: at each query position, the class ``value id - K - 1`` in [0, V).
    """

    num_pairs: int = 8
    """Key-value pairs per sequence (each queried once)."""
    vocab_size: int = 65
    """Input token ids, filler included (odd sizes use every id)."""

    name: ClassVar[str] = "mqar"

    def __post_init__(self) -> None:
        if self.num_pairs < 1:
            raise ValueError(f"mqar: num_pairs must be >= 1, got {self.num_pairs}")
        if (self.vocab_size - 1) // 2 < self.num_pairs:
            raise ValueError(
                f"mqar: vocab_size {self.vocab_size} leaves {(self.vocab_size - 1) // 2} keys, fewer than "
                f"num_pairs = {self.num_pairs} distinct keys"
            )

    @property
    def num_keys(self) -> int:
        return (self.vocab_size - 1) // 2

    @property
    def input_vocab(self) -> int:  # type: ignore[override]
        return 1 + 2 * self.num_keys

    @property
    def num_classes(self) -> int:  # type: ignore[override]
        return self.num_keys

    @property
    def min_length(self) -> int:
        return 3 * self.num_pairs

    def _generate(self, rng, B, T):
        P, K = self.num_pairs, self.num_keys
        keys = np.argsort(rng.random((B, K)), axis=1)[:, :P] + 1  # (B, P) distinct key ids
        values = rng.integers(0, K, size=(B, P))  # (B, P) value classes
        inputs = np.zeros((B, T), dtype=np.int64)
        inputs[:, 0 : 2 * P : 2] = keys
        inputs[:, 1 : 2 * P : 2] = values + K + 1
        query_pos = np.argsort(rng.random((B, T - 2 * P)), axis=1)[:, :P] + 2 * P  # (B, P) distinct positions
        order = np.argsort(rng.random((B, P)), axis=1)  # (B, P) which pair each query asks for
        rows = np.arange(B)[:, None]
        inputs[rows, query_pos] = np.take_along_axis(keys, order, axis=1)
        targets = np.full((B, T), IGNORE_INDEX, dtype=np.int64)
        targets[rows, query_pos] = np.take_along_axis(values, order, axis=1)
        return inputs, targets, targets != IGNORE_INDEX


@dataclass
class NearestNeighbourSearch(SyntheticTask):
    """Nearest-neighbour search over a labelled set of vectors.

    Inputs (B, T, F) with F = dim + num_labels + 1: the first T - num_queries steps are set items
    ``[x, one_hot(label), 0]`` with x uniform on the unit sphere in ``dim`` dimensions; the last num_queries
    steps are queries ``[q, 0, 1]``. Targets and scored: at each query, the label of the set item nearest to q
    (Euclidean distance; ties have probability zero).
    """

    dim: int = 4
    """Dimension of the vectors."""
    num_labels: int = 4
    """Number of labels (classes)."""
    num_queries: int = 4
    """Queries at the end of each sequence."""

    name: ClassVar[str] = "nearest_neighbour"

    def __post_init__(self) -> None:
        for field_name in ("dim", "num_labels", "num_queries"):
            if getattr(self, field_name) < 1:
                raise ValueError(f"nearest_neighbour: {field_name} must be >= 1, got {getattr(self, field_name)}")

    @property
    def input_features(self) -> int:  # type: ignore[override]
        return self.dim + self.num_labels + 1

    @property
    def num_classes(self) -> int:  # type: ignore[override]
        return self.num_labels

    @property
    def min_length(self) -> int:
        return self.num_queries + 1

    def _generate(self, rng, B, T):
        Q, D, C = self.num_queries, self.dim, self.num_labels
        N = T - Q  # set items
        vectors = rng.standard_normal((B, T, D))
        vectors /= np.linalg.norm(vectors, axis=-1, keepdims=True)  # (B, T, D) unit vectors
        labels = rng.integers(0, C, size=(B, N))  # (B, N)
        items, queries = vectors[:, :N], vectors[:, N:]  # (B, N, D), (B, Q, D)
        distances = ((queries[:, :, None, :] - items[:, None, :, :]) ** 2).sum(-1)  # (B, Q, N)
        nearest = np.argmin(distances, axis=-1)  # (B, Q)
        inputs = np.zeros((B, T, D + C + 1), dtype=np.float32)
        inputs[:, :, :D] = vectors
        inputs[:, :N, D : D + C] = np.eye(C, dtype=np.float32)[labels]
        inputs[:, N:, -1] = 1.0
        targets = np.full((B, T), IGNORE_INDEX, dtype=np.int64)
        targets[:, N:] = np.take_along_axis(labels, nearest, axis=1)
        return inputs, targets, targets != IGNORE_INDEX


@dataclass
class NearestNeighbourQueryFirst(SyntheticTask):
    """Nearest-neighbour search with the query FIRST (the layout of the JKU xLSTM thesis's NNS task).

    Inputs (B, T, F) with F = dim + num_labels + 1: step 0 is the query ``[q, 0, 1]``, steps 1..T-1 are set items
    ``[x, one_hot(label), 0]``, all vectors uniform on the unit sphere in ``dim`` dimensions. Targets: with
    ``dense``, at every item position t the label of the item nearest to q among items 1..t (a running best);
    else only at the last position. Scored: the last position (the nearest item of the whole set; one answer per
    sequence). Nearest is Euclidean, which on the unit sphere is the largest dot product; ties have probability
    zero.

    Unlike :class:`NearestNeighbourSearch` (query after the set), a recurrent model can keep a running best here:
    it knows the query before it reads any item.
    """

    dim: int = 4
    """Dimension of the vectors."""
    num_labels: int = 4
    """Number of labels (classes)."""
    dense: bool = True
    """Supervise the running nearest label at every item position (True) or only at the last one."""

    name: ClassVar[str] = "nearest_neighbour_query_first"

    def __post_init__(self) -> None:
        for field_name in ("dim", "num_labels"):
            value = getattr(self, field_name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{self.name}: {field_name} must be an int >= 1, got {value!r}")
        if not isinstance(self.dense, bool):
            raise ValueError(f"{self.name}: dense must be a bool, got {self.dense!r}")

    @property
    def input_features(self) -> int:  # type: ignore[override]
        return self.dim + self.num_labels + 1

    @property
    def num_classes(self) -> int:  # type: ignore[override]
        return self.num_labels

    @property
    def min_length(self) -> int:
        return 2  # the query and at least one item

    def _generate(self, rng, B, T):
        D, C = self.dim, self.num_labels
        vectors = rng.standard_normal((B, T, D))
        vectors /= np.linalg.norm(vectors, axis=-1, keepdims=True)  # (B, T, D) unit vectors; step 0 is the query
        labels = rng.integers(0, C, size=(B, T - 1))  # (B, N) with N = T - 1 items
        similarity = np.einsum("bnd,bd->bn", vectors[:, 1:], vectors[:, 0])  # (B, N) item . query
        # Index of the best item among the first n + 1 items, for every n: the running argmax of the similarity.
        running_best = np.maximum.accumulate(similarity, axis=1)  # (B, N)
        is_new_best = similarity >= running_best  # (B, N): item n is the best so far
        positions = np.where(is_new_best, np.arange(T - 1)[None, :], 0)  # (B, N)
        best_index = np.maximum.accumulate(positions, axis=1)  # (B, N) index of the best item so far
        running_label = np.take_along_axis(labels, best_index, axis=1)  # (B, N)
        inputs = np.zeros((B, T, D + C + 1), dtype=np.float32)
        inputs[:, :, :D] = vectors
        inputs[:, 1:, D : D + C] = np.eye(C, dtype=np.float32)[labels]
        inputs[:, 0, -1] = 1.0
        targets = np.full((B, T), IGNORE_INDEX, dtype=np.int64)
        scored = np.zeros((B, T), dtype=bool)
        scored[:, -1] = True
        if self.dense:
            targets[:, 1:] = running_label
        else:
            targets[:, -1] = running_label[:, -1]
        return inputs, targets, scored


TASKS: dict[str, type[SyntheticTask]] = {
    "parity": Parity,
    "modarith": ModArithmetic,
    "modarith_brackets": ModArithmetic,
    "mqar": MultiQueryAssociativeRecall,
    "nearest_neighbour": NearestNeighbourSearch,
    "nearest_neighbour_query_first": NearestNeighbourQueryFirst,
}
"""Task names and their classes (``modarith_brackets`` is ``ModArithmetic(brackets=True)``)."""


def make_task(name: str, **params: Any) -> SyntheticTask:
    """The task called ``name`` (a key of ``TASKS``) with the given constructor arguments."""
    if name not in TASKS:
        raise ValueError(f"unknown synthetic task {name!r}; known: {sorted(TASKS)}")
    if name.startswith("modarith"):
        if params.get("brackets", name == "modarith_brackets") != (name == "modarith_brackets"):
            raise ValueError(f"task {name!r} fixes brackets={name == 'modarith_brackets'}; do not pass brackets")
        params = {**params, "brackets": name == "modarith_brackets"}
    try:
        return TASKS[name](**params)
    except TypeError as err:
        names = [f.name for f in dataclasses.fields(TASKS[name])]
        raise ValueError(f"task {name!r} takes parameters {names}, got {sorted(params)}: {err}") from None
