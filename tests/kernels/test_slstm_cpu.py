"""The C++ sLSTM on the CPU (backend "cpu"): against the reference (kernels/slstm/naive.py) forward and backward, in
float64 to rounding and in float32/bfloat16 within twice the reference's own error; gradcheck; the empty-memory cap;
threads; the custom ops' registration (opcheck) and torch.compile; the loader's cache and its fallback.

Skipped as a whole, with the reason, where no C++ compiler is found (the fallback tests then still run).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
import torch
from tolerances import assert_close, assert_within_reference_error

from xlstm_seq.kernels.slstm import cpu, cpu_loader, slstm, slstm_step
from xlstm_seq.kernels.slstm.naive import slstm_recurrent

needs_compiler = pytest.mark.skipif(cpu_loader.COMPILER is None, reason=cpu_loader.compiler_missing())


def _leaves(x: dict, dtype: torch.dtype) -> list[torch.Tensor]:
    state = x["initial_state"] or ()
    return [t.detach().to(dtype).requires_grad_() for t in (x["gates_x"], x["R"], x["b"], *state)]


def _run(fn, leaves, resets, dh, dstate):
    """Outputs (h and the final state) and the gradients of every leaf for the loss <h, dh> + <state, dstate>."""
    gates_x, R, b, *state = leaves
    h, state_T = fn(gates_x, R, b, tuple(state) or None, resets)
    loss = (h.double() * dh).sum() + sum((s.double() * d).sum() for s, d in zip(state_T, dstate, strict=True))
    grads = torch.autograd.grad(loss, leaves)
    return [h, *state_T], list(grads)


def _cotangents(B, T, H, D):
    g = torch.Generator().manual_seed(7)
    dh = torch.randn(B, T, H, D, generator=g, dtype=torch.float64)
    return dh, [torch.randn(B, H, D, generator=g, dtype=torch.float64) for _ in range(4)]


SHAPES = [(2, 16, 2, 4), (1, 1, 1, 1), (3, 9, 1, 3), (2, 40, 4, 32)]


@needs_compiler
@pytest.mark.parametrize(("B", "T", "H", "D"), SHAPES, ids=lambda v: str(v))
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "initial-state"])
@pytest.mark.parametrize("with_resets", [False, True], ids=["no-resets", "resets"])
def test_float64_equals_the_reference(slstm_inputs, B, T, H, D, with_state, with_resets):
    x = slstm_inputs(B=B, T=T, H=H, D=D, with_state=with_state, with_resets=with_resets)
    dh, dstate = _cotangents(B, T, H, D)
    out, grads = _run(cpu.slstm_cpu_kernel, _leaves(x, torch.float64), x["resets"], dh, dstate)
    out_ref, grads_ref = _run(slstm_recurrent, _leaves(x, torch.float64), x["resets"], dh, dstate)
    for name, a, e in zip(("h", "c", "n", "m", "h_T"), out, out_ref, strict=True):
        assert a.dtype == torch.float64
        assert_close(a, e, msg=name)
    for name, a, e in zip(("gates_x", "R", "b", "c0", "n0", "m0", "h0"), grads, grads_ref, strict=False):
        assert_close(a, e, grad=True, msg=f"d{name}")


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_low_precision_within_twice_the_reference_error(slstm_inputs, dtype):
    """Outputs and every gradient, against the float64 reference, no further off than the reference run in dtype."""
    B, T, H, D = 3, 64, 2, 16
    x = slstm_inputs(B=B, T=T, H=H, D=D, with_state=True, with_resets=True, seed=3)
    dh, dstate = _cotangents(B, T, H, D)
    exact = _run(slstm_recurrent, _leaves(x, torch.float64), x["resets"], dh, dstate)
    lowp = _run(slstm_recurrent, _leaves(x, dtype), x["resets"], dh, dstate)
    ours = _run(cpu.slstm_cpu_kernel, _leaves(x, dtype), x["resets"], dh, dstate)
    names = ("h", "c", "n", "m", "h_T", "dgates_x", "dR", "db", "dc0", "dn0", "dm0", "dh0")
    flat = [sum(run, []) for run in (ours, lowp, exact)]
    assert ours[0][0].dtype == dtype and ours[0][1].dtype == torch.float32
    for name, a, lo, e in zip(names, *flat, strict=True):
        assert_within_reference_error(a, lo, e, msg=name)


@needs_compiler
@pytest.mark.parametrize("with_resets", [False, True], ids=["no-resets", "resets"])
def test_gradcheck(slstm_inputs, with_resets):
    x = slstm_inputs(B=2, T=6, H=2, D=3, with_state=True, with_resets=with_resets)

    def fn(gates_x, R, b, *state):
        h, state_T = cpu.slstm_cpu_kernel(gates_x, R, b, state, x["resets"])
        return (h, *state_T)

    assert torch.autograd.gradcheck(fn, _leaves(x, torch.float64))


@needs_compiler
@pytest.mark.parametrize("i_value", [-100.0, -1000.0])
def test_a_first_write_far_below_an_empty_memory_matches_the_reference(i_value):
    """The empty-memory cap (naive.py): from the zero state and after a reset, outputs and finite gradients equal the
    reference's."""
    g = torch.Generator().manual_seed(0)
    B, T, H, D = 2, 12, 2, 4
    gates_x = torch.randn(B, T, 4, H, D, generator=g, dtype=torch.float64)
    gates_x[:, :, 0] = i_value
    resets = torch.zeros(B, T, dtype=torch.bool)
    resets[0, 5] = True
    x = {"gates_x": gates_x, "R": torch.randn(H, D, 4, D, generator=g, dtype=torch.float64) * 0.3}
    x |= {"b": torch.zeros(4, H, D, dtype=torch.float64), "initial_state": None}
    dh, dstate = _cotangents(B, T, H, D)
    for dtype in (torch.float64, torch.float32):
        out, grads = _run(cpu.slstm_cpu_kernel, _leaves(x, dtype), resets, dh, dstate)
        out_ref, grads_ref = _run(slstm_recurrent, _leaves(x, dtype), resets, dh, dstate)
        assert all(torch.isfinite(t).all() for t in out + grads)
        for a, e in zip(out + grads, out_ref + grads_ref, strict=True):
            assert_close(a, e, dtype, grad=True)


