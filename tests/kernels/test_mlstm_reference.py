"""mLSTM reference: the three forms agree, gradients match finite differences, state carrying, resets, extremes."""

from __future__ import annotations

import pytest
import torch
from tolerances import assert_close

from xlstm_seq.kernels.mlstm import DEFAULT_CHUNK_SIZE, mlstm, mlstm_step
from xlstm_seq.kernels.mlstm.naive import mlstm_chunkwise, mlstm_parallel, mlstm_recurrent, mlstm_step_naive

GATES = ["exp", "sigmoid"]


def _args(x: dict) -> tuple:
    return x["q"], x["k"], x["v"], x["i"], x["f"], x["initial_state"], x["resets"]


def _assert_same(out, ref, msg: str = "", grad: bool = False) -> None:
    (h, state), (h_ref, state_ref) = out, ref
    assert_close(h, h_ref, grad=grad, msg=f"{msg} h")
    for name, s, s_ref in zip("Cnm", state, state_ref, strict=True):
        assert_close(s, s_ref, grad=grad, msg=f"{msg} state {name}")


@pytest.mark.parametrize("with_resets", [False, True], ids=["no-resets", "resets"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "initial-state"])
@pytest.mark.parametrize("input_gate", GATES)
@pytest.mark.parametrize("T", [1, 7, 63, 64, 257], ids=lambda t: f"T{t}")
def test_parallel_chunkwise_recurrent_agree(mlstm_inputs, T, input_gate, with_state, with_resets):
    x = mlstm_inputs(T=T, with_state=with_state, with_resets=with_resets)
    ref = mlstm_recurrent(*_args(x), input_gate=input_gate)
    _assert_same(mlstm_parallel(*_args(x), input_gate=input_gate), ref, "parallel")
    for chunk_size in (16, 64):
        out = mlstm_chunkwise(*_args(x), chunk_size=chunk_size, input_gate=input_gate)
        _assert_same(out, ref, f"chunkwise L={chunk_size}")


@pytest.mark.parametrize("chunk_size", [1, 5, 300, None], ids=lambda c: f"L{c}")
def test_chunkwise_any_chunk_size(mlstm_inputs, chunk_size):
    x = mlstm_inputs(T=37, with_state=True, with_resets=True)
    _assert_same(mlstm_chunkwise(*_args(x), chunk_size=chunk_size), mlstm_recurrent(*_args(x)))


def test_public_entry_point_is_the_chunkwise_reference(mlstm_inputs):
    x = mlstm_inputs(T=70, with_state=True, with_resets=True)
    assert DEFAULT_CHUNK_SIZE == 64
    _assert_same(mlstm(*_args(x), backend="torch"), mlstm_chunkwise(*_args(x), chunk_size=DEFAULT_CHUNK_SIZE))
    out = mlstm(*_args(x), chunk_size=16, input_gate="sigmoid")
    _assert_same(out, mlstm_recurrent(*_args(x), input_gate="sigmoid"))


def _gradcheck_inputs(mlstm_inputs, with_resets: bool) -> tuple:
    x = mlstm_inputs(B=2, H=1, T=5, DK=3, DV=2, with_state=True, with_resets=with_resets, seed=1)
    C, n, m = x["initial_state"]
    tensors = [x[name].requires_grad_() for name in "qkvif"] + [s.requires_grad_() for s in (C, n, m)]
    return tensors, x["resets"]


@pytest.mark.parametrize("with_resets", [False, True], ids=["no-resets", "resets"])
@pytest.mark.parametrize("input_gate", GATES)
@pytest.mark.parametrize("form", ["parallel", "chunkwise"])
def test_gradcheck(mlstm_inputs, form, input_gate, with_resets):
    """Plain autograd through the stabilised forward (m not detached) equals finite differences, all inputs."""
    tensors, resets = _gradcheck_inputs(mlstm_inputs, with_resets)

    def fn(q, k, v, i, f, C, n, m):
        if form == "parallel":
            h, state = mlstm_parallel(q, k, v, i, f, (C, n, m), resets, input_gate=input_gate)
        else:
            h, state = mlstm_chunkwise(q, k, v, i, f, (C, n, m), resets, chunk_size=2, input_gate=input_gate)
        return (h, *state)

    # The full Jacobian for the resets cases (every path), random projections (fast_mode) for the rest.
    assert torch.autograd.gradcheck(fn, tensors, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=not with_resets)


