"""Scoring language models the survey's way, and better: sliding-window perplexity, LAMBADA last-word
accuracy and target perplexity, HellaSwag acc / acc_norm, and perplexity by word-frequency bucket.

Every function takes ``model`` as anything with ``model(idx (B, T)) -> logits (B, T, V)`` and a tokenizer
with tiktoken's ``encode_ordinary`` (and ``decode_single_token_bytes`` for the buckets), so a model whose
logits a test constructs gives answers known in advance.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xlstm_seq.lm.eval_data import HellaSwagItem

BUCKETS = (("rare", 0, 99), ("medium", 100, 1000), ("frequent", 1001, math.inf))
"""Word-frequency buckets (inclusive count ranges in the training split): rare < 100, medium 100-1,000,
frequent > 1,000."""


def _autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    if bf16 and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _log_probs(model: nn.Module, idx: Tensor, bf16: bool) -> Tensor:
    """idx (B, T) -> log-probabilities (B, T, V) in float32."""
    with _autocast(idx.device, bf16):
        logits = model(idx)  # (B, T, V)
    return F.log_softmax(logits.float(), dim=-1)


def _device_of(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


@torch.no_grad()
def token_nlls(
    model: nn.Module,
    tokens: Sequence[int] | Tensor,
    *,
    window: int = 256,
    stride: int = 128,
    batch_size: int = 8,
    bf16: bool = True,
) -> Tensor:
    """Negative log-likelihood of every token under sliding windows (the survey's protocol).

    Windows of ``window`` tokens start every ``stride`` tokens; each token is scored once, in the first
    window where it is new, so every token after the first window sees at least ``window - stride`` tokens
    of context. Token 0 has no prediction.

    Args:
        model: ``model(idx (B, T)) -> logits (B, T, V)``.
        tokens: (N,) token ids.

    Returns:
        (N,) float64 NLLs in nats; entry 0 is NaN.
    """
    # stride == window would leave each window's first token without a prediction.
    if not 1 <= stride < window:
        raise ValueError(f"need 1 <= stride < window, got stride {stride} and window {window}")
    ids = torch.as_tensor(tokens, dtype=torch.int64).flatten()
    N = ids.numel()
    if N < 2:
        raise ValueError(f"need at least 2 tokens to score, got {N}")
    spans = []  # (begin, end, first scored position)
    prev_end = 0
    for begin in range(0, N, stride):
        end = min(begin + window, N)
        spans.append((begin, end, max(prev_end, begin + 1)))
        prev_end = end
        if end == N:
            break
    device = _device_of(model)
    model.eval()
    out = torch.full((N,), float("nan"), dtype=torch.float64)
    # Full-length windows go in batches; the (at most one) shorter last window runs alone.
    groups: dict[int, list[tuple[int, int, int]]] = {}
    for span in spans:
        groups.setdefault(span[1] - span[0], []).append(span)
    for group in groups.values():
        for i in range(0, len(group), batch_size):
            chunk = group[i : i + batch_size]
            idx = torch.stack([ids[b:e] for b, e, _ in chunk]).to(device)  # (B, L)
            logp = _log_probs(model, idx[:, :-1], bf16)  # (B, L-1, V): position j predicts token j + 1
            picked = logp.gather(-1, idx[:, 1:].unsqueeze(-1)).squeeze(-1).double().cpu()  # (B, L-1)
            for row, (b, e, first) in enumerate(chunk):
                out[first:e] = -picked[row, first - b - 1 : e - b - 1]
    return out


def perplexity(nlls: Tensor) -> float:
    """exp(mean NLL) over the scored (non-NaN) entries."""
    scored = nlls[~torch.isnan(nlls)]
    return float(torch.exp(scored.mean()))


def sliding_window_perplexity(model: nn.Module, tokens: Sequence[int] | Tensor, **kwargs: Any) -> float:
    """Token-level perplexity under ``token_nlls``' sliding windows (window 256, stride 128 by default)."""
    return perplexity(token_nlls(model, tokens, **kwargs))


@torch.no_grad()
def score_continuations(
    model: nn.Module,
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
    *,
    max_len: int = 256,
    batch_size: int = 16,
    bf16: bool = True,
) -> list[tuple[float, bool]]:
    """Log-likelihood of each continuation after its context, and whether greedy decoding produces it.

    Context and continuation are joined and cut from the left to ``max_len`` tokens (the continuation is
    always kept whole); sequences are right-padded, which causal models never see.

    Returns:
        One (sum of log-probabilities of the continuation tokens, every continuation token is the argmax)
        per pair, in input order.
    """
    device = _device_of(model)
    model.eval()
    seqs = []
    for ctx, cont in pairs:
        if len(cont) == 0 or len(cont) >= max_len:
            raise ValueError(f"a continuation must have 1 .. {max_len - 1} tokens, got {len(cont)}")
        full = list(ctx)[-(max_len - len(cont)) :] + list(cont) if ctx else list(cont)
        if len(full) == len(cont):
            raise ValueError("a continuation needs at least one context token to be predicted from")
        seqs.append((full, len(cont)))
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][0]))  # similar lengths batch together
    results: list[tuple[float, bool]] = [(0.0, False)] * len(seqs)
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        longest = max(len(seqs[i][0]) for i in chosen)
        idx = torch.zeros(len(chosen), longest, dtype=torch.int64)
        for row, i in enumerate(chosen):
            idx[row, : len(seqs[i][0])] = torch.tensor(seqs[i][0])
        # Scored where the model runs: copying the whole (B, L, V) to the host cost more than the forward on a GPU.
        logp = _log_probs(model, idx.to(device), bf16)  # (B, L, V)
        for row, i in enumerate(chosen):
            full, n_cont = seqs[i]
            L = len(full)
            pred = logp[row, L - n_cont - 1 : L - 1]  # (n_cont, V): positions predicting the continuation
            target = torch.tensor(full[L - n_cont :], device=logp.device)
            logprob = float(pred.gather(-1, target.unsqueeze(-1)).sum())
            results[i] = (logprob, bool((pred.argmax(-1) == target).all()))
    return results


