"""The fused CUDA sLSTM (backend "cuda"): nvcc compile checks, loader and dispatch on CPU, the GPU comparisons.

CPU machines (the default run): every .cu source is compiled with nvcc for sm_80 and sm_90 and the torch binding is
syntax-checked against torch's headers (each skipped with a reason where the compiler is absent); the backend probes,
the loader's build flags and cache, the custom ops' fake implementations, autograd wiring and torch.compile tracing
are tested on the CPU / meta device with the probes monkeypatched. Tests marked ``gpu`` run the kernels against
kernels/slstm/naive.py and skip, one by one, without a CUDA device of compute capability >= 8.0.
"""

from __future__ import annotations

import copy
import logging
import os
import pickle
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch
from tolerances import assert_close, assert_within_reference_error

from xlstm_seq.kernels import registry
from xlstm_seq.kernels.registry import BackendUnavailableError, available_backends, resolve_backend
from xlstm_seq.kernels.slstm import cuda_loader, fused, slstm, slstm_step
from xlstm_seq.kernels.slstm.naive import slstm_recurrent

CPU = torch.device("cpu")
NVCC = registry._find_nvcc()
CUDA_SOURCES = sorted(cuda_loader.SOURCE_DIR.glob("*.cu"))

# ------------------------------------------------------------------------------------------ compile checks (CPU)


def _nvcc_command(src: Path, out: Path, arch: str, head_dim: int, dtype: str) -> list[str]:
    """The nvcc line the loader's build would use for this source (torch's common flags + ours), compile only."""
    from torch.utils.cpp_extension import COMMON_NVCC_FLAGS

    key = cuda_loader.BuildKey(head_dim, 3, dtype, (int(arch[3]), int(arch[4])))
    _, nvcc_flags = cuda_loader.build_flags(key)
    return [NVCC, "-c", str(src), "-o", str(out), "-std=c++20", "-Xptxas", "-v", *COMMON_NVCC_FLAGS, *nvcc_flags]


# Each arch compiles both builds (bf16 tensor cores, f32 FMA), once at the largest and once at the smallest head dim.
COMPILE_CASES = [("sm_80", 128, "bf16"), ("sm_80", 16, "f32"), ("sm_90", 16, "bf16"), ("sm_90", 128, "f32")]


@pytest.mark.skipif(NVCC is None, reason="nvcc not found (set CUDA_HOME or put nvcc on PATH)")
@pytest.mark.parametrize("src", CUDA_SOURCES, ids=lambda p: p.name)
@pytest.mark.parametrize(
    ("arch", "head_dim", "dtype"), COMPILE_CASES, ids=[f"{a}-d{d}-{t}" for a, d, t in COMPILE_CASES]
)
def test_cuda_sources_compile_with_nvcc(src, arch, head_dim, dtype, tmp_path):
    """A compile error, a warning in our sources or a register spill fails CI even without a GPU."""
    gencode = cuda_loader.gencode_flag((int(arch[3]), int(arch[4])))
    assert f"code={arch}" in gencode
    cmd = _nvcc_command(src, tmp_path / f"{src.stem}.o", arch, head_dim, dtype)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"nvcc failed:\n{' '.join(cmd)}\n{log}"
    assert (tmp_path / f"{src.stem}.o").stat().st_size > 0
    ours = [line for line in log.splitlines() if src.name in line and "warning" in line]
    assert not ours, "\n".join(ours)
    spills = re.findall(r"(\d+) bytes spill stores", log)
    assert spills and all(s == "0" for s in spills), f"register spills for {arch}, D={head_dim}, {dtype}:\n{log}"
    assert f"for '{arch}'" in log  # ptxas compiled machine code for exactly this arch


def _torch_include_dirs() -> list[str]:
    root = Path(torch.__file__).parent / "include"
    return [str(root), str(root / "torch" / "csrc" / "api" / "include")]


