"""LSTM language model (the classic baseline): token embedding -> nn.LSTM layers -> tied output head.

    model = LSTMLM(LSTMLMConfig(vocab_size=33278, embedding_dim=128, hidden_size=256, num_layers=2))
    logits = model(idx)                                   # idx (B, T) -> (B, T, vocab_size); any T
    logits, state = model.forward_with_state(idx, state)  # continue a sequence in chunks
    logits_t, state = model.step(idx_t, state)            # idx_t (B,) -> (B, vocab_size), constant memory

The layout is the word-level LSTM LM of Zaremba et al. (2014) and PyTorch's ``word_language_model`` example, with
the output head tied to the embedding (Press & Wolf, 2017; Inan et al., 2017). When the LSTM is wider than the
embedding, a linear map brings its output back to the embedding width so that the head can stay tied. The forward
signature is GPT2's and xLSTMLM's, so the trainer and the evaluation functions take it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from xlstm_seq.config import ConfigMixin
from xlstm_seq.lm.sampling import check_step_tokens, generate_recurrent
from xlstm_seq.lm.token_inputs import embed_tokens

LSTMState = tuple[Tensor, Tensor]
"""(h, c), each (num_layers, B, hidden_size): nn.LSTM's state, batch in the second dimension."""


@dataclass
class LSTMLMConfig(ConfigMixin):
    """Size of an LSTM language model."""

    vocab_size: int = 50304
    """Rows of the token embedding."""
    embedding_dim: int = 256
    """Width E of the token embedding (and of the tied head)."""
    hidden_size: int | None = None
    """Units per LSTM layer; None uses ``embedding_dim``. When it differs from ``embedding_dim`` a linear map
    (hidden_size -> embedding_dim, no bias) feeds the head."""
    num_layers: int = 2
    """Stacked LSTM layers."""
    dropout: float = 0.0
    """Dropout on the embeddings, between LSTM layers and before the head."""
    tie_weights: bool = True
    """The output head reuses the token embedding matrix."""
    forget_bias: float = 1.0
    """Initial forget-gate bias (Jozefowicz et al., 2015: 1 keeps gradients flowing early in training)."""

    def __post_init__(self) -> None:
        for name in ("vocab_size", "embedding_dim", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size is not None and self.hidden_size < 1:
            raise ValueError(f"hidden_size must be >= 1 or None, got {self.hidden_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def hidden(self) -> int:
        """Units per LSTM layer (``hidden_size``, or ``embedding_dim`` when that is None)."""
        return self.hidden_size if self.hidden_size is not None else self.embedding_dim


class LSTMLM(nn.Module):
    """LSTM language model with GPT2's forward signature plus stateful chunked and step-wise inference."""

    def __init__(self, config: LSTMLMConfig):
        super().__init__()
        if not isinstance(config, LSTMLMConfig):
            raise TypeError(f"LSTMLM expects an LSTMLMConfig, got {type(config).__name__}")
        self.config = config
        E, H = config.embedding_dim, config.hidden
        self.wte = nn.Embedding(config.vocab_size, E)
        self.drop = nn.Dropout(config.dropout)
        inner_dropout = config.dropout if config.num_layers > 1 else 0.0
        self.lstm = nn.LSTM(E, H, num_layers=config.num_layers, dropout=inner_dropout, batch_first=True)
        self.proj = nn.Linear(H, E, bias=False) if H != E else nn.Identity()
        self.lm_head = nn.Linear(E, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.wte.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Embedding (and an untied head) uniform in [-0.1, 0.1] as in Zaremba et al.; the LSTM keeps PyTorch's
        uniform(+-1/sqrt(H)) weights, with the forget gates' bias set to ``forget_bias``."""
        nn.init.uniform_(self.wte.weight, -0.1, 0.1)
        if not self.config.tie_weights:
            nn.init.uniform_(self.lm_head.weight, -0.1, 0.1)
        self.lstm.reset_parameters()
        H = self.config.hidden
        with torch.no_grad():
            for layer in range(self.config.num_layers):
                # nn.LSTM orders the gates i, f, g, o and adds two biases; the forget gate gets its bias once.
                getattr(self.lstm, f"bias_ih_l{layer}")[H : 2 * H].fill_(self.config.forget_bias)
                getattr(self.lstm, f"bias_hh_l{layer}")[H : 2 * H].zero_()
        if isinstance(self.proj, nn.Linear):
            self.proj.reset_parameters()

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Parameters counted once (a tied head is not counted twice); optionally without the embedding."""
        total = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            total -= self.wte.weight.numel()
        return total

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> LSTMState:
        """The zero state (h, c) for ``batch_size`` sequences."""
        shape = (self.config.num_layers, batch_size, self.config.hidden)
        dtype = self.wte.weight.dtype
        return torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype)

    def forward(self, idx: Tensor | None = None, *, inputs_embeds: Tensor | None = None) -> Tensor:
        """idx (B, T) int64 token ids, or inputs_embeds (B, T, E) -> logits (B, T, vocab_size)."""
        logits, _ = self.forward_with_state(idx, inputs_embeds=inputs_embeds)
        return logits

    def forward_with_state(
        self, idx: Tensor | None = None, state: LSTMState | None = None, *, inputs_embeds: Tensor | None = None
    ) -> tuple[Tensor, LSTMState]:
        """Like ``forward`` but continues from ``state`` and returns the state after the last token.

        Args:
            idx: (B, T) token ids (or give ``inputs_embeds`` (B, T, E) instead).
            state: (h, c) returned by an earlier call; None starts from the zero state.

        Returns:
            logits (B, T, vocab_size) and the new state (h, c), each (num_layers, B, hidden_size).
        """
        x = self.drop(embed_tokens(self.wte, idx, inputs_embeds, self.config.embedding_dim))  # (B, T, E)
        y, state = self.lstm(x, state)  # (B, T, H)
        return self.lm_head(self.proj(self.drop(y))), state  # (B, T, vocab_size)

    def step(self, idx_t: Tensor, state: LSTMState | None = None) -> tuple[Tensor, LSTMState]:
        """One token per sequence: idx_t (B,) -> logits (B, vocab_size), next state."""
        check_step_tokens(idx_t)
        logits, state = self.forward_with_state(idx_t.unsqueeze(1), state)  # (B, 1, V)
        return logits[:, 0], state

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

        The prompt runs in one pass; each new token is one ``step`` on the carried state. ``temperature`` 0 means
        greedy decoding.
        """
        return generate_recurrent(self, idx, max_new_tokens, temperature, top_k, generator)
