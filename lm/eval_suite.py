"""`xlstm-seq lm eval`: the five-benchmark suite (HellaSwag, LAMBADA, WikiText-2, WikiText-103, PTB) plus
WikiText-2 perplexity by word-frequency bucket, on a trained checkpoint, tracked in MLflow.

Metric names (flat, as logged): ``hellaswag/acc_norm``, ``hellaswag/acc``, ``lambada/accuracy``,
``lambada/target_ppl``, ``lambada/sliding_ppl`` (the survey's whole-text protocol), ``wikitext-2/ppl``,
``wikitext-103/ppl``, ``ptb/ppl`` (sliding windows), ``wikitext-2/ppl_rare|medium|frequent`` (word level).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xlstm_seq.config import ConfigMixin
from xlstm_seq.lm import eval_data
from xlstm_seq.lm.evaluation import (
    frequency_bucket_perplexity,
    hellaswag_scores,
    lambada_scores,
    perplexity,
    token_nlls,
    word_nlls,
)
from xlstm_seq.lm.tokenizer import EOT_TOKEN, gpt2_tokenizer

log = logging.getLogger(__name__)

EVAL_TASKS = ("hellaswag", "lambada", "wikitext-2", "wikitext-103", "ptb", "wikitext-2-buckets")


@dataclass
class EvalSettings(ConfigMixin):
    """What to evaluate and how (shared by ``lm eval`` and ``lm benchmark``)."""

    tasks: list[str] = field(default_factory=lambda: list(EVAL_TASKS))
    """Any of "hellaswag", "lambada", "wikitext-2", "wikitext-103", "ptb", "wikitext-2-buckets"."""
    window: int = 256
    """Sliding-window length for perplexities (the survey's 256) and the longest scored sequence."""
    stride: int = 128
    """Sliding-window stride (the survey's 128)."""
    batch_size: int = 16
    """Sequences per forward pass."""
    max_items: int | None = None
    """Use only the first N HellaSwag items and LAMBADA passages (None: all 10,042 and 5,153)."""
    max_tokens: int | None = None
    """Use only the first N tokens of each perplexity text (None: all)."""
    bf16: bool = True
    """bf16 autocast on CUDA (ignored on CPU)."""

    def __post_init__(self) -> None:
        self.tasks = list(self.tasks)
        unknown = [t for t in self.tasks if t not in EVAL_TASKS]
        if unknown:
            raise ValueError(f"unknown eval task(s) {unknown}; valid tasks: {list(EVAL_TASKS)}")
        if not 1 <= self.stride < self.window:
            raise ValueError(f"need 1 <= stride < window, got stride {self.stride} and window {self.window}")
        for name in ("max_items", "max_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")


@dataclass
class EvalConfig(ConfigMixin):
    """Settings of ``xlstm-seq lm eval``."""

    checkpoint: str = "runs/lm/xlstm"
    """A checkpoint folder (with trainer.json), or a training out_dir whose newest checkpoint is used."""
    eval: EvalSettings = field(default_factory=EvalSettings)
    """Tasks and protocol."""
    device: str = "auto"
    """"auto", "cpu" or "cuda"."""
    out: str | None = None
    """Also write the metrics as JSON here."""
    experiment: str = "xlstm-seq-lm-eval"
    """MLflow experiment name."""

    def __post_init__(self) -> None:
        if isinstance(self.eval, dict):
            self.eval = EvalSettings.from_dict(self.eval)


def load_trained_model(checkpoint: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """The model of a checkpoint folder (or the newest one under a training out_dir) and its trainer.json."""
    from safetensors.torch import load_model

    from xlstm_seq.lm.models import LMModelConfig, build_model
    from xlstm_seq.lm.trainer import latest_checkpoint

    path = Path(checkpoint)
    if not (path / "trainer.json").is_file():
        found = latest_checkpoint(path)
        if found is None:
            raise FileNotFoundError(f"no checkpoint at {path}: expected trainer.json there or under {path}/checkpoints")
        path = found
    meta = json.loads((path / "trainer.json").read_text())
    model = build_model(LMModelConfig.from_dict(meta["config"]["model"]))
    load_model(model, str(path / "model.safetensors"), device=str(device))
    return model.to(device).eval(), meta


def _encode_prefix(enc: Any, text: str, max_tokens: int | None) -> tuple[str, list[int]]:
    """The first ``max_tokens`` tokens of ``text`` and the text they spell (None: all of it).

    Only a prefix is tokenized when it is long enough (GPT-2 tokens average about 4 characters); the text is
    cut where the kept tokens end and tokenized again, so text and tokens stay aligned.
    """
    if max_tokens is None:
        return text, enc.encode_ordinary(text)
    tokens = enc.encode_ordinary(text[: 16 * max_tokens])
    if len(tokens) <= max_tokens and 16 * max_tokens < len(text):
        tokens = enc.encode_ordinary(text)
    if len(tokens) <= max_tokens:
        return text, tokens
    cut = sum(len(enc.decode_single_token_bytes(t)) for t in tokens[:max_tokens])
    text = text.encode("utf-8")[:cut].decode("utf-8", errors="ignore")
    return text, enc.encode_ordinary(text)


def run_suite(
    model: nn.Module, settings: EvalSettings, *, encoding: Any = None, root: Path | None = None
) -> dict[str, float]:
    """Runs the configured tasks on ``model``; returns flat metrics (see the module docstring)."""
    enc = encoding if encoding is not None else gpt2_tokenizer()
    s = settings
    kw = dict(bf16=s.bf16)
    metrics: dict[str, float] = {}
    for task in s.tasks:
        start = time.perf_counter()
        if task == "hellaswag":
            items = eval_data.load_hellaswag(root)[: s.max_items]
            scores = hellaswag_scores(model, enc, items, max_len=s.window, batch_size=s.batch_size, **kw)
            metrics |= {"hellaswag/acc_norm": scores["acc_norm"], "hellaswag/acc": scores["acc"]}
            metrics["hellaswag/items"] = scores["count"]
        elif task == "lambada":
            texts = eval_data.load_lambada(root)[: s.max_items]
            scores = lambada_scores(model, enc, texts, max_len=s.window, batch_size=s.batch_size, **kw)
            metrics |= {"lambada/accuracy": scores["accuracy"], "lambada/target_ppl": scores["target_perplexity"]}
            metrics["lambada/items"] = scores["count"]
            # The survey's protocol: the passages as one text (separated by <|endoftext|>), sliding windows.
            stream = [t for text in texts for t in (EOT_TOKEN, *enc.encode_ordinary(text))]
            nll = token_nlls(model, stream, window=s.window, stride=s.stride, batch_size=s.batch_size, **kw)
            metrics["lambada/sliding_ppl"] = perplexity(nll)
        elif task in ("wikitext-2", "wikitext-103", "ptb"):
            _, tokens = _encode_prefix(enc, eval_data.load_perplexity_text(task, root), s.max_tokens)
            tokens = tokens[: s.max_tokens]
            nll = token_nlls(model, tokens, window=s.window, stride=s.stride, batch_size=s.batch_size, **kw)
            metrics[f"{task}/ppl"] = perplexity(nll)
            metrics[f"{task}/tokens"] = len(tokens)
        elif task == "wikitext-2-buckets":
            text, tokens = _encode_prefix(enc, eval_data.wikitext2_test_words_text(root), s.max_tokens)
            nll = token_nlls(model, tokens, window=s.window, stride=s.stride, batch_size=s.batch_size, **kw)
            words, values = word_nlls(enc, text, nll, tokens)
            buckets = frequency_bucket_perplexity(words, values, eval_data.wikitext2_train_counts(root))
            for name, entry in buckets.items():
                metrics[f"wikitext-2/ppl_{name}"] = entry["perplexity"]
                metrics[f"wikitext-2/words_{name}"] = entry["words"]
        metrics[f"time/{task}_s"] = time.perf_counter() - start
        log.info("%s done in %.1f s", task, metrics[f"time/{task}_s"])
    return metrics


def run_eval(config: EvalConfig, *, track: bool = True) -> dict[str, float]:
    """``xlstm-seq lm eval``: loads the checkpoint, runs the suite, logs to MLflow, optionally writes JSON."""
    from xlstm_seq.lm.trainer import resolve_device
    from xlstm_seq.tracking import create_tracker

    device = resolve_device(config.device)
    model, meta = load_trained_model(config.checkpoint, device)
    kind = meta["config"]["model"]["kind"]
    with create_tracker(config.experiment, run_name=f"{kind}-eval", enabled=track) as tracker:
        tracker.log_params({"config": config.to_dict(), "checkpoint_step": meta["step"], "model_kind": kind})
        metrics = run_suite(model, config.eval)
        tracker.log_metrics(metrics, step=int(meta["step"]))
    if config.out:
        Path(config.out).parent.mkdir(parents=True, exist_ok=True)
        Path(config.out).write_text(json.dumps(metrics, indent=1))
    return metrics
