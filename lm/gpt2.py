"""GPT-2 in one readable file (after nanoGPT): learned positions, causal SDPA attention, tied embeddings.

    model = GPT2(GPT2Config(num_layers=12, num_heads=12, embedding_dim=768))   # 124M with vocab 50304
    logits = model(idx)                       # idx (B, T) int64 -> (B, T, vocab_size)
    logits = model(inputs_embeds=x)           # x (B, T, E) -> (B, T, vocab_size)

Initialisation follows GPT-2: normal(0, 0.02) weights, zero biases, and the residual output projections
scaled by 1 / sqrt(2 * num_layers) so the residual stream does not grow with depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xlstm_seq.config import ConfigMixin
from xlstm_seq.lm.sampling import sample_next_token
from xlstm_seq.lm.token_inputs import embed_tokens


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass
class GPT2Config(ConfigMixin):
    """Size of a GPT-2 decoder."""

    vocab_size: int = 50304
    """Rows of the token embedding (GPT-2's 50,257 padded to a multiple of 64)."""
    context_length: int = 1024
    """Longest sequence: the number of learned position embeddings."""
    num_layers: int = 12
    """Transformer blocks."""
    num_heads: int = 12
    """Attention heads per block."""
    embedding_dim: int = 768
    """Model width E."""
    dropout: float = 0.0
    """Dropout on embeddings, attention weights and residual branches."""
    bias: bool = True
    """Biases in the linear layers and LayerNorms (GPT-2 has them)."""

    def __post_init__(self) -> None:
        _require(self.vocab_size >= 1, f"vocab_size must be >= 1, got {self.vocab_size}")
        _require(self.context_length >= 1, f"context_length must be >= 1, got {self.context_length}")
        _require(self.num_layers >= 1, f"num_layers must be >= 1, got {self.num_layers}")
        _require(self.num_heads >= 1, f"num_heads must be >= 1, got {self.num_heads}")
        _require(
            self.embedding_dim % self.num_heads == 0,
            f"embedding_dim ({self.embedding_dim}) must be divisible by num_heads ({self.num_heads})",
        )
        _require(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention through ``F.scaled_dot_product_attention``."""

    def __init__(self, config: GPT2Config):
        super().__init__()
        self.num_heads = config.num_heads
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.embedding_dim, 3 * config.embedding_dim, bias=config.bias)
        self.proj = nn.Linear(config.embedding_dim, config.embedding_dim, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        B, T, E = x.shape
        q, k, v = self.qkv(x).split(E, dim=2)  # each (B, T, E)
        # (B, T, E) -> (B, H, T, E / H)
        q, k, v = (t.view(B, T, self.num_heads, E // self.num_heads).transpose(1, 2) for t in (q, k, v))
        dropout = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)  # (B, H, T, E / H)
        y = y.transpose(1, 2).contiguous().view(B, T, E)  # (B, T, E)
        return self.resid_dropout(self.proj(y))


class MLP(nn.Module):
    """The position-wise feed-forward net: E -> 4E -> GELU (tanh) -> E."""

    def __init__(self, config: GPT2Config):
        super().__init__()
        self.fc = nn.Linear(config.embedding_dim, 4 * config.embedding_dim, bias=config.bias)
        self.proj = nn.Linear(4 * config.embedding_dim, config.embedding_dim, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x), approximate="tanh")))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: GPT2Config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.embedding_dim, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.embedding_dim, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2(nn.Module):
    """GPT-2 language model; ``forward`` returns next-token logits for every position."""

    def __init__(self, config: GPT2Config):
        super().__init__()
        if not isinstance(config, GPT2Config):
            raise TypeError(f"GPT2 expects a GPT2Config, got {type(config).__name__}")
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.embedding_dim)
        self.wpe = nn.Embedding(config.context_length, config.embedding_dim)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.num_layers)])
        self.ln_f = nn.LayerNorm(config.embedding_dim, bias=config.bias)
        self.lm_head = nn.Linear(config.embedding_dim, config.vocab_size, bias=False)
        # Tied embeddings: the output head reuses the token embedding matrix.
        self.lm_head.weight = self.wte.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 initialisation: N(0, 0.02), zero biases, residual projections N(0, 0.02 / sqrt(2 * num_layers))."""
        residual_std = 0.02 / math.sqrt(2 * self.config.num_layers)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                std = residual_std if name.endswith(".proj") else 0.02
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Parameters counted once (the tied head is not counted twice); optionally without embeddings."""
        total = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            total -= self.wte.weight.numel() + self.wpe.weight.numel()
        return total

    def forward(self, idx: Tensor | None = None, *, inputs_embeds: Tensor | None = None) -> Tensor:
        """idx (B, T) int64 token ids, or inputs_embeds (B, T, E) -> logits (B, T, vocab_size)."""
        x = embed_tokens(self.wte, idx, inputs_embeds, self.config.embedding_dim)  # (B, T, E)
        seq_len = x.shape[1]
        if seq_len > self.config.context_length:
            raise ValueError(
                f"sequence length T = {seq_len} exceeds GPT2Config.context_length = {self.config.context_length}"
            )
        pos = torch.arange(seq_len, device=x.device)  # (T,)
        x = self.drop(x + self.wpe(pos))  # (B, T, E)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))  # (B, T, vocab_size)

    @torch.no_grad()
    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Samples ``max_new_tokens`` after ``idx`` (B, T) -> (B, T + max_new_tokens).

        Each token reruns the model on the last ``context_length`` tokens (no KV cache: the baseline stays
        short); ``temperature`` 0 means greedy decoding.
        """
        for _ in range(max_new_tokens):
            window = idx[:, -self.config.context_length :]  # (B, <= context_length)
            token = sample_next_token(self(window)[:, -1], temperature, top_k, generator)  # (B,)
            idx = torch.cat([idx, token.unsqueeze(1)], dim=1)
        return idx
