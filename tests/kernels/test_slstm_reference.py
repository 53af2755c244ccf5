"""sLSTM reference: gradients match finite differences, state carrying, steps, resets, extremes, dtypes."""

from __future__ import annotations

import pytest
import torch
from tolerances import assert_close

from xlstm_seq.kernels.slstm import slstm, slstm_step
from xlstm_seq.kernels.slstm.naive import slstm_recurrent, slstm_step_naive


def _args(x: dict) -> tuple:
    return x["gates_x"], x["R"], x["b"], x["initial_state"], x["resets"]


def _assert_same(out, ref, msg: str = "") -> None:
    (h, state), (h_ref, state_ref) = out, ref
    assert_close(h, h_ref, msg=f"{msg} h")
    for name, s, s_ref in zip("cnmh", state, state_ref, strict=True):
        assert_close(s, s_ref, msg=f"{msg} state {name}")


def _slstm_by_hand(gates_x, R, b, state):
    """The recurrence written out with explicit per-head matmuls, independent of the kernel's einsum."""
    B, T, _, H, D = gates_x.shape
    c, n, m, h = state
    hs = []
    for t in range(T):
        rec = torch.stack([h[:, head] @ R[head].reshape(D, 4 * D) for head in range(H)], dim=1)  # (B,H,4D)
        pre = gates_x[:, t] + rec.reshape(B, H, 4, D).transpose(1, 2) + b  # (B,4,H,D)
        i_pre, f_pre, z_pre, o_pre = pre.unbind(1)
        logf = torch.nn.functional.logsigmoid(f_pre)
        m_new = torch.maximum(logf + m, i_pre)
        i_g, f_g = torch.exp(i_pre - m_new), torch.exp(logf + m - m_new)
        c, n, m = f_g * c + i_g * torch.tanh(z_pre), f_g * n + i_g, m_new
        h = torch.sigmoid(o_pre) * c / n
        hs.append(h)
    return torch.stack(hs, dim=1), (c, n, m, h)


def test_matches_the_recurrence_written_out(slstm_inputs):
    x = slstm_inputs(T=9, H=3, D=4, with_state=True)
    _assert_same(slstm_recurrent(*_args(x)[:4]), _slstm_by_hand(*_args(x)[:4]))


@pytest.mark.parametrize("with_resets", [False, True], ids=["no-resets", "resets"])
def test_gradcheck(slstm_inputs, with_resets):
    """All inputs: gates_x, R, b and every part of the initial state."""
    x = slstm_inputs(B=2, T=4, H=2, D=2, with_state=True, seed=1)
    resets = None
    if with_resets:
        resets = torch.zeros(2, 4, dtype=torch.bool)
        resets[1, 2] = True
    tensors = [x["gates_x"], x["R"], x["b"], *x["initial_state"]]
    tensors = [t.requires_grad_() for t in tensors]

    def fn(gates_x, R, b, c, n, m, h):
        out, state = slstm_recurrent(gates_x, R, b, (c, n, m, h), resets)
        return (out, *state)

    assert torch.autograd.gradcheck(fn, tensors, eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("split", [1, 13], ids=lambda s: f"split{s}")
def test_split_sequence_with_state_carried_equals_one_pass(slstm_inputs, split):
    x = slstm_inputs(T=30, with_state=True, with_resets=True)
    gates_x, R, b, state, resets = _args(x)
    full = slstm(gates_x, R, b, state, resets)
    h1, state = slstm(gates_x[:, :split], R, b, state, resets[:, :split])
    h2, state = slstm(gates_x[:, split:], R, b, state, resets[:, split:])
    _assert_same((torch.cat([h1, h2], dim=1), state), full)


@pytest.mark.parametrize("step_fn", [slstm_step_naive, slstm_step], ids=["step_naive", "step"])
def test_steps_equal_full_pass(slstm_inputs, step_fn):
    x = slstm_inputs(T=12, with_state=True)
    gates_x, R, b, state, _ = _args(x)
    full = slstm(gates_x, R, b, state)
    hs = []
    for t in range(gates_x.shape[1]):
        h_t, state = step_fn(gates_x[:, t], R, b, state)
        hs.append(h_t)
    _assert_same((torch.stack(hs, dim=1), state), full)


def test_step_from_zero_state(slstm_inputs):
    x = slstm_inputs(T=1)
    h, state = slstm(x["gates_x"], x["R"], x["b"])
    h_t, state_t = slstm_step(x["gates_x"][:, 0], x["R"], x["b"])
    _assert_same((h_t[:, None], state_t), (h, state))


@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "initial-state"])
def test_resets_equal_separate_segments(slstm_inputs, with_state):
    T = 25
    x = slstm_inputs(B=2, T=T, with_state=with_state)
    resets = torch.zeros(2, T, dtype=torch.bool)
    resets[0, [0, 7, 24]] = True
    resets[1, [11]] = True
    h, state_full = slstm_recurrent(*_args(x)[:4], resets)
    for b in range(2):
        bounds = sorted({0, *resets[b].nonzero().flatten().tolist(), T})
        hs = []
        for seg, (t0, t1) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            state = None
            if seg == 0 and not resets[b, 0] and x["initial_state"] is not None:
                state = tuple(s[b : b + 1] for s in x["initial_state"])
            h_seg, state = slstm_recurrent(x["gates_x"][b : b + 1, t0:t1], x["R"], x["b"], state)
            hs.append(h_seg)
        assert_close(h[b : b + 1], torch.cat(hs, dim=1), msg=f"batch {b} h")
        for s, s_ref in zip(state_full, state, strict=True):
            assert_close(s[b : b + 1], s_ref, msg=f"batch {b} final state")