def test_gradients_of_the_three_forms_agree(mlstm_inputs):
    x = mlstm_inputs(T=40, with_state=True, with_resets=True)
    grads = []
    for form in (mlstm_recurrent, mlstm_parallel, lambda *a: mlstm_chunkwise(*a, chunk_size=16)):
        leaves = [t.clone().requires_grad_() for t in (x["q"], x["k"], x["v"], x["i"], x["f"], *x["initial_state"])]
        h, (C, n, m) = form(*leaves[:5], tuple(leaves[5:]), x["resets"])
        (h.sin().sum() + C.cos().sum() + n.sum() + m.sum()).backward()
        grads.append([t.grad for t in leaves])
    for other in grads[1:]:
        for g, g_ref in zip(other, grads[0], strict=True):
            assert_close(g, g_ref, grad=True)


@pytest.mark.parametrize("with_resets", [False, True], ids=["no-resets", "resets"])
@pytest.mark.parametrize("split", [1, 37, 64], ids=lambda s: f"split{s}")
def test_split_sequence_with_state_carried_equals_one_pass(mlstm_inputs, split, with_resets):
    x = mlstm_inputs(T=100, with_state=True, with_resets=with_resets)
    q, k, v, i, f, state, resets = _args(x)
    h_full, state_full = mlstm_chunkwise(q, k, v, i, f, state, resets, chunk_size=16)
    parts = [slice(0, split), slice(split, None)]
    hs = []
    for sl in parts:
        r = None if resets is None else resets[:, sl]
        args = (t[:, :, sl] for t in (q, k, v, i, f))
        h, state = mlstm_chunkwise(*args, state, r, chunk_size=16)
        hs.append(h)
    _assert_same((torch.cat(hs, dim=2), state), (h_full, state_full))


@pytest.mark.parametrize("input_gate", GATES)
@pytest.mark.parametrize("step_fn", [mlstm_step_naive, mlstm_step], ids=["step_naive", "step"])
def test_steps_equal_full_pass(mlstm_inputs, step_fn, input_gate):
    x = mlstm_inputs(T=20, with_state=True)
    q, k, v, i, f, state, _ = _args(x)
    h_full, state_full = mlstm(q, k, v, i, f, state, input_gate=input_gate)
    hs = []
    for t in range(q.shape[2]):
        h_t, state = step_fn(q[:, :, t], k[:, :, t], v[:, :, t], i[:, :, t], f[:, :, t], state, input_gate=input_gate)
        hs.append(h_t)
    _assert_same((torch.stack(hs, dim=2), state), (h_full, state_full))


def test_step_from_zero_state(mlstm_inputs):
    x = mlstm_inputs(T=1)
    h, state = mlstm(*_args(x))
    h_t, state_t = mlstm_step(*(x[name][:, :, 0] for name in "qkvif"))
    _assert_same((h_t[:, :, None], state_t), (h, state))


@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "initial-state"])
@pytest.mark.parametrize("form", ["parallel", "chunkwise", "recurrent"])
def test_resets_equal_separate_segments(mlstm_inputs, form, with_state):
    fn = {
        "parallel": mlstm_parallel,
        "chunkwise": lambda *a: mlstm_chunkwise(*a, chunk_size=16),
        "recurrent": mlstm_recurrent,
    }[form]
    T = 50
    x = mlstm_inputs(B=2, T=T, with_state=with_state)
    resets = torch.zeros(2, T, dtype=torch.bool)
    resets[0, [0, 9, 16, 17, 49]] = True
    resets[1, [20, 32]] = True
    h, (C, n, m) = fn(*_args(x)[:6], resets)
    for b in range(2):
        starts = [0, *resets[b].nonzero().flatten().tolist(), T]
        bounds = sorted(set(starts))
        hs = []
        for seg, (t0, t1) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            sl = slice(t0, t1)
            if seg == 0 and not resets[b, 0] and x["initial_state"] is not None:
                state = tuple(s[b : b + 1] for s in x["initial_state"])
            else:
                state = None
            args = [x[name][b : b + 1, :, sl] for name in "qkvif"]
            h_seg, state = mlstm_recurrent(*args, state)
            hs.append(h_seg)
        assert_close(h[b : b + 1], torch.cat(hs, dim=2), msg=f"batch {b} h")
        for s, s_ref in zip((C, n, m), state, strict=True):
            assert_close(s[b : b + 1], s_ref, msg=f"batch {b} final state")


