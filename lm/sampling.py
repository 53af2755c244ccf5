"""Next-token sampling shared by the language models, and the generation loop of the recurrent ones (xLSTM, LSTM)."""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor


def sample_next_token(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """logits (B, V) -> token ids (B,): greedy when temperature is 0, else softmax sampling over the top k."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


class RecurrentLM(Protocol):
    """A language model that carries a state: a whole prompt in one pass, then one token at a time."""

    def forward_with_state(self, idx: Tensor, state: Any = None) -> tuple[Tensor, Any]: ...

    def step(self, idx_t: Tensor, state: Any = None) -> tuple[Tensor, Any]: ...


def check_step_tokens(idx_t: Tensor) -> None:
    """Refuses anything but one integer token id per sequence, idx_t (B,), naming what came instead."""
    if not isinstance(idx_t, Tensor) or idx_t.dim() != 1 or idx_t.dtype not in (torch.int64, torch.int32):
        got = tuple(idx_t.shape) if isinstance(idx_t, Tensor) else type(idx_t).__name__
        raise ValueError(f"idx_t must be an int64 tensor of shape (B,), got {got}")


@torch.no_grad()
def generate_recurrent(
    model: RecurrentLM,
    idx: Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Samples ``max_new_tokens`` after the prompt ``idx`` (B, T) -> (B, T + max_new_tokens): the prompt in one pass,
    then one ``step`` per new token on the carried state, so the cost per token does not grow with the length."""
    logits, state = model.forward_with_state(idx)
    next_logits = logits[:, -1]  # (B, V)
    out = [idx]
    for _ in range(max_new_tokens):
        token = sample_next_token(next_logits, temperature, top_k, generator)  # (B,)
        out.append(token.unsqueeze(1))
        next_logits, state = model.step(token, state)
    return torch.cat(out, dim=1)