def _cuda_include() -> Path | None:
    """The CUDA toolkit's include folder (cuda_runtime.h), looked for where torch's build would look."""
    from torch.utils.cpp_extension import CUDA_HOME

    candidates = [Path(NVCC).resolve().parent.parent, Path(NVCC).parent.parent] if NVCC else []
    candidates += [Path(p) for p in (os.environ.get("CUDA_HOME"), CUDA_HOME, "/usr/local/cuda") if p]
    return next((c / "include" for c in candidates if (c / "include" / "cuda_runtime.h").is_file()), None)


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not found")
@pytest.mark.skipif(NVCC is None, reason="nvcc not found (its cuda_runtime.h is needed)")
def test_torch_binding_compiles_against_torch_headers(tmp_path):
    """Syntax check of slstm_binding.cpp with the host compiler (a CPU torch lacks one generated CUDA header: stub)."""
    includes = _torch_include_dirs()
    macros = Path(includes[0]) / "c10" / "cuda" / "impl" / "cuda_cmake_macros.h"
    if not macros.exists():  # generated only in CUDA builds of torch; it defines one macro
        stub = tmp_path / "c10" / "cuda" / "impl" / "cuda_cmake_macros.h"
        stub.parent.mkdir(parents=True)
        stub.write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
        includes.insert(0, str(tmp_path))
    cuda_include = _cuda_include()
    if cuda_include is None:
        pytest.skip("cuda_runtime.h not found next to nvcc, in CUDA_HOME or /usr/local/cuda")
    host_flags, _ = cuda_loader.build_flags(cuda_loader.BuildKey(64, 12, "bf16", (9, 0)))
    cmd = [
        "g++",
        "-fsyntax-only",
        "-std=c++20",
        "-Wall",
        "-Wextra",
        "-DTORCH_EXTENSION_NAME=slstm_syntax_check",
        *host_flags,
        *[f"-isystem{d}" for d in includes],
        f"-isystem{sysconfig.get_paths()['include']}",
        f"-isystem{cuda_include}",
        f"-I{cuda_loader.SOURCE_DIR}",
        str(cuda_loader.SOURCE_DIR / "slstm_binding.cpp"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"g++ failed:\n{' '.join(cmd)}\n{log}"
    assert "slstm_binding.cpp" not in log, log  # no warnings in our file


def test_every_source_the_loader_builds_is_in_the_package():
    for name in cuda_loader.SOURCES + cuda_loader.HEADERS:
        assert (cuda_loader.SOURCE_DIR / name).is_file(), name
    assert {p.name for p in CUDA_SOURCES} <= set(cuda_loader.SOURCES)


# ------------------------------------------------------------------------------------------------- probes (CPU)


@pytest.fixture
def fresh_auto_cache(monkeypatch):
    monkeypatch.setattr(registry, "_AUTO_CHOICE", {})


@pytest.fixture
def fake_gpu(monkeypatch):
    """Pretends to be a CUDA torch with a GPU, nvcc and ninja; returns a setter for the compute capability."""
    capability = {"value": (9, 0)}
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability["value"])
    monkeypatch.setattr(registry, "_find_nvcc", lambda: "/opt/cuda/bin/nvcc")
    real_which = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda name, *a, **k: "/usr/bin/ninja" if name == "ninja" else real_which(name)
    )

    def set_capability(major: int, minor: int) -> None:
        capability["value"] = (major, minor)

    return set_capability


def test_cpu_says_what_is_missing():
    with pytest.raises(BackendUnavailableError) as err:
        resolve_backend("slstm", "cuda", CPU)
    msg = str(err.value)
    assert "device: cpu (needs an NVIDIA GPU with compute capability >= 8.0)" in msg
    if torch.version.cuda is None:
        assert f"torch {torch.__version__} is built without CUDA" in msg


