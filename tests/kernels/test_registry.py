"""Backend registry and input validation of the public kernel entry points."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import torch

from xlstm_seq.kernels import registry
from xlstm_seq.kernels.mlstm import mlstm, mlstm_step
from xlstm_seq.kernels.mlstm.naive import mlstm_chunkwise, mlstm_parallel, mlstm_recurrent
from xlstm_seq.kernels.registry import BackendUnavailableError, available_backends, resolve_backend
from xlstm_seq.kernels.slstm import cpu_loader, slstm, slstm_step

CPU = torch.device("cpu")

# ----------------------------------------------------------------------------------------------- registry


@pytest.fixture
def fresh_auto_cache(monkeypatch):
    monkeypatch.setattr(registry, "_AUTO_CHOICE", {})


# On a CPU, auto takes the C++ sLSTM where a C++ compiler is found, and the reference otherwise.
CPU_CHOICE = {"mlstm": "torch", "slstm": "cpu" if cpu_loader.COMPILER else "torch"}


@pytest.mark.parametrize("op", ["mlstm", "slstm"])
def test_auto_resolves_on_cpu_and_logs_once(op, fresh_auto_cache, caplog):
    with caplog.at_level(logging.INFO, logger="xlstm_seq.kernels.registry"):
        assert resolve_backend(op, "auto", CPU) == CPU_CHOICE[op]
        assert resolve_backend(op, "auto", "cpu") == CPU_CHOICE[op]
    messages = [r.getMessage() for r in caplog.records if r.name == "xlstm_seq.kernels.registry"]
    assert len(messages) == 1, messages
    assert op in messages[0] and repr(CPU_CHOICE[op]) in messages[0] and "on cpu" in messages[0]


def test_auto_takes_the_reference_sLSTM_on_cpu_without_a_compiler(fresh_auto_cache, monkeypatch):
    monkeypatch.setattr(cpu_loader, "COMPILER", None)
    assert resolve_backend("slstm", "auto", CPU) == "torch"
    with pytest.raises(BackendUnavailableError, match="backend 'cpu' cannot run slstm here: no C\\+\\+ compiler"):
        resolve_backend("slstm", "cpu", CPU)


@pytest.mark.parametrize("op", ["mlstm", "slstm"])
def test_torch_backend_is_always_available(op, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # the interpreter would make triton available on a CPU
    monkeypatch.setattr(cpu_loader, "COMPILER", None)
    assert resolve_backend(op, "torch", CPU) == "torch"
    assert available_backends(op, CPU) == ("torch",)


def test_the_cpu_backend_has_no_mlstm_kernel_and_needs_cpu_tensors():
    with pytest.raises(BackendUnavailableError, match="the cpu backend has no mlstm kernel"):
        resolve_backend("mlstm", "cpu", CPU)
    with pytest.raises(BackendUnavailableError, match="the C\\+\\+ sLSTM runs on CPU tensors"):
        resolve_backend("slstm", "cpu", "meta")


def test_unknown_backend_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown backend 'fast'.*auto, torch, triton, cuda, cpu"):
        resolve_backend("mlstm", "fast", CPU)


def test_unknown_op_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown op 'gru'.*mlstm, slstm"):
        resolve_backend("gru", "auto", CPU)


def test_triton_says_what_is_missing(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(BackendUnavailableError) as err:
        resolve_backend("mlstm", "triton", CPU)
    msg = str(err.value)
    assert "the Triton mLSTM kernel needs triton and a CUDA device" in msg
    assert "triton installed: " in msg
    assert "device: cpu (needs CUDA, or TRITON_INTERPRET=1)" in msg
    assert isinstance(err.value, RuntimeError)


def test_triton_runs_on_cpu_only_under_the_interpreter(monkeypatch, fresh_auto_cache):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    if registry._triton_installed():
        assert resolve_backend("mlstm", "triton", CPU) == "triton"
        assert resolve_backend("mlstm", "auto", CPU) == "torch"  # the interpreter is never an automatic choice
    else:
        with pytest.raises(BackendUnavailableError, match=r"triton installed: no"):
            resolve_backend("mlstm", "triton", CPU)


def test_cuda_says_what_is_missing():
    with pytest.raises(BackendUnavailableError) as err:
        resolve_backend("slstm", "cuda", CPU)
    msg = str(err.value)
    assert "nvcc: " in msg
    assert "compute capability >= 8.0" in msg


@pytest.mark.parametrize(("op", "name"), [("mlstm", "cuda"), ("slstm", "triton")])
def test_backend_without_that_op(op, name):
    with pytest.raises(BackendUnavailableError, match=f"no {op} kernel.*{op} backends: "):
        resolve_backend(op, name, CPU)


def test_public_entry_points_go_through_the_registry(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    q = torch.zeros(1, 1, 3, 2)
    gates = torch.zeros(1, 1, 3)
    with pytest.raises(BackendUnavailableError, match="needs triton and a CUDA device"):
        mlstm(q, q, q, gates, gates, backend="triton")
    with pytest.raises(ValueError, match="valid backends"):
        mlstm_step(q[:, :, 0], q[:, :, 0], q[:, :, 0], gates[:, :, 0], gates[:, :, 0], backend="Torch")
    with pytest.raises(BackendUnavailableError, match="compute capability >= 8.0"):
        slstm(torch.zeros(1, 3, 4, 1, 2), torch.zeros(1, 2, 4, 2), torch.zeros(4, 1, 2), backend="cuda")
    with pytest.raises(BackendUnavailableError, match="compute capability >= 8.0"):
        slstm_step(torch.zeros(1, 4, 1, 2), torch.zeros(1, 2, 4, 2), torch.zeros(4, 1, 2), backend="cuda")


def test_importing_and_resolving_never_imports_triton():
    code = (
        "import sys, torch\n"
        "from xlstm_seq.kernels.mlstm import mlstm\n"
        "from xlstm_seq.kernels.slstm import slstm\n"
        "from xlstm_seq.kernels.registry import resolve_backend, BackendUnavailableError\n"
        "resolve_backend('mlstm', 'auto', 'cpu')\n"
        "try:\n    resolve_backend('mlstm', 'triton', 'cpu')\nexcept BackendUnavailableError:\n    pass\n"
        "assert 'triton' not in sys.modules, 'triton was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ----------------------------------------------------------------------------------------------- validation


def _mlstm(B=2, H=4, T=63, DK=16, DV=8, dtype=torch.float32):
    return {
        "q": torch.zeros(B, H, T, DK, dtype=dtype),
        "k": torch.zeros(B, H, T, DK, dtype=dtype),
        "v": torch.zeros(B, H, T, DV, dtype=dtype),
        "i": torch.zeros(B, H, T, dtype=dtype),
        "f": torch.zeros(B, H, T, dtype=dtype),
    }


MLSTM_FORMS = {
    "mlstm": mlstm,
    "parallel": mlstm_parallel,
    "chunkwise": mlstm_chunkwise,
    "recurrent": mlstm_recurrent,
}


@pytest.mark.parametrize("form", MLSTM_FORMS)
def test_mlstm_wrong_shape_names_expected_shape(form):
    x = _mlstm()
    x["k"] = torch.zeros(2, 4, 62, 16)
    with pytest.raises(ValueError) as err:
        MLSTM_FORMS[form](**x)
    assert str(err.value) == "k must have shape (B,H,T,DK) = (2,4,63,16), got (2,4,62,16)"


@pytest.mark.parametrize(
    ("name", "shape", "expected"),
    [
        ("q", (2, 4, 63), "q must have shape (B,H,T,DK), got (2,4,63) (3 dims, expected 4)"),
        ("v", (2, 4, 64, 8), "v must have shape (B,H,T,DV) = (2,4,63,DV), got (2,4,64,8)"),
        ("i", (2, 63), "i must have shape (B,H,T) = (2,4,63), got (2,63) (2 dims, expected 3)"),
        ("f", (2, 4, 63, 1), "f must have shape (B,H,T) = (2,4,63), got (2,4,63,1) (4 dims, expected 3)"),
    ],
    ids=["q-ndim", "v-T", "i-ndim", "f-extra-dim"],
)
def test_mlstm_shape_messages(name, shape, expected):
    x = _mlstm()
    x[name] = torch.zeros(shape)
    with pytest.raises(ValueError) as err:
        mlstm(**x)
    assert str(err.value) == expected


@pytest.mark.parametrize(
    ("part", "shape", "expected"),
    [
        (0, (2, 4, 8, 16), "initial_state.C must have shape (B,H,DK,DV) = (2,4,16,8), got (2,4,8,16)"),
        (1, (2, 4, 8), "initial_state.n must have shape (B,H,DK) = (2,4,16), got (2,4,8)"),
        (2, (2, 1), "initial_state.m must have shape (B,H) = (2,4), got (2,1)"),
    ],
    ids=["C", "n", "m"],
)
def test_mlstm_state_shape_messages(part, shape, expected):
    state = [torch.zeros(2, 4, 16, 8), torch.zeros(2, 4, 16), torch.zeros(2, 4)]
    state[part] = torch.zeros(shape)
    with pytest.raises(ValueError) as err:
        mlstm(**_mlstm(), initial_state=tuple(state))
    assert str(err.value) == expected


def test_mlstm_state_must_be_a_triple():
    with pytest.raises(TypeError, match=r"initial_state must be a tuple \(C, n, m\)"):
        mlstm(**_mlstm(), initial_state=(torch.zeros(2, 4, 16, 8), torch.zeros(2, 4, 16)))


def test_mlstm_dtype_errors():
    x = _mlstm()
    x["i"] = x["i"].half()
    with pytest.raises(TypeError, match=r"i must have the same dtype as q \(torch.float32\), got torch.float16"):
        mlstm(**x)
    x = _mlstm()
    x["q"] = x["q"].long()
    with pytest.raises(TypeError, match="q must be a floating-point tensor, got dtype torch.int64"):
        mlstm(**x)
    x = _mlstm()
    x["v"] = x["v"].numpy()
    with pytest.raises(TypeError, match="v must be a torch.Tensor, got ndarray"):
        mlstm(**x)


def test_mlstm_device_mismatch():
    x = _mlstm()
    x["v"] = x["v"].to("meta")
    with pytest.raises(ValueError, match="v is on meta but q is on cpu"):
        mlstm(**x)


def test_mlstm_resets_checks():
    with pytest.raises(TypeError, match="resets must be a bool tensor"):
        mlstm(**_mlstm(), resets=torch.zeros(2, 63))
    with pytest.raises(ValueError, match=r"resets must have shape \(B,T\) = \(2,63\), got \(2,64\)"):
        mlstm(**_mlstm(), resets=torch.zeros(2, 64, dtype=torch.bool))


def test_mlstm_option_checks():
    with pytest.raises(ValueError, match="chunk_size must be >= 1, got 0"):
        mlstm(**_mlstm(), chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size must be an int"):
        mlstm(**_mlstm(), chunk_size=16.0)
    with pytest.raises(ValueError, match="input_gate must be one of 'exp', 'sigmoid', got 'relu'"):
        mlstm(**_mlstm(), input_gate="relu")
    with pytest.raises(ValueError, match="T >= 1"):
        mlstm(**_mlstm(T=0))


def test_mlstm_step_shape_message():
    x = {name: t[:, :, 0] for name, t in _mlstm().items()}
    x["f"] = torch.zeros(2, 3)
    with pytest.raises(ValueError) as err:
        mlstm_step(x["q"], x["k"], x["v"], x["i"], x["f"])
    assert str(err.value) == "f_t must have shape (B,H) = (2,4), got (2,3)"
    with pytest.raises(ValueError, match=r"state.C must have shape \(B,H,DK,DV\) = \(2,4,16,8\)"):
        mlstm_step(x["q"], x["k"], x["v"], x["i"], x["i"], (torch.zeros(2, 4, 16, 9), x["q"], x["i"]))


def _slstm(B=2, T=5, H=2, D=3):
    return torch.zeros(B, T, 4, H, D), torch.zeros(H, D, 4, D), torch.zeros(4, H, D)


@pytest.mark.parametrize(
    ("index", "shape", "expected"),
    [
        (0, (2, 5, 3, 2, 3), "gates_x must have shape (B,T,4,H,D), got (2,5,3,2,3)"),
        (1, (2, 3, 4, 4), "R must have shape (H,D,4,D) = (2,3,4,3), got (2,3,4,4)"),
        (2, (4, 3, 2), "b must have shape (4,H,D) = (4,2,3), got (4,3,2)"),
    ],
    ids=["gates_x", "R", "b"],
)
def test_slstm_shape_messages(index, shape, expected):
    args = list(_slstm())
    args[index] = torch.zeros(shape)
    with pytest.raises(ValueError) as err:
        slstm(*args)
    assert str(err.value) == expected


def test_slstm_state_resets_dtype_and_device_checks():
    gates_x, R, b = _slstm()
    state = [torch.zeros(2, 2, 3) for _ in range(4)]
    state[3] = torch.zeros(2, 2, 4)
    with pytest.raises(ValueError, match=r"initial_state.h must have shape \(B,H,D\) = \(2,2,3\), got \(2,2,4\)"):
        slstm(gates_x, R, b, tuple(state))
    with pytest.raises(TypeError, match=r"initial_state must be a tuple \(c, n, m, h\)"):
        slstm(gates_x, R, b, tuple(state[:3]))
    with pytest.raises(ValueError, match=r"resets must have shape \(B,T\) = \(2,5\)"):
        slstm(gates_x, R, b, resets=torch.zeros(5, 2, dtype=torch.bool))
    with pytest.raises(TypeError, match="R must be a floating-point tensor"):
        slstm(gates_x, R.int(), b)
    with pytest.raises(ValueError, match="b is on meta but gates_x is on cpu"):
        slstm(gates_x, R, b.to("meta"))
    with pytest.raises(ValueError) as err:
        slstm_step(gates_x[:, 0], R, b, (state[0], state[0], state[0], torch.zeros(2, 2)))
    assert str(err.value) == "state.h must have shape (B,H,D) = (2,2,3), got (2,2) (2 dims, expected 3)"