@pytest.mark.parametrize("input_gate", GATES)
def test_extreme_gates_long_sequence_stay_finite(input_gate):
    """Gate pre-activations of +-50 for T = 10,000: outputs, final state and all gradients finite."""
    g = torch.Generator().manual_seed(0)
    B, H, T, D = 1, 2, 10_000, 8
    q, k, v = (torch.randn(B, H, T, D, generator=g).requires_grad_() for _ in range(3))
    i, f = ((torch.randint(0, 2, (B, H, T), generator=g).float() * 100 - 50).requires_grad_() for _ in range(2))
    h, state = mlstm_chunkwise(q, k, v, i, f, input_gate=input_gate)
    assert torch.isfinite(h).all()
    assert all(torch.isfinite(s).all() for s in state)
    (h.sum() + sum(s.sum() for s in state)).backward()
    for name, t in zip("qkvif", (q, k, v, i, f), strict=True):
        assert torch.isfinite(t.grad).all(), f"d{name} has NaN/inf"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_low_precision_inputs(mlstm_inputs, dtype):
    """h comes back in q's dtype, the state in float32, close (per the table) to float64 on the same rounded inputs."""
    x = mlstm_inputs(T=33, with_state=True, with_resets=True)
    x_low = {name: x[name].to(dtype) for name in "qkvif"}
    h_ref, state_ref = mlstm(*(x_low[name].double() for name in "qkvif"), x["initial_state"], x["resets"])
    h, state = mlstm(*(x_low[name] for name in "qkvif"), x["initial_state"], x["resets"])
    assert h.dtype == dtype
    assert all(s.dtype == torch.float32 for s in state)
    assert_close(h, h_ref, dtype, msg="h")
    for s, s_ref in zip(state, state_ref, strict=True):
        assert_close(s, s_ref, torch.float32, msg="state")
    h_step, state_step = mlstm_step(*(x_low[name][:, :, 0] for name in "qkvif"))
    assert h_step.dtype == dtype and all(s.dtype == torch.float32 for s in state_step)


# ----------------------------------------------------------------------------------------------- extreme values

FORMS = {
    "parallel": mlstm_parallel,
    "chunkwise": lambda *a, **kw: mlstm_chunkwise(*a, chunk_size=16, **kw),
    "recurrent": mlstm_recurrent,
}


def _grads_of_every_input(fn, q, k, v, i, f, state=None, resets=None, **kwargs) -> tuple[torch.Tensor, dict]:
    leaves = {name: t.detach().clone().requires_grad_() for name, t in zip("qkvif", (q, k, v, i, f), strict=True)}
    if state is not None:
        parts = zip(("C0", "n0", "m0"), state, strict=True)
        leaves.update({name: s.detach().clone().requires_grad_() for name, s in parts})
        state = (leaves["C0"], leaves["n0"], leaves["m0"])
    h, (C, n, m) = fn(*(leaves[name] for name in "qkvif"), state, resets, **kwargs)
    (h.sum() + C.sum() + n.sum() + m.sum()).backward()
    outputs = torch.cat([h.flatten(), C.flatten(), n.flatten(), m.flatten()])
    return outputs, {name: t.grad for name, t in leaves.items() if t.grad is not None}


