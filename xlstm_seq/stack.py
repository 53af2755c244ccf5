"""xLSTMStack: residual mLSTM and sLSTM blocks with a stateful, length-agnostic API.

    stack = xLSTMStack(xLSTMConfig(embedding_dim=128, num_blocks=4, slstm_at=[1]))
    y, state = stack(x)                      # x (B, T, E), any T >= 1
    y2, state = stack(x2, state)             # continue where the last call stopped
    y_t, state = stack.step(x_t, state)      # x_t (B, E), constant memory per step
    stack = xLSTMStack(config, compile=False)  # never compile (default "auto", see xlstm_seq.compiled)

One full pass, the same sequence fed in chunks with the state carried, and T calls of ``step`` give the
same outputs; ``resets`` (B, T) clears the memory before the marked steps, as if the segments ran apart.

Inputs must have the dtype of the stack's parameters (float32 unless the stack was converted), as for any torch
module; under ``torch.autocast`` other floating dtypes are fine. The input is not cast silently: float64 data would
lose precision unnoticed, and a half-precision stack fed float32 would hide that the caller meant another dtype.
A state must come from a stack of the same sizes; one that does not is refused naming the sizes that differ.

``compile`` ("auto", True or False) runs ``forward`` and ``step`` through torch.compile on a CPU
(:mod:`xlstm_seq.compiled`): "auto" compiles a path once it is expected to run long enough to repay the first
compile; False keeps plain eager PyTorch. Inputs are checked eagerly either way.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn

from xlstm_seq.compiled import (
    COMPILE_OPTIONS,
    CompiledPath,
    CompileSetting,
    check_compile_setting,
    mark_batch_dynamic,
)
from xlstm_seq.config import xLSTMConfig
from xlstm_seq.kernels.registry import resolve_backend
from xlstm_seq.mlstm_layer import mLSTMBlock
from xlstm_seq.slstm_layer import sLSTMBlock
from xlstm_seq.state import mLSTMBlockState, sLSTMBlockState, xLSTMState


def run_block(block: nn.Module, x: Tensor, state, resets: Tensor | None):
    """One block over a sequence: x (B, T, E) -> y (B, T, E), state (the unit the compiled forward compiles)."""
    return block(x, state, resets)


def compiled_block_runner() -> Callable:
    """:func:`run_block` compiled, with the batch dimension of its tensors marked dynamic (sizes above 1)."""
    compiled = torch.compile(run_block, options=COMPILE_OPTIONS)

    def run(block: nn.Module, x: Tensor, state, resets: Tensor | None):
        mark_batch_dynamic([x, *(state.tensors() if state is not None else ()), *(() if resets is None else (resets,))])
        return compiled(block, x, state, resets)

    return run


class xLSTMStack(nn.Module):
    """A stack of xLSTM blocks over (B, T, E) sequences; see the module docstring for the contract."""

    def __init__(self, config: xLSTMConfig, compile: CompileSetting = "auto"):
        super().__init__()
        if not isinstance(config, xLSTMConfig):
            raise TypeError(f"xLSTMStack expects an xLSTMConfig, got {type(config).__name__}")
        self.config = config
        self.compile_mode = compile
        slstm_ids = set(config.slstm_block_ids)
        self.blocks = nn.ModuleList(
            [sLSTMBlock(config) if i in slstm_ids else mLSTMBlock(config) for i in range(config.num_blocks)]
        )
        self.post_norm = (
            nn.LayerNorm(config.embedding_dim, bias=config.bias) if config.add_post_blocks_norm else nn.Identity()
        )

    @property
    def block_types(self) -> list[str]:
        """ "m" or "s" per block, in order."""
        return ["s" if isinstance(b, sLSTMBlock) else "m" for b in self.blocks]

    @property
    def compile_mode(self) -> CompileSetting:
        """The compile switch of ``forward`` and ``step``: "auto", True or False (settable)."""
        return self._compile_mode

    @compile_mode.setter
    def compile_mode(self, value: CompileSetting) -> None:
        self._compile_mode = check_compile_setting(value)
        for path in self._paths().values():
            path.setting = self._compile_mode

    def compiled_path(self, name: str) -> CompiledPath:
        """The :class:`~xlstm_seq.compiled.CompiledPath` of ``"forward"`` or ``"step"``: declare a plan with
        ``expect_calls``, or read ``is_compiled`` and ``fallback_reason``. Built on first use, never pickled."""
        paths = self._paths()
        if name not in paths:
            if name == "forward":
                # Block by block: the stack's blocks of one kind share their compiled code (a 4-block stack compiles
                # like a 1-block one, plus one graph for the first block, whose input needs no gradient).
                build = lambda: partial(self._forward_blocks, run_block=compiled_block_runner())  # noqa: E731
                paths[name] = CompiledPath(self._forward_blocks, name, self._compile_mode, build=build)
            elif name == "step":
                # The whole step as one graph: one call per step keeps the latency lowest.
                paths[name] = CompiledPath(self._step_blocks, name, self._compile_mode)
            else:
                raise ValueError(f"compiled paths are 'forward' and 'step', got {name!r}")
        return paths[name]

    def _paths(self) -> dict[str, CompiledPath]:
        # Kept outside the module's attributes: compiled functions do not pickle, and a copy builds its own.
        return self.__dict__.setdefault("_compiled_paths", {})

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state = dict(state)
        state.pop("_compiled_paths", None)
        return state

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> xLSTMState:
        """The zero state for ``batch_size`` sequences."""
        device = torch.device(device) if device is not None else next(self.parameters()).device
        return xLSTMState([block.zero_state(batch_size, device) for block in self.blocks])

    def forward(
        self, x: Tensor, state: xLSTMState | None = None, resets: Tensor | None = None
    ) -> tuple[Tensor, xLSTMState]:
        """Runs a whole sequence.

        Args:
            x: (B, T, E) inputs, any T >= 1.
            state: the state returned by an earlier call, or None for the zero state.
            resets: (B, T) bool; True at step t clears the memory before step t (episode or document start).

        Returns:
            y (B, T, E) and the state after the last step.
        """
        self._check_input(x, expected_dims=3, name="x", shape_text="(B, T, E)")
        B, T, _ = x.shape
        if resets is not None:
            resets = self._check_resets(resets, B, T, x.device)
        states = self._check_state(state, B, x.device)
        self._resolve_backends(x.device)
        dynamic = self._batch_dims(x, states, resets)
        return self.compiled_path("forward")(x, states, resets, device=x.device, dynamic=dynamic)

    def _forward_blocks(
        self, x: Tensor, states: list, resets: Tensor | None, run_block: Callable = run_block
    ) -> tuple[Tensor, xLSTMState]:
        """The checked whole-sequence pass; ``run_block`` is :func:`run_block` or its compiled version."""
        new_states = []
        for block, block_state in zip(self.blocks, states, strict=True):
            x, block_state = run_block(block, x, block_state, resets)
            new_states.append(block_state)
        return self.post_norm(x), xLSTMState(new_states)

    def step(self, x_t: Tensor, state: xLSTMState | None = None) -> tuple[Tensor, xLSTMState]:
        """Advances one time step: x_t (B, E) -> y_t (B, E), next state. Reset rows first with ``state.reset``."""
        self._check_input(x_t, expected_dims=2, name="x_t", shape_text="(B, E)")
        states = self._check_state(state, x_t.shape[0], x_t.device)
        self._resolve_backends(x_t.device)
        dynamic = self._batch_dims(x_t, states, None)
        return self.compiled_path("step")(x_t, states, device=x_t.device, dynamic=dynamic)

    def _step_blocks(self, x_t: Tensor, states: list) -> tuple[Tensor, xLSTMState]:
        """The checked single step (the function ``step`` compiles)."""
        new_states = []
        for block, block_state in zip(self.blocks, states, strict=True):
            x_t, block_state = block.step(x_t, block_state)
            new_states.append(block_state)
        return self.post_norm(x_t), xLSTMState(new_states)

    def _resolve_backends(self, device: torch.device) -> None:
        # Resolved (and logged) once here, outside any compiled region, where logging would break the graph.
        kinds = set(self.block_types)
        if "m" in kinds:
            resolve_backend("mlstm", self.config.mlstm_backend, device)
        if "s" in kinds:
            resolve_backend("slstm", self.config.slstm_backend, device)

    @staticmethod
    def _batch_dims(x: Tensor, states: list, resets: Tensor | None) -> tuple[Tensor, ...]:
        """Every tensor with a batch dimension (dim 0): marked dynamic so that a new batch size reuses the graph."""
        if x.shape[0] == 1:  # torch specialises size 1 anyway: nothing to mark
            return ()
        tensors = [x] + ([resets] if resets is not None else [])
        for block_state in states:
            if block_state is not None:
                tensors += block_state.tensors()
        return tuple(tensors)

    def _check_input(self, x: Tensor, expected_dims: int, name: str, shape_text: str) -> None:
        E = self.config.embedding_dim
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape {shape_text}, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
        if x.dim() != expected_dims or x.shape[-1] != E or x.shape[0] == 0 or (expected_dims == 3 and x.shape[1] == 0):
            raise ValueError(f"{name} must have shape {shape_text} with E = {E} and B, T >= 1, got {tuple(x.shape)}")
        param = next(self.parameters())
        if x.device != param.device:
            raise ValueError(f"{name} is on {x.device} but the stack's parameters are on {param.device}")
        if x.dtype != param.dtype and not torch.is_autocast_enabled(x.device.type):
            raise TypeError(
                f"{name} has dtype {x.dtype} but the stack's parameters have dtype {param.dtype}: convert the input "
                f"({name}.to({param.dtype})) or the stack (stack.to({x.dtype})), or run under torch.autocast"
            )

    def _check_resets(self, resets: Tensor, B: int, T: int, device: torch.device) -> Tensor:
        if not isinstance(resets, Tensor) or resets.dtype != torch.bool:
            got = resets.dtype if isinstance(resets, Tensor) else type(resets).__name__
            raise TypeError(f"resets must be a bool tensor of shape (B, T) = ({B}, {T}), got {got}")
        if tuple(resets.shape) != (B, T):
            raise ValueError(f"resets must have shape (B, T) = ({B}, {T}), got {tuple(resets.shape)}")
        if resets.device != device:
            raise ValueError(f"resets is on {resets.device} but x is on {device}")
        return resets

    def _check_state(self, state: xLSTMState | None, B: int, device: torch.device) -> list:
        if state is None:
            return [None] * len(self.blocks)
        if not isinstance(state, xLSTMState):
            raise TypeError(
                f"state must be an xLSTMState (from an earlier call or init_state), got {type(state).__name__}"
            )
        if len(state.blocks) != len(self.blocks):
            raise ValueError(f"state has {len(state.blocks)} block states but the stack has {len(self.blocks)} blocks")
        for i, (kind, block_state) in enumerate(zip(self.block_types, state.blocks, strict=True)):
            expected = sLSTMBlockState if kind == "s" else mLSTMBlockState
            if not isinstance(block_state, expected):
                raise TypeError(f"state.blocks[{i}] must be {expected.__name__}, got {type(block_state).__name__}")
        for i, (block_state, expected) in enumerate(zip(state.blocks, self._state_shapes(), strict=True)):
            # Field by field from the cached shapes (not block_state.shapes(), whose dataclass walk costs a compiled
            # step a tenth of its time).
            for field, shape in expected.items():
                got = tuple(getattr(block_state, field).shape[1:])
                if got != shape:
                    raise ValueError(
                        f"state.blocks[{i}].{field} has shape {_batched(got)} but block {i} of this stack needs "
                        f"{_batched(shape)}, i.e. {type(block_state).SHAPES[field]}: the state comes from a "
                        f"stack of other sizes (this one: {self._sizes()})"
                    )
        if state.batch_size != B:
            raise ValueError(f"state has batch size {state.batch_size} but the input has B = {B}")
        if state.device != device:
            raise ValueError(f"state is on {state.device} but the input is on {device}; use state.to(device)")
        return list(state.blocks)

    def _state_shapes(self) -> list[dict[str, tuple[int, ...]]]:
        """Per block, the shape of each state field without the batch; worked out on first use (on meta tensors:
        nothing is allocated) and cached."""
        shapes = self.__dict__.get("_state_shape_cache")
        if shapes is None:
            shapes = [block.zero_state(1, torch.device("meta")).shapes() for block in self.blocks]
            self.__dict__["_state_shape_cache"] = shapes
        return shapes

    def _sizes(self) -> str:
        c = self.config
        sizes = f"embedding_dim={c.embedding_dim}, num_heads={c.num_heads}, num_blocks={c.num_blocks}"
        if "m" in self.block_types:
            sizes += f", mLSTM width={c.mlstm_inner_dim}, mlstm.conv_kernel_size={c.mlstm.conv_kernel_size}"
        if "s" in self.block_types:
            sizes += f", sLSTM heads={c.slstm_num_heads}, slstm.conv_kernel_size={c.slstm.conv_kernel_size}"
        return sizes


def _batched(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(["B", *map(str, shape)]) + ")"