def lambada_scores(
    model: nn.Module, encoding: Any, texts: Sequence[str], *, max_len: int = 256, batch_size: int = 16, bf16=True
) -> dict[str, float]:
    """LAMBADA: the last word of each passage is the target (OpenAI's version, targets " word").

    Returns:
        accuracy: share of passages whose whole target is the greedy continuation (last-word accuracy);
        target_perplexity: exp of the mean target NLL per passage (lm-eval's LAMBADA perplexity);
        count.
    """
    pairs = []
    for text in texts:
        context, _, word = text.rstrip().rpartition(" ")
        if not context:
            raise ValueError(f"a LAMBADA passage needs a context before its last word, got {text[:60]!r}")
        pairs.append((encoding.encode_ordinary(context), encoding.encode_ordinary(" " + word)))
    scores = score_continuations(model, pairs, max_len=max_len, batch_size=batch_size, bf16=bf16)
    logprobs = np.array([s[0] for s in scores])
    return {
        "accuracy": float(np.mean([s[1] for s in scores])),
        "target_perplexity": float(np.exp(-logprobs.mean())),
        "count": len(scores),
    }


def hellaswag_scores(
    model: nn.Module,
    encoding: Any,
    items: Sequence[HellaSwagItem],
    *,
    max_len: int = 256,
    batch_size: int = 16,
    bf16: bool = True,
) -> dict[str, float]:
    """HellaSwag: pick the ending with the highest log-likelihood after the context.

    Returns:
        acc (raw sums), acc_norm (sums divided by the ending's length in characters, as lm-eval does), count.
    """
    pairs = []
    for item in items:
        ctx = encoding.encode_ordinary(item.context)
        pairs += [(ctx, encoding.encode_ordinary(" " + ending)) for ending in item.endings]
    scores = score_continuations(model, pairs, max_len=max_len, batch_size=batch_size, bf16=bf16)
    correct, correct_norm = 0, 0
    for n, item in enumerate(items):
        logprobs = np.array([s[0] for s in scores[4 * n : 4 * n + 4]])
        lengths = np.array([len(" " + ending) for ending in item.endings], dtype=np.float64)
        correct += int(np.argmax(logprobs) == item.label)
        correct_norm += int(np.argmax(logprobs / lengths) == item.label)
    return {"acc": correct / len(items), "acc_norm": correct_norm / len(items), "count": len(items)}


def word_nlls(encoding: Any, text: str, nlls: Tensor, tokens: Sequence[int]) -> tuple[list[str], np.ndarray]:
    """Groups token NLLs into whitespace-separated words.

    A token belongs to the word holding its first non-space byte (GPT-2 tokens carry the space before a
    word); whitespace-only tokens belong to no word. A word whose tokens include an unscored one (NaN) gets
    NaN.

    Returns:
        The words of ``text`` and their NLLs (sum over their tokens), aligned.
    """
    data = text.encode("utf-8")
    pieces = [encoding.decode_single_token_bytes(t) for t in tokens]
    if b"".join(pieces) != data:
        raise ValueError("tokens do not spell text exactly; pass the tokens of this very text")

    spans = [(m.start(), m.end()) for m in re.finditer(rb"\S+", data)]
    words = [data[s:e].decode("utf-8", errors="replace") for s, e in spans]
    starts = np.array([s for s, _ in spans], dtype=np.int64)
    totals = np.zeros(len(spans), dtype=np.float64)
    offset = 0
    values = nlls.double().numpy()
    for piece, value in zip(pieces, values, strict=True):
        stripped = len(piece) - len(piece.lstrip())
        if stripped < len(piece):
            word = int(np.searchsorted(starts, offset + stripped, side="right")) - 1
            totals[word] += value  # NaN propagates to the word
        offset += len(piece)
    return words, totals


def frequency_bucket_perplexity(
    words: Sequence[str], nlls: np.ndarray, train_counts: Counter, buckets=BUCKETS
) -> dict[str, dict[str, float]]:
    """Word-level perplexity per frequency bucket: exp(mean word NLL) over the test words whose training
    count falls in each bucket (unscored words are left out)."""
    out = {}
    counts = np.array([train_counts.get(w, 0) for w in words])
    for name, low, high in buckets:
        mask = (counts >= low) & (counts <= high) & ~np.isnan(nlls)
        out[name] = {
            "perplexity": float(np.exp(nlls[mask].mean())) if mask.any() else float("nan"),
            "words": int(mask.sum()),
        }
    return out