@pytest.mark.parametrize("input_gate", GATES)
@pytest.mark.parametrize("form", FORMS)
def test_gradients_finite_where_the_floor_exp_minus_m_overflows(form, input_gate):
    """Input gates near -90 from the zero state: m follows the forget gates below -88, where exp(-m) overflows in
    float32; h is 0 and its backward multiplied 0 by inf (NaN gradients of i and f)."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 1, 256, 16, generator=g) for _ in range(3))
    i, f = torch.randn(1, 1, 256, generator=g) - 90, torch.randn(1, 1, 256, generator=g)
    outputs, grads = _grads_of_every_input(FORMS[form], q, k, v, i, f, input_gate=input_gate)
    assert torch.isfinite(outputs).all()
    for name, grad in grads.items():
        assert torch.isfinite(grad).all(), f"d{name} has NaN/inf"


def test_step_gradients_finite_where_the_floor_overflows():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 8, generator=g).requires_grad_() for _ in range(3))
    i = torch.full((1, 2), -90.0, requires_grad=True)
    f = torch.zeros(1, 2, requires_grad=True)
    state = (torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8), torch.full((1, 2), -100.0, requires_grad=True))
    h, (C, n, m) = mlstm_step_naive(q, k, v, i, f, state)
    (h.sum() + C.sum() + n.sum() + m.sum()).backward()
    for name, t in zip("qkvifm", (q, k, v, i, f, state[2]), strict=True):
        assert torch.isfinite(t.grad).all(), f"d{name} has NaN/inf"


@pytest.mark.parametrize(("T", "chunk_size"), [(200, 64), (300, 256)], ids=["T200-L64", "T300-L256"])
def test_gradients_finite_with_padded_chunks_and_a_large_stabiliser(T, chunk_size):
    """i = f = +200: m = 200, so exp(-m) = 0 in float32 and a padded row (q = 0, den = 0) divided 0 by 0; the row is
    dropped from h, but its backward multiplied the zero gradient by NaN (every gradient of k, v, i and f)."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 1, T, 16, generator=g) for _ in range(3))
    i = f = torch.full((1, 1, T), 200.0)
    outputs, grads = _grads_of_every_input(mlstm_chunkwise, q, k, v, i, f, chunk_size=chunk_size)
    assert torch.isfinite(outputs).all()
    for name, grad in grads.items():
        assert torch.isfinite(grad).all(), f"d{name} has NaN/inf"


@pytest.mark.parametrize("name", ["q", "k", "v", "i", "f"])
@pytest.mark.parametrize("form", FORMS)
def test_nan_at_step_t_changes_no_earlier_output(mlstm_inputs, form, name):
    """A NaN in k or v at step 21 made every earlier step of its chunk NaN (steps 16..20 with chunks of 16): the
    products multiplied it by those rows' zero weights. Outputs before t must not change; from t on (to the end of
    the segment) they are NaN, as in the recurrence (q only reaches its own step)."""
    x = mlstm_inputs(B=1, H=2, T=40, dtype=torch.float32, with_state=True)
    t = 21
    clean, _ = FORMS[form](*_args(x))
    x[name] = x[name].clone()
    x[name][:, :, t] = float("nan")
    h, state = FORMS[form](*_args(x))
    assert torch.equal(h[:, :, :t], clean[:, :, :t])
    assert torch.isnan(h[:, :, t]).any()
    if name != "q":
        assert torch.isnan(h[:, :, t:]).any(-1).all()
        assert torch.isnan(state[0]).any()


@pytest.mark.parametrize("form", FORMS)
def test_nan_does_not_cross_a_reset(mlstm_inputs, form):
    """A NaN forget gate at step 5 (which also poisons the carried state) and NaN in the initial state of the second
    batch row: after the reset at step 20 the outputs and the final state are a clean run's (the masks multiplied the
    NaN state by zero, and the cumulative log forget gate carried the NaN past the reset)."""
    x = mlstm_inputs(B=2, H=2, T=40, dtype=torch.float32, with_state=True)
    resets = torch.zeros(2, 40, dtype=torch.bool)
    resets[:, 20] = True
    clean_h, clean_state = FORMS[form](*_args(x)[:6], resets)
    x["f"] = x["f"].clone()
    x["f"][0, :, 5] = float("nan")
    C0, n0, m0 = (s.clone() for s in x["initial_state"])
    C0[1], n0[1], m0[1] = float("nan"), float("nan"), float("nan")
    h, state = FORMS[form](*_args(x)[:5], (C0, n0, m0), resets)
    assert torch.isnan(h[:, :, 5:20]).any(-1).all()
    # Equal up to rounding: the parallel form's cumulative log forget gate runs across the reset.
    assert_close(h[:, :, 20:], clean_h[:, :, 20:], msg="h after the reset")
    for name, s, s_clean in zip("Cnm", state, clean_state, strict=True):
        assert_close(s, s_clean, msg=name)
