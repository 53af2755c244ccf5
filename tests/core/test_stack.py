"""The stack's contract: any T, full pass == chunks with state == step loop, resets == separate segments."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from xlstm_seq import mLSTMBlockState, sLSTMBlockState, xLSTMConfig, xLSTMStack, xLSTMState

E = 32
MIXES = {
    "mlstm-only": dict(block_ratio="1:0"),
    "slstm-only": dict(block_ratio="0:1"),
    "mix-1:1": dict(block_ratio="1:1"),
    "sigmoid-gate": dict(slstm_at=[0], mlstm=dict(input_gate="sigmoid", chunk_size=8)),
}


def make_stack(seed: int = 0, **overrides) -> xLSTMStack:
    torch.manual_seed(seed)
    config = xLSTMConfig(**{**dict(embedding_dim=E, num_blocks=2, num_heads=2), **overrides})
    stack = xLSTMStack(config).eval()
    # Give the gates input dependence and the recurrence weight so the equivalences are not trivially met.
    with torch.no_grad():
        for name, param in stack.named_parameters():
            if name.endswith(("igate.weight", "fgate.weight")) or name.endswith(".R"):
                param.normal_(0.0, 0.2)
    return stack


def run_chunked(stack, x, sizes, state=None):
    outputs, start = [], 0
    for size in sizes:
        y, state = stack(x[:, start : start + size], state)
        outputs.append(y)
        start += size
    return torch.cat(outputs, dim=1), state


def assert_states_close(a: xLSTMState, b: xLSTMState, atol=1e-4):
    for block_a, block_b in zip(a.blocks, b.blocks, strict=True):
        assert type(block_a) is type(block_b)
        for ta, tb in zip(block_a.tensors(), block_b.tensors(), strict=True):
            torch.testing.assert_close(ta, tb, atol=atol, rtol=1e-4)


@pytest.mark.parametrize("mix", MIXES.values(), ids=MIXES.keys())
@pytest.mark.parametrize("T", [1, 7, 40])
def test_full_pass_equals_chunks_and_steps(mix, T):
    stack = make_stack(**mix)
    x = torch.randn(3, T, E)
    with torch.no_grad():
        y_full, state_full = stack(x)
        sizes = [max(1, T // 3), T - max(1, T // 3)] if T > 1 else [1]
        y_chunks, state_chunks = run_chunked(stack, x, [s for s in sizes if s > 0])
        steps, state = [], None
        for t in range(T):
            y_t, state = stack.step(x[:, t], state)
            steps.append(y_t)
        y_steps = torch.stack(steps, dim=1)
    torch.testing.assert_close(y_chunks, y_full, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(y_steps, y_full, atol=1e-4, rtol=1e-4)
    assert_states_close(state_chunks, state_full)
    assert_states_close(state, state_full)


@pytest.mark.parametrize("mix", MIXES.values(), ids=MIXES.keys())
def test_resets_equal_separate_segments(mix):
    stack = make_stack(**mix)
    B, T = 2, 30
    x = torch.randn(B, T, E)
    starts = {0: [0, 11, 12], 1: [0, 25]}  # row 0: a reset at 11 and a one-step segment at 12
    resets = torch.zeros(B, T, dtype=torch.bool)
    for row, points in starts.items():
        resets[row, [p for p in points if p > 0]] = True
    # A carried-in state that the reset rows must forget.
    with torch.no_grad():
        _, warm = stack(torch.randn(B, 5, E))
        y, state = stack(x, warm, resets)
        for row, points in starts.items():
            bounds = points + [T]
            for seg_start, seg_end in zip(bounds[:-1], bounds[1:], strict=True):
                initial = warm.select(row) if seg_start == 0 else None
                y_seg, state_seg = stack(x[row : row + 1, seg_start:seg_end], initial)
                torch.testing.assert_close(y[row : row + 1, seg_start:seg_end], y_seg, atol=1e-4, rtol=1e-4)
            assert_states_close(state.select(row), state_seg)


def test_backward_reaches_every_parameter():
    stack = make_stack(block_ratio="1:1")
    stack.train()
    y, state = stack(torch.randn(2, 9, E))
    (y.square().mean() + sum(t.sum() for b in state.blocks for t in b.tensors()[1:])).backward()
    missing = [name for name, p in stack.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no finite gradient for {missing}"


def test_long_sequence_in_one_pass_stays_finite():
    stack = make_stack(block_ratio="1:1")
    with torch.no_grad():
        y, state = stack(50 * torch.randn(1, 10_000, E))
    assert torch.isfinite(y).all()
    assert all(torch.isfinite(t).all() for b in state.blocks for t in b.tensors())


def test_paper_initialisation():
    torch.manual_seed(0)
    stack = xLSTMStack(xLSTMConfig(embedding_dim=E, num_blocks=2, num_heads=4, block_ratio="1:1"))
    fgate_bias = stack.blocks[0].layer.fgate.bias
    torch.testing.assert_close(fgate_bias, torch.linspace(3.0, 6.0, 4))
    assert torch.all(stack.blocks[0].layer.fgate.weight == 0)
    slstm_forget_bias = stack.blocks[1].layer.b[1]
    assert slstm_forget_bias.min() == 3.0 and slstm_forget_bias.max() == 6.0
    assert stack.blocks[0].layer.igate.bias.abs().max() < 0.5
    assert stack.block_types == ["m", "s"]


class TestState:
    def make(self):
        stack = make_stack(block_ratio="1:1")
        with torch.no_grad():
            _, state = stack(torch.randn(4, 6, E))
        return stack, state

    def test_types_and_batch_first(self):
        _, state = self.make()
        assert isinstance(state.blocks[0], mLSTMBlockState) and isinstance(state.blocks[1], sLSTMBlockState)
        assert all(t.shape[0] == 4 and t.dtype == torch.float32 for b in state.blocks for t in b.tensors())
        assert state.batch_size == 4 and len(state) == 2

    def test_pickles_and_deepcopies(self):
        _, state = self.make()
        for clone in (pickle.loads(pickle.dumps(state)), copy.deepcopy(state)):
            assert_states_close(clone, state, atol=0)

    def test_select_reset_detach_cat(self):
        stack, state = self.make()
        picked = state.select([2, 0])
        torch.testing.assert_close(picked.blocks[0].C[1], state.blocks[0].C[0])
        assert state.select(1).batch_size == 1
        mask = torch.tensor([True, False, True, False])
        cleared = state.reset(mask)
        zero = stack.init_state(4)
        for got, fresh, old in zip(cleared.blocks, zero.blocks, state.blocks, strict=True):
            for t_got, t_zero, t_old in zip(got.tensors(), fresh.tensors(), old.tensors(), strict=True):
                torch.testing.assert_close(t_got[mask], t_zero[mask])
                torch.testing.assert_close(t_got[~mask], t_old[~mask])
        assert_states_close(xLSTMState.cat([state.select([0, 1]), state.select([2, 3])]), state, atol=0)
        assert not any(t.requires_grad for b in state.detach().blocks for t in b.tensors())
        assert state.to(torch.float64).blocks[0].C.dtype == torch.float64
        with pytest.raises(ValueError, match=r"reset mask must have shape \(B,\) = \(4,\)"):
            state.reset(torch.tensor([True]))

    def test_reset_state_equals_zero_state(self):
        stack, state = self.make()
        x = torch.randn(4, 5, E)
        with torch.no_grad():
            y_reset, _ = stack(x, state.reset(torch.ones(4, dtype=torch.bool)))
            y_fresh, _ = stack(x)
        torch.testing.assert_close(y_reset, y_fresh)


class TestBadInput:
    stack = make_stack(block_ratio="1:1")

    @pytest.mark.parametrize(
        ("x", "error", "message"),
        [
            (torch.randn(2, 5, E + 1), ValueError, r"x must have shape \(B, T, E\) with E = 32"),
            (torch.randn(5, E), ValueError, r"x must have shape \(B, T, E\)"),
            (torch.randn(2, 0, E), ValueError, "B, T >= 1"),
            (torch.ones(2, 5, E, dtype=torch.long), TypeError, "floating-point"),
            ([[0.0] * E], TypeError, "torch.Tensor"),
        ],
        ids=["wrong-width", "missing-time", "empty", "integer", "list"],
    )
    def test_forward_input(self, x, error, message):
        with pytest.raises(error, match=message):
            self.stack(x)

    def test_step_input(self):
        with pytest.raises(ValueError, match=r"x_t must have shape \(B, E\)"):
            self.stack.step(torch.randn(2, 1, E))

    def test_resets(self):
        x = torch.randn(2, 5, E)
        with pytest.raises(TypeError, match=r"resets must be a bool tensor of shape \(B, T\) = \(2, 5\)"):
            self.stack(x, resets=torch.zeros(2, 5))
        with pytest.raises(ValueError, match=r"resets must have shape \(B, T\) = \(2, 5\), got \(2, 4\)"):
            self.stack(x, resets=torch.zeros(2, 4, dtype=torch.bool))

    def test_state(self):
        x = torch.randn(2, 5, E)
        with torch.no_grad():
            _, state = self.stack(torch.randn(3, 5, E))
        with pytest.raises(ValueError, match="state has batch size 3 but the input has B = 2"):
            self.stack(x, state)
        with pytest.raises(TypeError, match="state must be an xLSTMState"):
            self.stack(x, (torch.zeros(1),))
        other = make_stack(block_ratio="0:1")
        with pytest.raises(TypeError, match=r"state.blocks\[0\] must be mLSTMBlockState"):
            self.stack(x, other.init_state(2))
