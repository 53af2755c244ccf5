"""The models compared on the synthetic tasks, all with the same shape: input encoder -> backbone -> classifier.

    model = build_model(ModelSpec("xlstm[1:1]", embedding_dim=64), task, context_length=320)
    logits = model(batch.inputs)   # (B, T) int64 or (B, T, F) float32 -> (B, T, num_classes)

Kinds:

- ``xlstm[0:1]``: xLSTMStack of sLSTM blocks only; ``xlstm[1:0]``: mLSTM blocks only; ``xlstm[1:1]``: alternating
  mLSTM and sLSTM blocks (``num_blocks`` must be even).
- ``lstm``: ``torch.nn.LSTM`` with ``num_blocks`` layers of hidden size ``embedding_dim``.
- ``gpt2``: the GPT-2 decoder of :mod:`xlstm_seq.lm.gpt2` (learned positions up to ``context_length``, causal
  attention, 4x MLP), fed our encoder's output through ``inputs_embeds``; its tied output embedding is the
  classifier.

The encoder is an ``nn.Embedding`` for token tasks and an ``nn.Linear`` for feature-vector tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from xlstm_seq.config import ConfigMixin, mLSTMLayerConfig, sLSTMLayerConfig, xLSTMConfig
from xlstm_seq.lm.gpt2 import GPT2, GPT2Config
from xlstm_seq.slstm_layer import sLSTMLayer
from xlstm_seq.stack import xLSTMStack
from xlstm_seq_bench.synthetic.tasks import SyntheticTask

__all__ = ["MODEL_KINDS", "ModelSpec", "SyntheticModel", "build_model", "count_parameters", "slstm_recurrent_weights"]

XLSTM_RATIOS = {"xlstm[0:1]": "0:1", "xlstm[1:0]": "1:0", "xlstm[1:1]": "1:1"}
MODEL_KINDS = (*XLSTM_RATIOS, "lstm", "gpt2")


@dataclass
class ModelSpec(ConfigMixin):
    """Size of one model in the comparison."""

    kind: str = "xlstm[1:1]"
    """One of MODEL_KINDS."""
    embedding_dim: int = 64
    """Model width E (the LSTM's hidden size)."""
    num_blocks: int = 2
    """xLSTM blocks, LSTM layers or Transformer blocks."""
    num_heads: int = 4
    """Heads of the mLSTM/sLSTM or of the attention (unused by the LSTM)."""
    slstm_heads: int | None = None
    """Heads of the sLSTM blocks (1: memory mixing across all units); None uses ``num_heads``."""
    learning_rate: float | None = None
    """Peak learning rate for this model; None uses the benchmark's ``train.learning_rate``."""
    slstm_forget_bias: float | None = None
    """Constant initial forget-gate bias of the sLSTM layers (0 forgets readily, like ``nn.LSTM``); None keeps
    the core's initialisation (spread over 3..6, long memory)."""
    slstm_input_bias: float | None = None
    """Constant initial input-gate bias of the sLSTM layers (the exponential input gate starts at exp(bias));
    None keeps the core's initialisation (about 0)."""
    slstm_recurrent_lr_factor: float | None = None
    """The sLSTM recurrent weights train at this multiple of the model's learning rate; None: the same rate."""
    slstm_conv_kernel: int | None = None
    """Causal convolution width before the sLSTM gates (1 disables it); None keeps the core's default."""
    mlstm_conv_kernel: int | None = None
    """Causal convolution width in front of the mLSTM's q and k (1 disables it); None keeps the core's default."""
    mlstm_qkv_blocksize: int | None = None
    """Channels per block of the mLSTM's block-diagonal q/k/v projections (larger: denser projections, more
    parameters); None keeps the core's default."""

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model kind must be one of {MODEL_KINDS}, got {self.kind!r}")
        if self.slstm_heads is not None and (self.slstm_heads < 1 or self.embedding_dim % self.slstm_heads):
            raise ValueError(
                f"model {self.kind}: slstm_heads must divide embedding_dim ({self.embedding_dim}), "
                f"got {self.slstm_heads}"
            )
        for name in ("embedding_dim", "num_blocks", "num_heads"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"model {self.kind}: {name} must be an int >= 1, got {getattr(self, name)!r}")
        if self.mlstm_qkv_blocksize is not None and self.mlstm_qkv_blocksize < 1:
            raise ValueError(
                f"model {self.kind}: mlstm_qkv_blocksize must be >= 1 or None, got {self.mlstm_qkv_blocksize}"
            )
        for name in ("slstm_conv_kernel", "mlstm_conv_kernel"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"model {self.kind}: {name} must be >= 1 or None, got {getattr(self, name)}")
        if self.slstm_recurrent_lr_factor is not None and not self.slstm_recurrent_lr_factor > 0:
            raise ValueError(
                f"model {self.kind}: slstm_recurrent_lr_factor must be > 0 or None, "
                f"got {self.slstm_recurrent_lr_factor}"
            )
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(f"model {self.kind}: learning_rate must be > 0 or None, got {self.learning_rate}")
        if self.kind != "lstm" and self.embedding_dim % self.num_heads:
            raise ValueError(
                f"model {self.kind}: embedding_dim ({self.embedding_dim}) must be divisible by num_heads "
                f"({self.num_heads})"
            )
        if self.kind == "xlstm[1:1]" and self.num_blocks % 2:
            raise ValueError(f"model xlstm[1:1] needs an even num_blocks (m, s, m, s, ...), got {self.num_blocks}")


class SyntheticModel(nn.Module):
    """Encoder -> backbone -> classifier over a whole sequence; see the module docstring."""

    def __init__(self, spec: ModelSpec, task: SyntheticTask, context_length: int):
        super().__init__()
        self.spec = spec
        E, C = spec.embedding_dim, task.num_classes
        self.token_inputs = task.input_features is None
        if self.token_inputs:
            self.encoder: nn.Module = nn.Embedding(task.input_vocab, E)
        else:
            self.encoder = nn.Linear(task.input_features, E)
        self.head: nn.Module | None = None
        if spec.kind in XLSTM_RATIOS:
            qkv = {} if spec.mlstm_qkv_blocksize is None else {"qkv_proj_blocksize": spec.mlstm_qkv_blocksize}
            if spec.mlstm_conv_kernel is not None:
                qkv["conv_kernel_size"] = spec.mlstm_conv_kernel
            conv = {} if spec.slstm_conv_kernel is None else {"conv_kernel_size": spec.slstm_conv_kernel}
            config = xLSTMConfig(
                embedding_dim=E,
                num_blocks=spec.num_blocks,
                num_heads=spec.num_heads,
                block_ratio=XLSTM_RATIOS[spec.kind],
                slstm=sLSTMLayerConfig(num_heads=spec.slstm_heads, **conv),
                mlstm=mLSTMLayerConfig(**qkv),
            )
            self.backbone: nn.Module = xLSTMStack(config)
            _set_slstm_gate_biases(self.backbone, spec.slstm_input_bias, spec.slstm_forget_bias)
            self.head = nn.Linear(E, C)
        elif spec.kind == "lstm":
            self.backbone = nn.LSTM(E, E, num_layers=spec.num_blocks, batch_first=True)
            self.head = nn.Linear(E, C)
        else:
            config = GPT2Config(
                vocab_size=C,
                context_length=context_length,
                num_layers=spec.num_blocks,
                num_heads=spec.num_heads,
                embedding_dim=E,
                dropout=0.0,
                bias=True,
            )
            self.backbone = GPT2(config)

    def forward(self, inputs: Tensor) -> Tensor:
        """inputs (B, T) int64 or (B, T, F) float32 -> logits (B, T, num_classes)."""
        if self.token_inputs and (inputs.dim() != 2 or inputs.dtype != torch.int64):
            raise TypeError(f"token inputs must be an int64 tensor (B, T), got {inputs.dtype} {tuple(inputs.shape)}")
        if not self.token_inputs and (inputs.dim() != 3 or not inputs.is_floating_point()):
            got = f"{inputs.dtype} {tuple(inputs.shape)}"
            raise TypeError(f"feature inputs must be a float tensor (B, T, F), got {got}")
        x = self.encoder(inputs)  # (B, T, E)
        if self.spec.kind == "gpt2":
            return self.backbone(inputs_embeds=x)  # (B, T, C)
        y, _ = self.backbone(x)  # (B, T, E); nn.LSTM and xLSTMStack both return (output, state)
        return self.head(y)  # (B, T, C)


def _set_slstm_gate_biases(stack: nn.Module, input_bias: float | None, forget_bias: float | None) -> None:
    """Sets the input- and forget-gate biases of every sLSTM layer in ``stack`` (gate order i, f, z, o); None
    leaves that gate's initialisation alone."""
    with torch.no_grad():
        for module in stack.modules():
            if isinstance(module, sLSTMLayer):
                for gate, value in ((0, input_bias), (1, forget_bias)):
                    if value is not None:
                        module.b[gate].fill_(value)  # (H, D)


def slstm_recurrent_weights(model: nn.Module) -> list[nn.Parameter]:
    """The recurrent weight tensors R (H, D, 4, D) of every sLSTM layer in ``model``."""
    return [module.R for module in model.modules() if isinstance(module, sLSTMLayer)]


def build_model(spec: ModelSpec, task: SyntheticTask, context_length: int) -> SyntheticModel:
    """The model ``spec`` for ``task``; ``context_length`` is the longest T the Transformer must accept."""
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"build_model expects a ModelSpec, got {type(spec).__name__}")
    return SyntheticModel(spec, task, context_length)


def count_parameters(model: SyntheticModel, trained_length: int | None = None) -> int:
    """Trainable parameters; for the Transformer, position embeddings beyond ``trained_length`` are left out
    (they never receive a gradient, so counting them would flatter its size)."""
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if model.spec.kind == "gpt2" and trained_length is not None:
        wpe = model.backbone.wpe.weight  # (context_length, E)
        total -= max(0, wpe.shape[0] - trained_length) * wpe.shape[1]
    return total