@needs_compiler
def test_threads_give_the_same_bits(slstm_inputs):
    """Each (batch row, head) pair runs alone, so the thread count changes nothing."""
    x = slstm_inputs(B=8, T=64, H=4, D=32, dtype=torch.float32, with_state=True, with_resets=True)
    dh, dstate = _cotangents(8, 64, 4, 32)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _run(cpu.slstm_cpu_kernel, _leaves(x, torch.float32), x["resets"], dh, dstate)
        torch.set_num_threads(3)
        assert cpu._threads(8, 64, 4, 32) == 3
        three = _run(cpu.slstm_cpu_kernel, _leaves(x, torch.float32), x["resets"], dh, dstate)
    finally:
        torch.set_num_threads(threads)
    for a, e in zip(sum(one, []), sum(three, []), strict=True):
        assert torch.equal(a, e)


@needs_compiler
def test_backend_cpu_through_the_public_entry_points(slstm_inputs):
    """slstm(backend="cpu") equals the reference; T steps of slstm_step(backend="cpu") equal the whole pass."""
    x = slstm_inputs(B=2, T=7, H=2, D=4, dtype=torch.float32, with_state=True)
    args = (x["gates_x"], x["R"], x["b"], x["initial_state"])
    h, state = slstm(*args, backend="cpu")
    h_ref, state_ref = slstm(*args, backend="torch")
    assert_close(h, h_ref)
    state_t = x["initial_state"]
    for t in range(7):
        h_t, state_t = slstm_step(x["gates_x"][:, t], x["R"], x["b"], state_t, backend="cpu")
        assert_close(h_t, h[:, t], msg=f"step {t}")
    for s, s_full, s_ref in zip(state_t, state, state_ref, strict=True):
        assert_close(s, s_full)
        assert_close(s, s_ref)


@needs_compiler
def test_no_gradient_saves_nothing(slstm_inputs):
    x = slstm_inputs(dtype=torch.float32)
    with torch.no_grad():
        *_, pre, states = cpu.slstm_cpu_fwd(x["gates_x"], x["R"], x["b"], None, None, False)
    assert pre.numel() == 0 and states.numel() == 0


@needs_compiler
def test_the_custom_ops_pass_opcheck(slstm_inputs):
    """Schema, fake implementations (what torch.compile traces), autograd registration, on the ops themselves."""
    x = slstm_inputs(B=2, T=5, H=2, D=4, dtype=torch.float32, with_state=True, with_resets=True)
    state0 = torch.stack(x["initial_state"]).requires_grad_()
    fwd_args = (x["gates_x"].requires_grad_(), x["R"].requires_grad_(), x["b"], state0, x["resets"], True)
    torch.library.opcheck(torch.ops.xlstm_seq.slstm_cpu_fwd.default, fwd_args)
    with torch.no_grad():
        h, *state_T, pre, states = cpu.slstm_cpu_fwd(*fwd_args)
    state_T = torch.stack(state_T)
    # The backward op has no gradient of its own (no double backward): none of its inputs requires one.
    bwd_args = (torch.randn_like(h), torch.randn_like(state_T), x["R"].detach(), pre, states, state0.detach())
    bwd_args += (x["resets"],)
    torch.library.opcheck(torch.ops.xlstm_seq.slstm_cpu_bwd.default, bwd_args)