def test_capable_gpu_resolves_cuda_and_auto_picks_it(fake_gpu, fresh_auto_cache):
    fake_gpu(9, 0)
    assert resolve_backend("slstm", "cuda", "cuda") == "cuda"
    assert available_backends("slstm", "cuda") == ("cuda", "torch")
    assert resolve_backend("slstm", "auto", "cuda") == "cuda"


def test_compute_capability_below_8_is_refused(fake_gpu, fresh_auto_cache):
    fake_gpu(7, 5)
    with pytest.raises(BackendUnavailableError, match=r"compute capability 7\.5 \(needs >= 8\.0\)"):
        resolve_backend("slstm", "cuda", "cuda")
    assert available_backends("slstm", "cuda") == ("torch",)
    assert resolve_backend("slstm", "auto", "cuda") == "torch"


def test_missing_nvcc_and_ninja_are_named(fake_gpu, monkeypatch):
    monkeypatch.setattr(registry, "_find_nvcc", lambda: None)
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(BackendUnavailableError) as err:
        resolve_backend("slstm", "cuda", "cuda")
    msg = str(err.value)
    assert "nvcc: not found (set CUDA_HOME or put nvcc on PATH)" in msg
    assert "ninja: not found" in msg


def test_torch_without_cuda_is_named(fake_gpu, monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(BackendUnavailableError, match="is built without CUDA"):
        resolve_backend("slstm", "cuda", "cuda")


# ------------------------------------------------------------------------------------------------- loader (CPU)


@pytest.mark.parametrize(
    ("head_dim", "dtype", "expected"),
    [
        (64, torch.bfloat16, ""),
        (16, torch.float32, ""),
        (128, torch.float32, ""),
        (8, torch.float32, "head dim 8"),
        (72, torch.bfloat16, "head dim 72"),
        (256, torch.bfloat16, "head dim 256"),
        (64, torch.float16, "dtype torch.float16"),
        (64, torch.float64, "dtype torch.float64"),
    ],
    ids=lambda v: str(v).replace("torch.", ""),
)
def test_unsupported_reason(head_dim, dtype, expected):
    reason = cuda_loader.unsupported_reason(head_dim, dtype)
    assert (reason == "") if expected == "" else (expected in reason)


@pytest.mark.parametrize(("cc", "flag"), [((8, 0), "compute_80,code=sm_80"), ((8, 6), "compute_86,code=sm_86")])
def test_gencode_is_for_the_device_present(cc, flag):
    assert cuda_loader.gencode_flag(cc) == f"-gencode=arch={flag}"


class _FakeLoad:
    """Stands in for torch.utils.cpp_extension.load: records the calls, returns a fresh module object."""

    def __init__(self, fail: bool = False):
        self.calls: list[dict] = []
        self.fail = fail

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        if self.fail:
            raise RuntimeError("Error building extension 'x': nvcc exited with 1")
        return type(sys)(kwargs["name"])


@pytest.fixture
def fake_load(monkeypatch):
    from torch.utils import cpp_extension

    loader = _FakeLoad()
    monkeypatch.setattr(cpp_extension, "load", loader)
    monkeypatch.setattr(cuda_loader, "_CACHE", {})
    return loader


def test_loader_builds_once_per_key_with_the_right_flags(fake_gpu, fake_load, caplog, capsys):
    fake_gpu(9, 0)
    with caplog.at_level(logging.INFO, logger="xlstm_seq.kernels.slstm.cuda_loader"):
        first = cuda_loader.load_extension(64, 12, torch.bfloat16, "cuda")
        again = cuda_loader.load_extension(64, 12, torch.bfloat16, "cuda")
    assert first is again and len(fake_load.calls) == 1
    call = fake_load.calls[0]
    assert call["name"].startswith("xlstm_seq_slstm_d64_h12_bf16_sm90_")
    nvcc = call["extra_cuda_cflags"]
    assert "-gencode=arch=compute_90,code=sm_90" in nvcc
    assert not [f for f in nvcc if "sm_80" in f or "compute_80" in f]  # nothing hard-coded
    for flags in (nvcc, call["extra_cflags"]):
        assert {"-DSLSTM_D=64", "-DSLSTM_H=12", "-DSLSTM_BF16=1"} <= set(flags)
    assert [Path(s).name for s in call["sources"]] == list(cuda_loader.SOURCES)
    assert call["verbose"] is False
    assert any("building the fused CUDA sLSTM kernel" in r.getMessage() for r in caplog.records)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""  # logging only, no prints

    # Another head count, dtype or device generation is another build.
    cuda_loader.load_extension(64, 6, torch.bfloat16, "cuda")
    cuda_loader.load_extension(64, 12, torch.float32, "cuda")
    fake_gpu(8, 0)
    cuda_loader.load_extension(64, 12, torch.bfloat16, "cuda")
    names = [c["name"] for c in fake_load.calls]
    assert len(set(names)) == 4
    assert "-DSLSTM_BF16=0" in fake_load.calls[2]["extra_cuda_cflags"]
    assert "-gencode=arch=compute_80,code=sm_80" in fake_load.calls[3]["extra_cuda_cflags"]


def test_loader_refuses_what_it_cannot_build(fake_gpu, fake_load):
    with pytest.raises(ValueError, match="head dim 256"):
        cuda_loader.load_extension(256, 3, torch.bfloat16, "cuda")
    fake_gpu(7, 5)
    with pytest.raises(BackendUnavailableError, match="needs >= 8.0"):
        cuda_loader.load_extension(64, 12, torch.bfloat16, "cuda")
    assert fake_load.calls == []


def test_loader_on_cpu_says_what_is_missing(fake_load):
    with pytest.raises(BackendUnavailableError, match="device: cpu"):
        cuda_loader.load_extension(64, 12, torch.float32, CPU)


def test_build_failure_names_the_build(fake_gpu, monkeypatch, tmp_path):
    from torch.utils import cpp_extension

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(cpp_extension, "load", _FakeLoad(fail=True))
    monkeypatch.setattr(cuda_loader, "_CACHE", {})
    with pytest.raises(cuda_loader.CudaBuildError, match=r"xlstm_seq_slstm_d32_h2_f32_sm90_.*nvcc exited with 1"):
        cuda_loader.load_extension(32, 2, torch.float32, "cuda")


def test_importing_compiles_nothing():
    code = (
        "import sys, torch.utils.cpp_extension as ce\n"
        "ce.load = lambda *a, **k: sys.exit('load called at import')\n"
        "import xlstm_seq.kernels.slstm.fused, xlstm_seq.kernels.slstm.cuda_loader\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------------------------- custom ops, fake impl (CPU)


def _meta_inputs(B=3, T=5, H=2, D=16, dtype=torch.bfloat16, grad=True):
    def empty(*shape, dt=torch.float32):
        return torch.empty(*shape, device="meta", dtype=dt, requires_grad=grad)

    state = tuple(empty(B, H, D) for _ in range(4))
    resets = torch.zeros(B, T, dtype=torch.bool, device="meta")
    return empty(B, T, 4, H, D, dt=dtype), empty(H, D, 4, D), empty(4, H, D), state, resets


@pytest.mark.parametrize("save", [True, False], ids=["save", "no-save"])
def test_fake_forward_shapes_and_dtypes(save):
    gx, R, b, _, resets = _meta_inputs(grad=False)
    h, state_T, pre, states = torch.ops.xlstm_seq.slstm_fused_fwd(gx, R, b, None, resets, save, True)
    assert (h.shape, h.dtype) == ((3, 5, 2, 16), torch.bfloat16)
    assert (state_T.shape, state_T.dtype) == ((4, 3, 2, 16), torch.float32)
    saved = (3, 5, 4, 2, 16) if save else (0,)
    assert pre.shape == states.shape == saved and pre.dtype == states.dtype == torch.float32


def test_fake_backward_and_autograd_wiring():
    """Gradients reach gates_x, R, b and every part of the initial state, in their own dtypes and shapes."""
    gx, R, b, state, resets = _meta_inputs()
    h, (c, n, m, h_last) = fused.slstm_fused(gx, R, b, state, resets)
    assert h.dtype == torch.bfloat16 and c.dtype == torch.float32
    (h.float().sum() + c.sum() + n.sum() + m.sum() + h_last.sum()).backward()
    assert (gx.grad.shape, gx.grad.dtype) == (gx.shape, torch.bfloat16)
    assert (R.grad.shape, R.grad.dtype) == (R.shape, torch.float32)
    assert b.grad.shape == b.shape
    for part in state:
        assert part.grad is not None and part.grad.shape == part.shape


def test_no_grad_forward_saves_nothing():
    gx, R, b, state, resets = _meta_inputs()
    with torch.no_grad():
        h, _ = fused.slstm_fused(gx, R, b, state, resets)
    assert h.shape == (3, 5, 2, 16)


def test_opcheck_on_meta_tensors():
    """Schema, autograd registration and the fake impl (the real kernel is not run on CPU)."""
    gx, R, b, _, resets = _meta_inputs()
    s0 = torch.empty(4, 3, 2, 16, device="meta", requires_grad=True)
    torch.library.opcheck(
        torch.ops.xlstm_seq.slstm_fused_fwd.default,
        (gx, R, b, s0, resets, True, True),
        test_utils=("test_schema", "test_autograd_registration", "test_faketensor"),
    )


def test_torch_compile_traces_the_op_in_one_graph():
    import torch._dynamo.testing

    gx, R, b, state, resets = _meta_inputs()
    state = tuple(s.detach() for s in state)
    counter = torch._dynamo.testing.CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(fused.slstm_fused, fullgraph=True, backend=counter)
    h, _ = compiled(gx, R, b, state, resets)
    h.float().sum().backward()
    assert counter.frame_count == 1
    targets = [node.target for node in counter.graphs[0].graph.nodes if node.op == "call_function"]
    assert torch.ops.xlstm_seq.slstm_fused_fwd.default in targets
    assert R.grad.shape == R.shape


# ------------------------------------------------------------------------------------------ dispatch (CPU)


@pytest.fixture
def cuda_backend_everywhere(monkeypatch, fresh_auto_cache):
    """Makes backend "cuda" resolvable on the CPU, to test the dispatch in front of the kernel."""
    backend = registry._Backend("cuda", ("slstm",), lambda op, device: "")
    monkeypatch.setitem(registry._BACKENDS, "cuda", backend)


def test_auto_picks_cuda_where_it_is_available(cuda_backend_everywhere):
    assert available_backends("slstm", CPU)[0] == "cuda"
    assert resolve_backend("slstm", "auto", CPU) == "cuda"


def test_auto_falls_back_to_the_reference_where_cuda_is_missing(monkeypatch, fresh_auto_cache):
    monkeypatch.setattr(registry, "_find_nvcc", lambda: None)
    assert "cuda" not in available_backends("slstm", CPU)
    assert resolve_backend("slstm", "auto", CPU) == "torch"


def test_uncovered_head_dim_runs_the_reference(cuda_backend_everywhere, slstm_inputs, caplog, monkeypatch):
    monkeypatch.setattr(fused, "_FALLBACK_LOGGED", set())
    x = slstm_inputs(B=2, T=7, H=2, D=4, dtype=torch.float32, with_state=True, with_resets=True)
    args = (x["gates_x"], x["R"], x["b"], x["initial_state"], x["resets"])
    with caplog.at_level(logging.INFO, logger="xlstm_seq.kernels.slstm.fused"):
        h, state = slstm(*args, backend="cuda")
        slstm(*args, backend="cuda")
    h_ref, state_ref = slstm_recurrent(*args)
    assert_close(h, h_ref)
    for s, s_ref in zip(state, state_ref, strict=True):
        assert_close(s, s_ref)
    logged = [r.getMessage() for r in caplog.records if "runs the reference" in r.getMessage()]
    assert len(logged) == 1 and "head dim 4" in logged[0]
    h_t, _ = slstm_step(x["gates_x"][:, 0], x["R"], x["b"], x["initial_state"], backend="cuda")
    assert_close(h_t, slstm_recurrent(x["gates_x"][:, :1], x["R"], x["b"], x["initial_state"])[0][:, 0])


def test_cuda_backend_on_cpu_raises_a_clear_error(slstm_inputs):
    x = slstm_inputs(D=16, dtype=torch.float32)
    with pytest.raises(BackendUnavailableError, match="device: cpu"):
        slstm(x["gates_x"], x["R"], x["b"], backend="cuda")


def test_model_with_cuda_backend_builds_pickles_and_deepcopies_on_cpu():
    from xlstm_seq.config import xLSTMConfig
    from xlstm_seq.stack import xLSTMStack

    cfg = xLSTMConfig(embedding_dim=32, num_blocks=1, num_heads=2, slstm_at=[0], backend="cuda")
    stack = xLSTMStack(cfg)  # construction never touches the toolchain
    clone = pickle.loads(pickle.dumps(stack))
    twin = copy.deepcopy(stack)
    assert clone.config.backend == twin.config.backend == "cuda"
    with pytest.raises(BackendUnavailableError, match="device: cpu"):
        stack(torch.randn(1, 3, 32))


# ------------------------------------------------------------------------------------------------------- GPU


def _gpu_skip_reason() -> str:
    if not torch.cuda.is_available():
        return "needs a CUDA device"
    return registry._cuda_missing("slstm", torch.device("cuda"))


gpu = pytest.mark.gpu


def _require_gpu() -> None:
    reason = _gpu_skip_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def poison(monkeypatch):
    monkeypatch.setattr(fused, "POISON_OUTPUTS", True)


def _gpu_inputs(slstm_inputs, B, T, H, D, dtype, seed=0):
    x = slstm_inputs(B=B, T=T, H=H, D=D, dtype=torch.float64, with_state=True, with_resets=True, seed=seed)
    dev = torch.device("cuda")
    cast = {k: (v.to(dev, dtype) if v.is_floating_point() else v.to(dev)) for k, v in x.items() if torch.is_tensor(v)}
    state = tuple(s.to(dev, torch.float32) for s in x["initial_state"])
    return cast["gates_x"], cast["R"], cast["b"], state, cast["resets"]


def _run(fn, gates_x, R, b, state, resets, dh, dstate):
    """Forward, then backward of <h, dh> + <state, dstate>; returns outputs and gradients of every input."""
    leaves = [gates_x.detach().clone().requires_grad_(), R.detach().clone().requires_grad_()]
    leaves += [b.detach().clone().requires_grad_()] + [s.detach().clone().requires_grad_() for s in state]
    h, state_T = fn(leaves[0], leaves[1], leaves[2], tuple(leaves[3:]), resets)
    loss = (h.double() * dh).sum() + sum((s.double() * d).sum() for s, d in zip(state_T, dstate, strict=True))
    loss.backward()
    return [h.detach(), *[s.detach() for s in state_T]], [leaf.grad for leaf in leaves]


def _cuda_fn(allow_r_in_smem=True):
    def fn(gates_x, R, b, state, resets):
        return fused.slstm_fused(gates_x, R, b, state, resets, allow_r_in_smem=allow_r_in_smem)

    return fn


def _naive_fn(gates_x, R, b, state, resets):
    return slstm_recurrent(gates_x, R, b, state, resets)


GPU_SHAPES = [(3, 1, 2, 16), (3, 63, 2, 32), (17, 100, 3, 64), (2, 257, 1, 128), (5, 64, 2, 48)]


@gpu
@pytest.mark.parametrize("r_in_smem", [True, False], ids=["R-smem", "R-global"])
@pytest.mark.parametrize(("B", "T", "H", "D"), GPU_SHAPES, ids=[f"B{b}-T{t}-H{h}-D{d}" for b, t, h, d in GPU_SHAPES])
def test_gpu_float32_forward_and_backward_match_the_reference(slstm_inputs, poison, B, T, H, D, r_in_smem):
    _require_gpu()
    inputs = _gpu_inputs(slstm_inputs, B, T, H, D, torch.float32)
    g = torch.Generator(device="cuda").manual_seed(1)
    dh = torch.randn(B, T, H, D, device="cuda", generator=g, dtype=torch.float64)
    dstate = [torch.randn(B, H, D, device="cuda", generator=g, dtype=torch.float64) for _ in range(4)]
    outs, grads = _run(_cuda_fn(r_in_smem), *inputs, dh, dstate)
    outs_ref, grads_ref = _run(_naive_fn, *inputs, dh, dstate)
    for name, o, o_ref in zip(["h", "c", "n", "m", "h_T"], outs, outs_ref, strict=True):
        assert_close(o, o_ref, torch.float32, msg=name)
    for name, gr, gr_ref in zip(["gates_x", "R", "b", "c0", "n0", "m0", "h0"], grads, grads_ref, strict=True):
        assert_close(gr, gr_ref, torch.float32, grad=True, msg=f"d{name}")


@gpu
@pytest.mark.parametrize(("B", "T", "H", "D"), GPU_SHAPES, ids=[f"B{b}-T{t}-H{h}-D{d}" for b, t, h, d in GPU_SHAPES])
def test_gpu_bfloat16_error_within_twice_the_reference_error(slstm_inputs, poison, B, T, H, D):
    """flash-attention's criterion: error vs float64 at most 2x the reference's own error in bf16."""
    _require_gpu()
    inputs = _gpu_inputs(slstm_inputs, B, T, H, D, torch.bfloat16)
    exact_inputs = (inputs[0].double(), inputs[1].double(), inputs[2].double(), inputs[3], inputs[4])
    g = torch.Generator(device="cuda").manual_seed(1)
    dh = torch.randn(B, T, H, D, device="cuda", generator=g, dtype=torch.float64)
    dstate = [torch.randn(B, H, D, device="cuda", generator=g, dtype=torch.float64) for _ in range(4)]
    outs, grads = _run(_cuda_fn(), *inputs, dh, dstate)
    outs_lowp, grads_lowp = _run(_naive_fn, *inputs, dh, dstate)
    outs_exact, grads_exact = _run(_naive_fn, *exact_inputs, dh, dstate)
    for name, o, lo, ex in zip(["h", "c", "n", "m", "h_T"], outs, outs_lowp, outs_exact, strict=True):
        assert_within_reference_error(o, lo, ex, atol=1e-4, msg=name)
    for name, gr, lo, ex in zip(
        ["gates_x", "R", "b", "c0", "n0", "m0", "h0"], grads, grads_lowp, grads_exact, strict=True
    ):
        assert_within_reference_error(gr, lo, ex, atol=1e-3, msg=f"d{name}")


@gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
def test_gpu_long_sequence_has_no_nan(slstm_inputs, poison, dtype):
    _require_gpu()
    gates_x, R, b, state, resets = _gpu_inputs(slstm_inputs, 4, 4096, 2, 64, dtype)
    gates_x = (gates_x.float() * 3).to(dtype).requires_grad_()  # large pre-activations: the stabiliser must hold
    R.requires_grad_()
    h, state_T = fused.slstm_fused(gates_x, R, b, state, resets)
    assert torch.isfinite(h).all() and all(torch.isfinite(s).all() for s in state_T)
    h.float().square().sum().backward()
    assert torch.isfinite(gates_x.grad).all() and torch.isfinite(R.grad).all()


@gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
def test_gpu_full_pass_equals_chunks_and_steps(slstm_inputs, dtype):
    _require_gpu()
    gates_x, R, b, state, _ = _gpu_inputs(slstm_inputs, 3, 40, 2, 32, dtype)
    with torch.no_grad():
        h_full, s_full = slstm(gates_x, R, b, state, backend="cuda")
        h1, s1 = slstm(gates_x[:, :17], R, b, state, backend="cuda")
        h2, s2 = slstm(gates_x[:, 17:], R, b, s1, backend="cuda")
        s = state
        steps = []
        for t in range(gates_x.shape[1]):
            h_t, s = slstm_step(gates_x[:, t], R, b, s, backend="cuda")
            steps.append(h_t)
    tol = torch.float32 if dtype == torch.float32 else torch.bfloat16
    assert_close(torch.cat([h1, h2], 1), h_full, tol, msg="chunks")
    assert_close(torch.stack(steps, 1), h_full, tol, msg="steps")
    for a, b_, c in zip(s2, s, s_full, strict=True):
        assert_close(a, c, torch.float32, msg="chunk state")
        assert_close(b_, c, torch.float32, msg="step state")


@gpu
def test_gpu_resets_equal_separate_segments(slstm_inputs):
    _require_gpu()
    gates_x, R, b, _, _ = _gpu_inputs(slstm_inputs, 2, 30, 2, 16, torch.float32)
    resets = torch.zeros(2, 30, dtype=torch.bool, device="cuda")
    resets[:, 12] = True
    with torch.no_grad():
        h, _ = slstm(gates_x, R, b, None, resets, backend="cuda")
        h_a, _ = slstm(gates_x[:, :12], R, b, backend="cuda")
        h_b, _ = slstm(gates_x[:, 12:], R, b, backend="cuda")
    assert_close(h, torch.cat([h_a, h_b], 1), torch.float32)


@gpu
def test_gpu_large_head_falls_back_to_the_reference(slstm_inputs):
    _require_gpu()
    gates_x, R, b, state, resets = _gpu_inputs(slstm_inputs, 2, 9, 1, 256, torch.float32)
    h, _ = slstm(gates_x, R, b, state, resets, backend="cuda")
    assert_close(h, slstm_recurrent(gates_x, R, b, state, resets)[0], torch.float32)


@gpu
def test_gpu_torch_compile_matches_eager(slstm_inputs):
    _require_gpu()
    gates_x, R, b, state, resets = _gpu_inputs(slstm_inputs, 3, 20, 2, 32, torch.bfloat16)
    compiled = torch.compile(fused.slstm_fused, fullgraph=True)
    with torch.no_grad():
        h_c, _ = compiled(gates_x, R, b, state, resets)
        h_e, _ = fused.slstm_fused(gates_x, R, b, state, resets)
    torch.testing.assert_close(h_c, h_e, atol=0, rtol=0)


@gpu
def test_gpu_model_pickles_after_running_the_kernel():
    _require_gpu()
    from xlstm_seq.config import xLSTMConfig
    from xlstm_seq.stack import xLSTMStack

    cfg = xLSTMConfig(embedding_dim=64, num_blocks=1, num_heads=2, slstm_at=[0], backend="cuda")
    stack = xLSTMStack(cfg).cuda()
    x = torch.randn(2, 5, 64, device="cuda")
    y, _ = stack(x)
    clone = pickle.loads(pickle.dumps(stack))
    twin = copy.deepcopy(stack)
    torch.testing.assert_close(clone(x)[0], y)
    torch.testing.assert_close(twin(x)[0], y)


def test_every_gpu_test_is_marked_gpu():
    """The module must never be skipped as a whole (the CPU checks above run everywhere)."""
    gpu_tests = [name for name, obj in globals().items() if name.startswith("test_gpu_")]
    assert gpu_tests and all(
        any(m.name == "gpu" for m in getattr(globals()[n], "pytestmark", [])) for n in gpu_tests
    ), gpu_tests
