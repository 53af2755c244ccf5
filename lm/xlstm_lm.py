"""xLSTM language model: token embedding -> xLSTMStack -> final norm -> tied output head.

    model = xLSTMLM(xLSTMLMConfig(vocab_size=50304, xlstm=xLSTMConfig(embedding_dim=768, num_blocks=24, ...)))
    logits = model(idx)                                # idx (B, T) -> (B, T, vocab_size); any T
    logits, state = model.forward_with_state(idx, state)  # continue a sequence in chunks
    logits_t, state = model.step(idx_t, state)          # idx_t (B,) -> (B, vocab_size), constant memory

There is no context-length cap: the recurrent state carries everything before the current chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from xlstm_seq.components import small_init_
from xlstm_seq.config import ConfigMixin, xLSTMConfig
from xlstm_seq.lm.sampling import check_step_tokens, generate_recurrent
from xlstm_seq.lm.token_inputs import embed_tokens
from xlstm_seq.stack import xLSTMStack
from xlstm_seq.state import xLSTMState


@dataclass
class xLSTMLMConfig(ConfigMixin):
    """An xLSTM language model: vocabulary, stack and head."""

    vocab_size: int = 50304
    """Rows of the token embedding (GPT-2's 50,257 padded to a multiple of 64)."""
    xlstm: xLSTMConfig = field(default_factory=xLSTMConfig)
    """The xLSTM stack (width, blocks, sLSTM positions, heads, backend)."""
    tie_weights: bool = True
    """The output head reuses the token embedding matrix."""
    embedding_dropout: float = 0.0
    """Dropout on the token embeddings."""

    def __post_init__(self) -> None:
        if isinstance(self.xlstm, dict):
            self.xlstm = xLSTMConfig.from_dict(self.xlstm)
        if not isinstance(self.xlstm, xLSTMConfig):
            raise TypeError(f"xlstm must be an xLSTMConfig or a mapping, got {type(self.xlstm).__name__}")
        if self.vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {self.vocab_size}")
        if not 0.0 <= self.embedding_dropout < 1.0:
            raise ValueError(f"embedding_dropout must be in [0, 1), got {self.embedding_dropout}")


class xLSTMLM(nn.Module):
    """xLSTM language model with GPT2's forward signature plus stateful chunked and step-wise inference."""

    def __init__(self, config: xLSTMLMConfig):
        super().__init__()
        if not isinstance(config, xLSTMLMConfig):
            raise TypeError(f"xLSTMLM expects an xLSTMLMConfig, got {type(config).__name__}")
        self.config = config
        E = config.xlstm.embedding_dim
        self.wte = nn.Embedding(config.vocab_size, E)
        self.drop = nn.Dropout(config.embedding_dropout)
        self.stack = xLSTMStack(config.xlstm)
        # The stack ends in a LayerNorm unless its config turns that off; then the LM adds its own.
        self.final_norm = nn.Identity() if config.xlstm.add_post_blocks_norm else nn.LayerNorm(E)
        self.lm_head = nn.Linear(E, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.wte.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Small init (std sqrt(2 / (5 E))) for the embedding and an untied head; the stack inits itself."""
        E = self.config.xlstm.embedding_dim
        small_init_(self.wte.weight, E)
        if not self.config.tie_weights:
            small_init_(self.lm_head.weight, E)

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Parameters counted once (a tied head is not counted twice); optionally without the embedding."""
        total = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            total -= self.wte.weight.numel()
        return total

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> xLSTMState:
        """The zero recurrent state for ``batch_size`` sequences."""
        return self.stack.init_state(batch_size, device)

    def forward(self, idx: Tensor | None = None, *, inputs_embeds: Tensor | None = None) -> Tensor:
        """idx (B, T) int64 token ids, or inputs_embeds (B, T, E) -> logits (B, T, vocab_size)."""
        logits, _ = self.forward_with_state(idx, inputs_embeds=inputs_embeds)
        return logits

    def forward_with_state(
        self,
        idx: Tensor | None = None,
        state: xLSTMState | None = None,
        *,
        inputs_embeds: Tensor | None = None,
        resets: Tensor | None = None,
    ) -> tuple[Tensor, xLSTMState]:
        """Like ``forward`` but continues from ``state`` and returns the state after the last token.

        Args:
            idx: (B, T) token ids (or give ``inputs_embeds`` (B, T, E) instead).
            state: the state returned by an earlier call; None starts from the zero state.
            resets: (B, T) bool; True clears the memory before that token (a document start).

        Returns:
            logits (B, T, vocab_size) and the new state.
        """
        x = self.drop(embed_tokens(self.wte, idx, inputs_embeds, self.config.xlstm.embedding_dim))  # (B, T, E)
        y, state = self.stack(x, state, resets)  # (B, T, E)
        return self.lm_head(self.final_norm(y)), state  # (B, T, vocab_size)

    def step(self, idx_t: Tensor, state: xLSTMState | None = None) -> tuple[Tensor, xLSTMState]:
        """One token per sequence: idx_t (B,) -> logits (B, vocab_size), next state (constant memory)."""
        check_step_tokens(idx_t)
        x_t = self.drop(self.wte(idx_t))  # (B, E)
        y_t, state = self.stack.step(x_t, state)  # (B, E)
        return self.lm_head(self.final_norm(y_t)), state  # (B, vocab_size)

    @torch.no_grad()
    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Samples ``max_new_tokens`` after the prompt ``idx`` (B, T) -> (B, T + max_new_tokens).

        The prompt runs in one parallel pass; each new token is then one ``step`` on the carried state,
        so the cost per token does not grow with the length. ``temperature`` 0 means greedy decoding.
        """
        return generate_recurrent(self, idx, max_new_tokens, temperature, top_k, generator)
