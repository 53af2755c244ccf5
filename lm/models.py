"""Choosing and sizing the language models: one config that names GPT-2, xLSTM or the LSTM baseline, the survey's
sizes, parameter counts without allocating, and the FLOPs per token used for MFU."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from xlstm_seq.config import ConfigMixin, xLSTMConfig
from xlstm_seq.lm.gpt2 import GPT2, GPT2Config
from xlstm_seq.lm.lstm_lm import LSTMLM, LSTMLMConfig
from xlstm_seq.lm.xlstm_lm import xLSTMLM, xLSTMLMConfig

MODEL_KINDS = ("gpt2", "xlstm", "lstm")


@dataclass
class LMModelConfig(ConfigMixin):
    """Which language model to build and its size; only the section named by ``kind`` is used."""

    kind: str = "xlstm"
    """"gpt2", "xlstm" or "lstm"."""
    gpt2: GPT2Config = field(default_factory=GPT2Config)
    """Size of the GPT-2 (used when kind is "gpt2")."""
    xlstm: xLSTMLMConfig = field(default_factory=xLSTMLMConfig)
    """Size of the xLSTM LM (used when kind is "xlstm")."""
    lstm: LSTMLMConfig = field(default_factory=LSTMLMConfig)
    """Size of the LSTM LM (used when kind is "lstm")."""

    def __post_init__(self) -> None:
        if isinstance(self.gpt2, dict):
            self.gpt2 = GPT2Config.from_dict(self.gpt2)
        if isinstance(self.xlstm, dict):
            self.xlstm = xLSTMLMConfig.from_dict(self.xlstm)
        if isinstance(self.lstm, dict):
            self.lstm = LSTMLMConfig.from_dict(self.lstm)
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model kind must be one of {MODEL_KINDS}, got {self.kind!r}")

    @property
    def section(self) -> GPT2Config | xLSTMLMConfig | LSTMLMConfig:
        """The size section named by ``kind``."""
        return getattr(self, self.kind)

    @property
    def vocab_size(self) -> int:
        return self.section.vocab_size

    @property
    def context_length(self) -> int | None:
        """GPT-2's longest sequence; None for the recurrent models (no cap)."""
        return self.gpt2.context_length if self.kind == "gpt2" else None


def build_model(config: LMModelConfig) -> nn.Module:
    """The GPT2, xLSTMLM or LSTMLM named by ``config.kind``."""
    if not isinstance(config, LMModelConfig):
        raise TypeError(f"build_model expects an LMModelConfig, got {type(config).__name__}")
    builders = {"gpt2": GPT2, "xlstm": xLSTMLM, "lstm": LSTMLM}
    return builders[config.kind](config.section)


def survey_gpt2_config(vocab_size: int = 50304, context_length: int = 256) -> GPT2Config:
    """The survey's GPT-2: 12 layers, 12 heads, width 768 (124M parameters with a 50,304 vocabulary)."""
    return GPT2Config(
        vocab_size=vocab_size, context_length=context_length, num_layers=12, num_heads=12, embedding_dim=768
    )


def survey_xlstm_config(vocab_size: int = 50304, backend: str = "auto") -> xLSTMLMConfig:
    """The survey's xLSTM: 24 blocks, width 768, sLSTM at blocks 3 and 20, 4 heads, tied (125.06M)."""
    stack = xLSTMConfig(embedding_dim=768, num_blocks=24, slstm_at=[3, 20], num_heads=4, backend=backend)
    return xLSTMLMConfig(vocab_size=vocab_size, xlstm=stack, tie_weights=True)


def count_parameters(config: LMModelConfig) -> int:
    """Parameters of the model ``config`` describes, built on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        return build_model(config).num_parameters()


def flops_per_token(model: nn.Module, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward), the PaLM-appendix estimate used by nanoGPT.

    6 per weight of every matrix the token passes through (the embedding lookup excluded, the tied head
    included), plus for GPT-2 the attention scores 12 * layers * width * seq_len. For the xLSTM the
    recurrent mixing costs O(head_dim^2) per token and head, which is included per mLSTM/sLSTM block.
    """
    if isinstance(model, GPT2):
        cfg = model.config
        matrix = model.num_parameters() - model.wpe.weight.numel()
        return 6.0 * matrix + 12.0 * cfg.num_layers * cfg.embedding_dim * seq_len
    if isinstance(model, xLSTMLM):
        stack_cfg = model.config.xlstm
        matrix = model.num_parameters()
        if not model.config.tie_weights:
            matrix -= model.wte.weight.numel()
        mixing = 0.0
        for kind in model.stack.block_types:
            if kind == "m":
                inner = stack_cfg.mlstm_inner_dim
                # Memory update (k v^T) and read-out (C^T q): 2 multiply-adds per head_dim^2 per head, each 2 FLOPs,
                # times 3 for forward + backward.
                mixing += 12.0 * inner * (inner // stack_cfg.num_heads)
            else:
                # Recurrent matrix R: 4 gates x head_dim^2 multiply-adds per head, 2 FLOPs each, times 3.
                E = stack_cfg.embedding_dim
                mixing += 24.0 * E * (E // stack_cfg.slstm_num_heads)
        return 6.0 * matrix + mixing
    if isinstance(model, LSTMLM):
        # Every weight is one multiply-add per token (the recurrent matrices included); no mixing beyond them.
        matrix = model.num_parameters()
        if not model.config.tie_weights:
            matrix -= model.wte.weight.numel()
        return 6.0 * matrix
    raise TypeError(f"flops_per_token expects a GPT2, xLSTMLM or LSTMLM, got {type(model).__name__}")