@needs_compiler
def test_torch_compile_traces_the_op_as_one_call(slstm_inputs):
    """fullgraph: no graph break around the op; compiled forward and gradients equal eager's."""
    x = slstm_inputs(B=2, T=9, H=2, D=4, dtype=torch.float32, with_state=True)

    def loss(gates_x, R, b, *state):
        h, state_T = cpu.slstm_cpu_kernel(gates_x, R, b, state, None)
        return h.square().sum() + state_T[0].sum()

    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")  # the graph, without a C++ build of it
    eager_leaves, compiled_leaves = _leaves(x, torch.float32), _leaves(x, torch.float32)
    eager_loss, compiled_loss = loss(*eager_leaves), compiled(*compiled_leaves)
    assert_close(compiled_loss, eager_loss)
    for a, e in zip(
        torch.autograd.grad(compiled_loss, compiled_leaves), torch.autograd.grad(eager_loss, eager_leaves), strict=True
    ):
        assert_close(a, e, grad=True)


@needs_compiler
def test_a_second_derivative_is_refused_not_silently_wrong(slstm_inputs):
    x = slstm_inputs(dtype=torch.float32)
    gates_x = x["gates_x"].requires_grad_()
    h, _ = cpu.slstm_cpu_kernel(gates_x, x["R"], x["b"])
    (grad,) = torch.autograd.grad(h.square().sum(), gates_x, create_graph=True)
    with pytest.raises(RuntimeError, match="trying to differentiate twice"):
        grad.sum().backward()


@needs_compiler
def test_eager_use_does_not_import_dynamo():
    """Outside torch.compile the kernel runs through an autograd.Function: the custom ops' first call would import
    torch._dynamo (seconds) in a process that never compiles."""
    code = (
        "import sys, torch\n"
        "from xlstm_seq.kernels.slstm import cpu\n"
        "x = torch.randn(2, 5, 4, 2, 4, requires_grad=True)\n"
        "h, _ = cpu.slstm_cpu(x, torch.randn(2, 4, 4, 4), torch.zeros(4, 2, 4))\n"
        "h.sum().backward()\n"
        "assert x.grad is not None and 'torch._dynamo' not in sys.modules, sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ---------------------------------------------------------------------------------------------------- loader


@pytest.fixture
def fresh_loader(monkeypatch, tmp_path):
    """A new cache folder and a loader that has neither loaded nor failed yet."""
    monkeypatch.setenv("XLSTM_SEQ_CPU_KERNEL_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cpu_loader, "_LIBRARY", None)
    monkeypatch.setattr(cpu_loader, "_FAILURE", "")
    monkeypatch.setattr(cpu, "_FALLBACK_LOGGED", set())
    return tmp_path / "cache"


@needs_compiler
def test_the_library_is_built_once_into_the_cache_and_reused_by_a_new_process(fresh_loader):
    cpu_loader.load_library()
    built = sorted(p.name for p in fresh_loader.iterdir())
    assert len(built) == 1 and built[0].startswith("libxlstm_slstm_cpu_") and built[0].endswith(".so"), built
    mtime = (fresh_loader / built[0]).stat().st_mtime_ns
    code = "from xlstm_seq.kernels.slstm import cpu_loader; cpu_loader.load_library()"
    env = os.environ | {"XLSTM_SEQ_CPU_KERNEL_DIR": str(fresh_loader)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    assert sorted(p.name for p in fresh_loader.iterdir()) == built
    assert (fresh_loader / built[0]).stat().st_mtime_ns == mtime


@needs_compiler
def test_a_failed_build_falls_back_to_the_reference_and_says_why(fresh_loader, monkeypatch, slstm_inputs, caplog):
    monkeypatch.setattr(cpu_loader, "BUILD_FLAGS", (*cpu_loader.BUILD_FLAGS, "-fno-such-flag"))
    x = slstm_inputs(dtype=torch.float32)
    with caplog.at_level(logging.WARNING, logger="xlstm_seq.kernels.slstm.cpu"):
        h, _ = cpu.slstm_cpu(x["gates_x"], x["R"], x["b"])
        cpu.slstm_cpu(x["gates_x"], x["R"], x["b"])
    assert_close(h, slstm_recurrent(x["gates_x"], x["R"], x["b"])[0])
    messages = [r.getMessage() for r in caplog.records if r.name == "xlstm_seq.kernels.slstm.cpu"]
    assert len(messages) == 1, messages
    assert "runs the reference" in messages[0] and "no-such-flag" in messages[0]
    assert "building the C++ sLSTM with" in cpu_loader.known_failure()
    assert not [p for p in fresh_loader.iterdir() if p.suffix == ".tmp" or p.name.endswith(".so.tmp")]
    from xlstm_seq.kernels import registry

    assert "no-such-flag" in registry._cpu_missing("slstm", torch.device("cpu"))


def test_without_a_compiler_the_loader_says_so(fresh_loader, monkeypatch, slstm_inputs):
    monkeypatch.setattr(cpu_loader, "COMPILER", None)
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(cpu_loader.CpuBuildError, match=r"no C\+\+ compiler found \(looked for c\+\+, g\+\+, clang"):
        cpu_loader.load_library()
    x = slstm_inputs(dtype=torch.float32)
    h, _ = cpu.slstm_cpu(x["gates_x"], x["R"], x["b"])  # the reference, logged
    assert_close(h, slstm_recurrent(x["gates_x"], x["R"], x["b"])[0])
