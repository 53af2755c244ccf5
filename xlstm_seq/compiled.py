"""Compiled paths of the xLSTM core: the ``compile`` switch, its "auto" rule, and an eager fallback.

On a CPU the core's reference kernels pay Python and per-op overhead at every small op; ``torch.compile``
(inductor, which writes and builds C++ with the system compiler) fuses them. The switch takes three values:

* ``False``: plain eager PyTorch, bit for bit what the code says.
* ``True``: compile the path on its first call.
* ``"auto"`` (the default): compile a path once it is expected to run, or has run, at least
  ``AUTO_MIN_CALLS[path]`` times on a CPU, so that the first compile is repaid. Measured for a 4-block stack
  (E=128) on 2 idle cores (benchmarks/kernels/core_cpu.md): the first compile of ``step`` takes about 22 s and of
  the training pass 54-70 s with an empty cache, 9-11 s in all with a warm one (about 40 s, 95-135 s and 13-17 s on
  a loaded machine with 1 thread). A 20-step fit stays eager; an RL rollout or a long training run compiles.
  Applications that know their plan declare it (:meth:`CompiledPath.expect_calls`); otherwise calls are counted.
  "auto" stays eager on CUDA devices, whose kernels are already fused.

Each path (e.g. a stack's ``step``) is one :class:`CompiledPath`: the compiled function is built once and kept,
and torch's own guards choose the graph per shape class. The batch dimension is marked dynamic when it is above
1, so B = 8 and B = 16 share one graph (B = 1 gets its own, as torch specialises sizes 0 and 1); the length T of
a whole-sequence pass is specialised (the chunkwise mLSTM loops over chunks), so a new T compiles once more.

Inductor's on-disk caches (its FX graph cache and the AOT autograd cache, both on by default in torch 2.13)
live in ``TORCHINDUCTOR_CACHE_DIR`` (default ``/tmp/torchinductor_<user>``): a second process with the same
model sizes reuses the compiled code and starts in seconds.

Where compiling cannot work, the path runs eagerly and logs one warning naming why: no C++ compiler found, or
torch.compile raised (the eager result is returned and the path stays eager from then on).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterable
from typing import Any, Literal

import torch

__all__ = [
    "AUTO_MIN_CALLS",
    "COMPILE_OPTIONS",
    "CompileSetting",
    "CompiledPath",
    "check_compile_setting",
    "compiler_missing",
    "configure_stacks",
    "mark_batch_dynamic",
    "should_compile",
]

logger = logging.getLogger(__name__)

CompileSetting = bool | Literal["auto"]

#: Under "auto", a path compiles once this many calls are expected (declared) or made: enough that even a cold
#: compile (empty cache, once per machine and model size) is repaid. Measured for a 4-block stack
#: (benchmarks/kernels/core_cpu.md, 1 thread): a compiled step saves 1.1-1.3 ms (1.6-1.8 -> 0.48 ms) and its cold
#: compile takes about 40 s, so 50,000 steps repay it (10,000 would repay only a warm compile of 13-17 s); a compiled
#: training pass saves 85-190 ms of 645-1,180 ms at B=8, T=256 against a cold compile of 95-135 s, about 1,000
#: passes; smaller passes (an RL minibatch) save less, hence 5,000.
AUTO_MIN_CALLS: dict[str, int] = {"step": 50_000, "forward": 5_000}

#: inductor options of every compiled path. Without the size asserts of the generated code (dynamo's guards already
#: check every input's sizes and strides), a compiled 4-block step runs about 10% faster.
COMPILE_OPTIONS: dict[str, Any] = {"size_asserts": False}

# Reasons already logged: one line per reason per process, however many paths fall back.
_LOGGED: set[str] = set()


def check_compile_setting(value: Any, name: str = "compile") -> CompileSetting:
    """Returns ``value`` if it is a valid switch (``True``, ``False`` or ``"auto"``).

    Args:
        value: The setting to check.
        name: What the setting is called in the error message. Default "compile".

    Raises:
        ValueError: any other value.
    """
    if isinstance(value, bool) or value == "auto":
        return value
    raise ValueError(f"{name} must be True, False or 'auto', got {value!r}")


def compiler_missing() -> str:
    """Why inductor cannot build C++ code here ("" when a C++ compiler is found).

    Looks for the compiler inductor would call: ``$CXX`` when set, else ``g++`` (``clang++`` on macOS).
    """
    import torch._inductor.config as inductor_config

    wanted = os.environ.get("CXX") or inductor_config.cpp.cxx[-1]
    if shutil.which(wanted) is None:
        return f"no C++ compiler found (looked for {wanted!r}; set CXX or install g++)"
    return ""


def should_compile(setting: CompileSetting, path: str, calls: int, device: torch.device | str = "cpu") -> bool:
    """The one rule of the switch: whether ``path`` compiles after ``calls`` expected or made calls.

    Args:
        setting: ``True``, ``False`` or ``"auto"``.
        path: A key of :data:`AUTO_MIN_CALLS` ("step" or "forward").
        calls: How many calls the path is expected to run (or has run).
        device: Where the path runs; "auto" compiles on a CPU only. Default "cpu".
    """
    check_compile_setting(setting)
    if setting != "auto":
        return setting
    return torch.device(device).type == "cpu" and calls >= AUTO_MIN_CALLS[path]


def mark_batch_dynamic(tensors: Iterable[torch.Tensor]) -> None:
    """Marks dim 0 (the batch) of each tensor dynamic for the next compiled call, so a new batch size reuses the
    graph; a batch of 1 is left alone (torch specialises size 1 anyway)."""
    for tensor in tensors:
        if tensor.shape[0] > 1:
            torch._dynamo.maybe_mark_dynamic(tensor, 0)


def _log_once(reason: str) -> None:
    if reason not in _LOGGED:
        _LOGGED.add(reason)
        logger.warning("xlstm_seq.compiled: running eagerly: %s", reason)


class CompiledPath:
    """One function that runs compiled or eagerly according to a :data:`CompileSetting`.

    Args:
        fn: The eager function (a bound method of a module, for example).
        path: Its kind, a key of :data:`AUTO_MIN_CALLS` ("step" or "forward").
        setting: The switch. Default "auto".
        build: Returns the compiled version of ``fn``, called once on first need. Default ``torch.compile(fn)``
            with :data:`COMPILE_OPTIONS`.

    Calling it with ``(*args, dynamic=[...])`` runs ``fn(*args)``: compiled when the switch says so, else
    eagerly. ``dynamic`` lists the tensors whose batch size (dim 0) may change between calls without a recompile
    (inputs and states).
    """

    def __init__(
        self, fn: Callable, path: str, setting: CompileSetting = "auto", build: Callable[[], Callable] | None = None
    ):
        if path not in AUTO_MIN_CALLS:
            raise ValueError(f"path must be one of {sorted(AUTO_MIN_CALLS)}, got {path!r}")
        self.fn = fn
        # Builds the compiled version of fn on first need (default: torch.compile(fn)).
        self.build = build or (lambda: torch.compile(fn, options=COMPILE_OPTIONS))
        self.path = path
        self._decided: set[str] = set()  # device types where the switch has said "compile" (it never takes it back)
        self.setting = setting
        self.calls = 0
        self.expected_calls = 0
        self.fallback_reason = ""  # why the path runs eagerly although the switch asks for compiling
        self._compiled: Callable | None = None

    @property
    def setting(self) -> CompileSetting:
        """The switch: True, False or "auto"."""
        return self._setting

    @setting.setter
    def setting(self, value: CompileSetting) -> None:
        self._setting = check_compile_setting(value)
        self._decided.clear()

    def expect_calls(self, calls: int) -> None:
        """Declares how many calls are planned (an RL run's rollout steps, a trainer's steps): "auto" uses it."""
        self.expected_calls = max(self.expected_calls, int(calls))

    def wants_compile(self, device: torch.device | str) -> bool:
        """Whether the next call on ``device`` runs compiled (before any fallback)."""
        return should_compile(self.setting, self.path, max(self.calls + 1, self.expected_calls), device)

    @property
    def is_compiled(self) -> bool:
        """True once a compiled call has run successfully."""
        return self._compiled is not None and not self.fallback_reason

    def __call__(self, *args: Any, device: torch.device | str, dynamic: tuple[torch.Tensor, ...] = ()):
        if torch.compiler.is_compiling():  # inside a model someone compiled as a whole: that compile covers it
            return self.fn(*args)
        self.calls += 1
        if self.fallback_reason:
            return self.fn(*args)
        device_type = device.type if isinstance(device, torch.device) else torch.device(device).type
        # Decided once per device type: the per-call check would cost a step a tenth of its compiled time.
        if device_type not in self._decided:
            if not self.wants_compile(device):
                return self.fn(*args)
            self._decided.add(device_type)
        if self._compiled is None:
            reason = compiler_missing() if device_type == "cpu" else ""
            if reason:
                return self._fall_back(reason, args)
            self._compiled = self.build()
        mark_batch_dynamic(dynamic)
        try:
            return self._compiled(*args)
        except Exception as exc:  # noqa: BLE001 - any failure of the compiler falls back, see below
            # Run eagerly: if that raises too, the error is the caller's (bad input), not the compiler's.
            result = self.fn(*args)
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            self.fallback_reason = f"torch.compile raised {type(exc).__name__}: {first_line}"[:300]
            _log_once(self.fallback_reason)
            return result

    def _fall_back(self, reason: str, args: tuple) -> Any:
        self.fallback_reason = reason
        _log_once(reason)
        return self.fn(*args)


def configure_stacks(
    model: torch.nn.Module, setting: CompileSetting, step_calls: int = 0, forward_calls: int = 0
) -> int:
    """Sets the compile switch of every ``xLSTMStack`` inside ``model`` and declares the planned calls.

    Args:
        model: A module holding xLSTM stacks (a policy, a forecaster's network, a language model).
        setting: ``True``, ``False`` or ``"auto"``.
        step_calls: Planned ``step`` calls per stack (an RL run's rollout steps); "auto" compiles ``step`` when
            they reach ``AUTO_MIN_CALLS["step"]``. Default 0 (none declared: calls are counted).
        forward_calls: Planned whole-sequence passes per stack (training steps); likewise. Default 0.

    Returns:
        How many stacks were set.
    """
    from xlstm_seq.stack import xLSTMStack  # the stack imports this module

    check_compile_setting(setting)
    stacks = [m for m in model.modules() if isinstance(m, xLSTMStack)]
    for stack in stacks:
        stack.compile_mode = setting
        stack.compiled_path("step").expect_calls(step_calls)
        stack.compiled_path("forward").expect_calls(forward_calls)
    return len(stacks)
