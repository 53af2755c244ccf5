"""Property-based tests of the stack (hypothesis): its contract over random shapes, gates, resets and states.

Small stacks (an mLSTM and an sLSTM block, torch backend) with random chunk sizes; the gate biases of every block
are drawn from all of [-1000, 1000] (the gates' input weights random too, so that the gates vary over time), as are
the inputs' scale, resets and the state a call starts from. The invariants:

* finite: outputs, the state and the gradients of the input and of every parameter are finite;
* one pass == two passes with the state carried == T calls of ``step``;
* resets == running the segments separately (each from the zero state);
* causality: changing the input at step t (NaN and inf included) changes no output before t (beyond float32
  rounding: a NaN makes the mLSTM run its matrix products on copies, laid out unlike the layer's strided views).

Each property runs twice: ``default`` (derandomized, a fixed number of examples, in the default suite) and
``nightly`` (20 times the examples, random; marked ``slow``: ``pytest -m slow``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from hypothesis import strategies as st
from property_profiles import PROFILES, check_property

from xlstm_seq import xLSTMConfig, xLSTMStack, xLSTMState
from xlstm_seq.mlstm_layer import mLSTMLayer
from xlstm_seq.slstm_layer import sLSTMLayer

E = 8
#: The float32 table row of tests/kernels/tolerances.py.
ATOL = RTOL = 1e-4


EXTREMES = [-1000.0, -100.0, -90.0, -88.0, -40.0, 0.0, 40.0, 88.0, 90.0, 100.0, 1000.0]


def gate_biases(n: int) -> st.SearchStrategy[list[float]]:
    value = st.one_of(st.floats(-1000.0, 1000.0, allow_nan=False, width=32), st.sampled_from(EXTREMES))
    return st.lists(value, min_size=n, max_size=n)


@dataclass
class StackCase:
    stack: xLSTMStack
    x: torch.Tensor
    resets: torch.Tensor | None
    state: xLSTMState | None

    @property
    def T(self) -> int:
        return self.x.shape[1]


@st.composite
def stack_cases(draw, max_T: int = 20):
    chunk_size = draw(st.sampled_from([1, 3, 4, 8]))
    input_gate = draw(st.sampled_from(["exp", "sigmoid"]))
    config = xLSTMConfig(
        embedding_dim=E, num_blocks=2, num_heads=2, slstm_at=[draw(st.integers(0, 1))], backend="torch",
        mlstm=dict(chunk_size=chunk_size, input_gate=input_gate),
    )  # fmt: skip
    torch.manual_seed(draw(st.integers(0, 2**31 - 1)))
    stack = xLSTMStack(config).eval()
    with torch.no_grad():
        for block in stack.blocks:
            layer = block.layer
            if isinstance(layer, mLSTMLayer):
                for gate in (layer.igate, layer.fgate):
                    gate.weight.normal_(0.0, 0.2)
                    gate.bias.copy_(torch.tensor(draw(gate_biases(layer.num_heads))))
            elif isinstance(layer, sLSTMLayer):
                layer.R.normal_(0.0, 0.5)
                for gate in (0, 1):  # i and f, one bias per head spread over its units
                    biases = torch.tensor(draw(gate_biases(layer.num_heads)))
                    layer.b[gate].copy_(biases[:, None].expand_as(layer.b[gate]))
    B, T = draw(st.integers(1, 2)), draw(st.integers(1, max_T))
    x = torch.randn(B, T, E) * draw(st.sampled_from([0.1, 1.0, 30.0]))
    resets = None
    if draw(st.booleans()):
        resets = torch.zeros(B, T, dtype=torch.bool)
        for row in range(B):
            resets[row, sorted(draw(st.sets(st.integers(0, T - 1), max_size=3)))] = True
    state = None
    if draw(st.booleans()):
        with torch.no_grad():
            _, state = stack(torch.randn(B, draw(st.integers(1, 5)), E))
    return StackCase(stack, x, resets, state)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, msg: str) -> None:
    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=RTOL, equal_nan=False, msg=lambda m: f"{msg}\n{m}")


def assert_states_close(a: xLSTMState, b: xLSTMState, msg: str) -> None:
    for index, (block_a, block_b) in enumerate(zip(a.blocks, b.blocks, strict=True)):
        for ta, tb in zip(block_a.tensors(), block_b.tensors(), strict=True):
            assert_close(ta, tb, f"{msg}: block {index} state")


@pytest.mark.parametrize("profile", PROFILES)
def test_outputs_state_and_gradients_are_finite(profile):
    def check(case: StackCase):
        x = case.x.clone().requires_grad_()
        y, state = case.stack(x, case.state, case.resets)
        assert torch.isfinite(y).all(), "y has NaN/inf"
        for block in state.blocks:
            assert all(torch.isfinite(t).all() for t in block.tensors()), "the state has NaN/inf"
        g = torch.Generator().manual_seed(0)
        loss = (y * torch.randn(y.shape, generator=g)).sum()
        loss = loss + sum((t * torch.randn(t.shape, generator=g)).sum() for b in state.blocks for t in b.tensors())
        loss.backward()
        assert torch.isfinite(x.grad).all(), "dx has NaN/inf"
        for name, param in case.stack.named_parameters():
            assert param.grad is None or torch.isfinite(param.grad).all(), f"d{name} has NaN/inf"
        case.stack.zero_grad(set_to_none=True)

    check_property(profile, 30, stack_cases(), check)


@pytest.mark.parametrize("profile", PROFILES)
def test_one_pass_two_passes_and_steps_agree(profile):
    def check(case: StackCase):
        stack, x = case.stack, case.x
        with torch.no_grad():
            y_full, state_full = stack(x, case.state)
            cut = max(1, case.T // 2)
            y1, state = stack(x[:, :cut], case.state)
            y2, state = (y1[:, :0], state) if cut == case.T else stack(x[:, cut:], state)
            assert_close(torch.cat([y1, y2], dim=1), y_full, "two passes: y")
            assert_states_close(state, state_full, "two passes")
            ys, state = [], case.state
            for t in range(case.T):
                y_t, state = stack.step(x[:, t], state)
                ys.append(y_t)
            assert_close(torch.stack(ys, dim=1), y_full, "steps: y")
            assert_states_close(state, state_full, "steps")

    check_property(profile, 30, stack_cases(), check)


@pytest.mark.parametrize("profile", PROFILES)
def test_resets_equal_separate_segments(profile):
    def check(case: StackCase):
        if case.resets is None:
            case.resets = torch.zeros(case.x.shape[0], case.T, dtype=torch.bool)
        with torch.no_grad():
            y, state = case.stack(case.x, case.state, case.resets)
            for row in range(case.x.shape[0]):
                bounds = sorted({0, *case.resets[row].nonzero().flatten().tolist(), case.T})
                seg_state = None
                if case.state is not None and not case.resets[row, 0]:
                    seg_state = case.state.select(slice(row, row + 1))
                ys = []
                for t0, t1 in zip(bounds[:-1], bounds[1:], strict=True):
                    y_seg, seg_state = case.stack(case.x[row : row + 1, t0:t1], seg_state)
                    ys.append(y_seg)
                    seg_state = None if t1 < case.T else seg_state
                assert_close(y[row : row + 1], torch.cat(ys, dim=1), f"row {row}: y")
                assert_states_close(state.select(slice(row, row + 1)), seg_state, f"row {row}")

    check_property(profile, 30, stack_cases(), check)


@pytest.mark.parametrize("profile", PROFILES)
def test_changing_step_t_changes_no_earlier_output(profile):
    @st.composite
    def cases(draw):
        case = draw(stack_cases(max_T=24))
        return case, draw(st.integers(0, case.T - 1)), draw(st.sampled_from([float("nan"), float("inf"), 50.0]))

    def check(arg):
        case, t, value = arg
        with torch.no_grad():
            y, _ = case.stack(case.x, case.state, case.resets)
            x = case.x.clone()
            x[:, t] = value
            y_new, _ = case.stack(x, case.state, case.resets)
        assert torch.isfinite(y_new[:, :t]).all()
        assert_close(y_new[:, :t], y[:, :t], f"outputs before step {t}")

    check_property(profile, 30, cases(), check)


def test_nan_at_step_70_reaches_no_earlier_step_nor_past_a_reset():
    """A NaN input at step 70 of 100 made outputs from step 64 (its chunk's start) NaN; with a reset at step 72 the
    NaN crossed it through the causal convolution's multiplication by zero and the mLSTM's carried state."""
    torch.manual_seed(0)
    stack = xLSTMStack(xLSTMConfig(embedding_dim=32, num_blocks=2, num_heads=2, slstm_at=[1], backend="torch")).eval()
    x = torch.randn(1, 100, 32)
    resets = torch.zeros(1, 100, dtype=torch.bool)
    resets[0, 72] = True
    with torch.no_grad():
        clean, _ = stack(x, resets=resets)
        x[:, 70] = float("nan")
        y, _ = stack(x, resets=resets)
    assert torch.isfinite(y[:, :70]).all()
    assert_close(y[:, :70], clean[:, :70], "before step 70")
    assert torch.isnan(y[:, 70:72]).any(-1).all()
    assert_close(y[:, 72:], clean[:, 72:], "after the reset")
