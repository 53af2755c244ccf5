"""The input check both language models share: token ids (B, T) or ready embeddings (B, T, E), never both."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def embed_tokens(wte: nn.Embedding, idx: Tensor | None, inputs_embeds: Tensor | None, embedding_dim: int) -> Tensor:
    """Checks the inputs of a model's forward and returns (B, T, E) embeddings: ``wte(idx)`` or ``inputs_embeds``."""
    E = embedding_dim
    if (idx is None) == (inputs_embeds is None):
        raise ValueError("pass exactly one of idx (B, T) token ids or inputs_embeds (B, T, E)")
    if idx is not None:
        if not isinstance(idx, Tensor) or idx.dtype not in (torch.int64, torch.int32):
            got = idx.dtype if isinstance(idx, Tensor) else type(idx).__name__
            raise TypeError(f"idx must be an int64 tensor of shape (B, T), got {got}")
        if idx.dim() != 2 or idx.numel() == 0:
            raise ValueError(f"idx must have shape (B, T) with B, T >= 1, got {tuple(idx.shape)}")
        return wte(idx)
    if not isinstance(inputs_embeds, Tensor) or not inputs_embeds.is_floating_point():
        got = inputs_embeds.dtype if isinstance(inputs_embeds, Tensor) else type(inputs_embeds).__name__
        raise TypeError(f"inputs_embeds must be a floating-point tensor of shape (B, T, E), got {got}")
    if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != E or inputs_embeds.numel() == 0:
        raise ValueError(f"inputs_embeds must have shape (B, T, E) with E = {E}, got {tuple(inputs_embeds.shape)}")
    return inputs_embeds