def test_extreme_gates_long_sequence_stay_finite():
    """Gate pre-activations of +-50 for T = 10,000: outputs and final state finite."""
    g = torch.Generator().manual_seed(0)
    B, T, H, D = 2, 10_000, 2, 4
    gates_x = torch.randint(0, 2, (B, T, 4, H, D), generator=g).float() * 100 - 50
    R = torch.randn(H, D, 4, D, generator=g)
    b = torch.randn(4, H, D, generator=g)
    h, state = slstm(gates_x, R, b)
    assert torch.isfinite(h).all()
    assert all(torch.isfinite(s).all() for s in state)
    assert (h.abs() <= 1).all()


def test_gradients_finite_with_extreme_gates():
    g = torch.Generator().manual_seed(0)
    B, T, H, D = 1, 300, 2, 4
    gates_x = (torch.randint(0, 2, (B, T, 4, H, D), generator=g).float() * 100 - 50).requires_grad_()
    R = torch.randn(H, D, 4, D, generator=g).requires_grad_()
    b = torch.randn(4, H, D, generator=g).requires_grad_()
    h, state = slstm(gates_x, R, b)
    (h.sum() + sum(s.sum() for s in state)).backward()
    for t in (gates_x, R, b):
        assert torch.isfinite(t.grad).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_low_precision_inputs(slstm_inputs, dtype):
    """h in gates_x's dtype, state float32; R and b may stay float32 (autocast) while gates_x is low precision."""
    x = slstm_inputs(T=10, with_state=True, with_resets=True)
    gates_low = x["gates_x"].to(dtype)
    R32, b32 = x["R"].float(), x["b"].float()
    h_ref, state_ref = slstm(gates_low.double(), R32.double(), b32.double(), x["initial_state"], x["resets"])
    h, state = slstm(gates_low, R32, b32, x["initial_state"], x["resets"])
    assert h.dtype == dtype
    assert all(s.dtype == torch.float32 for s in state)
    assert_close(h, h_ref, dtype)
    for s, s_ref in zip(state, state_ref, strict=True):
        assert_close(s, s_ref, torch.float32)


@pytest.mark.parametrize(
    ("i_value", "f_value"), [(-100.0, None), (-1000.0, None), (-88.0, 88.0)], ids=["i-100", "i-1000", "i-88-f+88"]
)
@pytest.mark.parametrize("with_resets", [False, True], ids=["no-resets", "resets"])
def test_gradients_finite_when_the_first_write_lies_far_below_an_empty_memory(i_value, f_value, with_resets):
    """The zero state's m = 0 was the stabiliser the first write was measured against: an input gate of -100 was
    stored as exp(-100) = 0, h divided underflowed numbers, and 1/n overflowed in the backward (every gradient of
    gates_x, R and b NaN while h was finite)."""
    g = torch.Generator().manual_seed(0)
    B, T, H, D = 2, 20, 2, 4
    gates_x = torch.randn(B, T, 4, H, D, generator=g)
    gates_x[:, :, 0] = i_value
    if f_value is not None:
        gates_x[:, :, 1] = f_value
    resets = None
    if with_resets:
        resets = torch.zeros(B, T, dtype=torch.bool)
        resets[0, [7, 13]] = True
    leaves = [gates_x.requires_grad_(), (torch.randn(H, D, 4, D, generator=g) * 0.3).requires_grad_()]
    leaves.append(torch.zeros(4, H, D, requires_grad=True))
    h, state = slstm_recurrent(*leaves, None, resets)
    assert torch.isfinite(h).all() and all(torch.isfinite(s).all() for s in state)
    (h.sum() + sum(s.sum() for s in state)).backward()
    for name, t in zip(("gates_x", "R", "b"), leaves, strict=True):
        assert torch.isfinite(t.grad).all(), f"d{name} has NaN/inf"


@pytest.mark.parametrize("i_value", [-100.0, -1000.0, -30.0])
def test_first_write_far_below_the_empty_memory_gives_the_exact_output(i_value):
    """One write into the zero state (and one after a reset): h = sigmoid(o) tanh(z) whatever the input gate, as
    ``exp(m) (c, n)`` cancels in c / n; it was 2e-6 instead of 0.38 for an input gate of -100."""
    gates_x = torch.zeros(1, 2, 4, 1, 1)
    gates_x[0, :, 0] = i_value
    gates_x[0, :, 2] = 1.0
    resets = torch.tensor([[False, True]])
    h, _ = slstm_recurrent(gates_x, torch.zeros(1, 1, 4, 1), torch.zeros(4, 1, 1), None, resets)
    expected = torch.sigmoid(torch.tensor(0.0)) * torch.tanh(torch.tensor(1.0))
    torch.testing.assert_close(h.flatten(), expected.expand(2), atol=1e-6, rtol=1e-6)


def test_the_empty_memory_cap_changes_nothing_for_first_writes_within_its_margin(slstm_inputs):
    """From the zero state and after resets, input gates down to -EMPTY_MARGIN + 1: the state (c, n, m) and h are the
    recurrence written out without the cap, to float64 rounding."""
    from xlstm_seq.kernels.slstm.naive import EMPTY_MARGIN

    x = slstm_inputs(B=2, T=9, H=2, D=4)
    x["gates_x"][:, :, 0] = torch.linspace(-EMPTY_MARGIN + 1, 5.0, 9, dtype=torch.float64)[None, :, None, None]
    zero = tuple(torch.zeros(2, 2, 4, dtype=torch.float64) for _ in range(4))
    _assert_same(slstm_recurrent(x["gates_x"], x["R"], x["b"]), _slstm_by_hand(x["gates_x"], x["R"], x["b"], zero))
