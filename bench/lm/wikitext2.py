"""`xlstm-seq lm wikitext2`: an LSTM, the xLSTM LM and GPT-2 at equal parameter counts, trained alike on WikiText-2's
training split (word level) and scored on its test split by word frequency, beside the from-scratch xLSTM thesis's
table (``wikitext2_thesis.yaml``).

    xlstm-seq lm wikitext2 --config configs/lm/wikitext2-thesis.yaml     # CPU, about an hour per seed

Word-level tokens, not GPT-2 BPE: the thesis's perplexities (hundreds overall, tens of thousands on rare words) are
those of a model over WikiText-2's own 33,278-word vocabulary, where rare words are whole tokens of their own; and
with one token per word the frequency buckets score exactly the predictions the models made, with no grouping of
sub-word pieces. The vocabulary is the training split's words plus ``<eos>`` at every line end (PyTorch's
``word_language_model`` convention, which WikiText-2's official counts use). The scorer is the library's:
:func:`~xlstm_seq.lm.evaluation.token_nlls` (sliding windows) and
:func:`~xlstm_seq.lm.evaluation.frequency_bucket_perplexity` over the test words (line ends are predicted and count in
the per-token perplexity, but are not words, so no bucket holds them).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import lzma
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from xlstm_seq.config import ConfigMixin, xLSTMConfig
from xlstm_seq.data import data_root
from xlstm_seq.lm.evaluation import frequency_bucket_perplexity, perplexity, token_nlls
from xlstm_seq.lm.gpt2 import GPT2Config
from xlstm_seq.lm.lstm_lm import LSTMLMConfig
from xlstm_seq.lm.models import LMModelConfig, build_model
from xlstm_seq.lm.trainer import TrainConfig, Trainer
from xlstm_seq.lm.xlstm_lm import xLSTMLMConfig
from xlstm_seq.tracking import create_tracker
from xlstm_seq.tracking.provenance import Provenance
from xlstm_seq_bench.lm.wikitext2_report import MODELS, render_markdown, summary_metrics

log = logging.getLogger(__name__)

KINDS = tuple(kind for kind, _ in MODELS)
EOS = "<eos>"
SPLITS = ("train", "valid", "test")


def _default_train() -> TrainConfig:
    return TrainConfig(
        seq_len=128, batch_size=16, max_steps=500, learning_rate=6e-3, warmup_steps=20, eval_every=125,
        eval_batches=10, log_every=25, device="cpu",
    )  # fmt: skip


def _default_xlstm() -> xLSTMLMConfig:
    return xLSTMLMConfig(xlstm=xLSTMConfig(embedding_dim=128, num_blocks=4, slstm_at=[1], num_heads=4, backend="torch"))


@dataclass
class WikiText2Config(ConfigMixin):
    """Settings of ``xlstm-seq lm wikitext2``: one training recipe for the three models, their sizes, the scoring.

    Every model's ``vocab_size`` is set to the corpus's vocabulary (33,278 words for WikiText-2) when the run starts.
    """

    train: TrainConfig = field(default_factory=_default_train)
    """The training recipe shared by all three models; its model, data_dir, out_dir, seed and run name are set per
    run."""
    lstm: LSTMLMConfig = field(default_factory=lambda: LSTMLMConfig(embedding_dim=128, hidden_size=164, num_layers=2))
    """The LSTM baseline (nn.LSTM)."""
    xlstm: xLSTMLMConfig = field(default_factory=_default_xlstm)
    """The xLSTM LM."""
    gpt2: GPT2Config = field(default_factory=lambda: GPT2Config(context_length=128, num_layers=2, num_heads=4,
                                                                embedding_dim=128))  # fmt: skip
    """The GPT-2 (the Transformer)."""
    max_size_gap: float = 0.06
    """Largest allowed relative difference between the models' parameter counts without the token embedding (which
    is the same matrix size in all three): (largest - smallest) / largest."""
    window: int = 128
    """Test scoring: sliding windows of this many tokens (at most the training ``seq_len``: longer windows would
    reach GPT-2 positions that never trained) ..."""
    stride: int = 96
    """... every this many tokens (each token scored once, with at least window - stride tokens of context)."""
    eval_batch_size: int = 8
    """Windows per forward pass when scoring the test split."""
    max_train_tokens: int | None = None
    """Use only the first N training tokens (None: all 2,088,628); the vocabulary and bucket counts still come from
    the whole training split."""
    max_test_tokens: int | None = None
    """Score only the first N test tokens (None: all 245,569)."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """One training run per model and seed; the table shows mean and spread over seeds."""
    threads: int = 1
    """torch intra-op threads."""
    progress: bool = True
    """Progress bars over the runs and the training steps."""
    notes: list[str] = field(default_factory=list)
    """Lines for the page's setup section (how the recipe was chosen on the validation split)."""
    runs_dir: str = "runs/lm/wikitext2"
    """Checkpoints go to runs_dir/<kind>-seed<seed> (cleared at the start of each run)."""
    out: str = "benchmarks/lm/wikitext2.md"
    """Markdown report."""
    experiment: str = "xlstm-seq-lm-wikitext2"
    """MLflow experiment of the training runs and the summary run."""

    def __post_init__(self) -> None:
        for name, cls in (("train", TrainConfig), ("lstm", LSTMLMConfig), ("xlstm", xLSTMLMConfig),
                          ("gpt2", GPT2Config)):  # fmt: skip
            if isinstance(getattr(self, name), dict):
                setattr(self, name, cls.from_dict(getattr(self, name)))
        self.seeds = list(self.seeds)
        self.notes = list(self.notes)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list without repeats, got {self.seeds}")
        if not 1 <= self.stride < self.window:
            raise ValueError(f"need 1 <= stride < window, got stride {self.stride} and window {self.window}")
        if self.window > self.train.seq_len:
            raise ValueError(
                f"window ({self.window}) exceeds the training seq_len ({self.train.seq_len}): no model saw positions "
                "that far into a sequence"
            )
        for name in ("eval_batch_size", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_train_tokens", "max_test_tokens"):
            if getattr(self, name) is not None and getattr(self, name) < 2:
                raise ValueError(f"{name} must be >= 2 or None, got {getattr(self, name)}")
        if not 0.0 <= self.max_size_gap < 1.0:
            raise ValueError(f"max_size_gap must be in [0, 1), got {self.max_size_gap}")
        widths = {"lstm": self.lstm.embedding_dim, "xlstm": self.xlstm.xlstm.embedding_dim,
                  "gpt2": self.gpt2.embedding_dim}  # fmt: skip
        if len(set(widths.values())) != 1:
            raise ValueError(f"the three models need one embedding width (the same embedding matrix), got {widths}")
        # Building each run's config validates it now (e.g. seq_len against GPT-2's context) instead of mid-run.
        for kind in KINDS:
            self.run_config(kind, self.seeds[0], vocab_size=1)

    def model_config(self, kind: str, vocab_size: int) -> LMModelConfig:
        """The model ``kind`` over a vocabulary of ``vocab_size`` words."""
        section = getattr(self, kind).replace(vocab_size=vocab_size)
        return LMModelConfig(kind=kind, **{kind: section})

    def run_config(self, kind: str, seed: int, vocab_size: int) -> TrainConfig:
        """The training config of one model and seed."""
        return self.train.replace(
            model=self.model_config(kind, vocab_size),
            out_dir=str(Path(self.runs_dir) / f"{kind}-seed{seed}"),
            seed=seed,
            resume=False,
            experiment=self.experiment,
            run_name=f"{kind}-seed{seed}",
        )


# Data ------------------------------------------------------------------------------------------------------------


@dataclass
class WordCorpus:
    """WikiText-2 as word ids: the vocabulary, the three splits with ``<eos>`` at every line end, training counts."""

    vocab: list[str]
    """Id -> word, in order of first appearance in the training split (``<eos>`` included)."""
    splits: dict[str, np.ndarray]
    """"train", "valid", "test" -> (N,) int32 word ids."""
    train_counts: Counter
    """Occurrences of each word in the training split (``<eos>`` not counted): the bucket boundaries."""

    @property
    def eos_id(self) -> int:
        return self.vocab.index(EOS)


def _split_path(root: Path, split: str) -> Path:
    base = root / "wikitext-2" / f"wiki.{split}.tokens"
    for candidate in (base, base.with_name(base.name + ".xz")):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"WikiText-2 (word level, Merity et al., 2016) {split} split: expected {base} (or {base.name}.xz) under the "
        f"data root {root} (set XLSTM_SEQ_DATA)"
    )


def _read_lines(path: Path) -> list[str]:
    if path.suffix == ".xz":
        with lzma.open(path, "rt", encoding="utf-8") as f:
            return f.read().splitlines()
    return path.read_text(encoding="utf-8").splitlines()


def load_corpus(root: Path | None = None) -> WordCorpus:
    """WikiText-2's word-level splits from ``root/wikitext-2/`` (default: the data root).

    Raises:
        FileNotFoundError: a split is missing (the message names the file expected).
        ValueError: a validation or test word is not in the training vocabulary.
    """
    root = root or data_root()
    lines = {split: _read_lines(_split_path(root, split)) for split in SPLITS}
    index: dict[str, int] = {}
    for line in lines["train"]:
        for word in [*line.split(), EOS]:
            index.setdefault(word, len(index))
    splits, counts = {}, Counter()
    for split in SPLITS:
        words = [word for line in lines[split] for word in [*line.split(), EOS]]
        missing = sorted({w for w in words if w not in index})
        if missing:
            raise ValueError(f"{split} split has words outside the training vocabulary: {missing[:5]}")
        splits[split] = np.array([index[w] for w in words], dtype=np.int32)
        if split == "train":
            counts = Counter(w for w in words if w != EOS)
    return WordCorpus(vocab=list(index), splits=splits, train_counts=counts)


# Scoring ---------------------------------------------------------------------------------------------------------


def score_test(model: Any, corpus: WordCorpus, config: WikiText2Config) -> dict[str, float]:
    """Test perplexity per word-frequency bucket and overall (words only), and per token (line ends included)."""
    ids = corpus.splits["test"][: config.max_test_tokens]
    nlls = token_nlls(
        model, torch.from_numpy(ids.astype(np.int64)), window=config.window, stride=config.stride,
        batch_size=config.eval_batch_size, bf16=False,
    )  # fmt: skip  # (N,), entry 0 NaN
    is_word = ids != corpus.eos_id
    words = [corpus.vocab[i] for i in ids[is_word]]
    word_nlls = nlls.numpy()[is_word]
    out: dict[str, float] = {}
    for name, entry in frequency_bucket_perplexity(words, word_nlls, corpus.train_counts).items():
        out[name], out[f"words_{name}"] = entry["perplexity"], entry["words"]
    scored = ~np.isnan(word_nlls)
    out["overall"], out["words_overall"] = float(np.exp(word_nlls[scored].mean())), int(scored.sum())
    out["token_ppl"] = perplexity(nlls)
    return out


# The run ---------------------------------------------------------------------------------------------------------


class _BarTrainer(Trainer):
    """The trainer with a progress bar advanced by every optimiser step."""

    bar: Any = None

    def train_step(self) -> dict[str, float]:
        record = super().train_step()
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{record['loss']:.3f}", refresh=False)
        return record


def body_parameters(model: Any) -> int:
    """Parameters without the token embedding (GPT-2's position embedding stays in)."""
    return model.num_parameters() - model.wte.weight.numel()


def check_sizes(config: WikiText2Config, vocab_size: int) -> dict[str, dict[str, int]]:
    """Each model's parameter count, total and without the token embedding; raises when the latter differ by more
    than ``max_size_gap``."""
    sizes = {}
    for kind in KINDS:
        with torch.device("meta"):
            model = build_model(config.model_config(kind, vocab_size))
        sizes[kind] = {"total": model.num_parameters(), "body": body_parameters(model)}
    bodies = [s["body"] for s in sizes.values()]
    gap = (max(bodies) - min(bodies)) / max(bodies)
    if gap > config.max_size_gap:
        raise ValueError(
            f"the models' sizes without the token embedding differ by {gap:.1%} > max_size_gap "
            f"{config.max_size_gap:.1%}: { {k: s['body'] for k, s in sizes.items()} }"
        )
    return sizes


# Settings that choose which runs happen and where they are written, not what a run computes: runs whose other
# settings are equal can be taken from one results file into another.
_GRID_ONLY = ("seeds", "progress", "notes", "runs_dir", "out", "experiment")


def run_settings(config: WikiText2Config) -> dict[str, Any]:
    """What decides a run's numbers: the config without the grid-only fields, as JSON reads it back."""
    data = {k: v for k, v in config.to_dict().items() if k not in _GRID_ONLY}
    return json.loads(json.dumps(data))


def finished_runs(sources: list[Path], settings: dict[str, Any]) -> dict[tuple[str, int], dict[str, float]]:
    """The runs in results files written with ``settings``, by (model kind, seed); the first file holding a run
    gives it. A file written with other settings gives none, and a warning names the keys that differ."""
    found: dict[tuple[str, int], dict[str, float]] = {}
    for source in reversed(sources):
        try:
            data = json.loads(source.read_text())
            written_with, runs = data["settings"], data["runs"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"results file {source}: not a results file of `lm wikitext2` ({error})") from None
        if written_with != settings:
            keys = sorted(k for k in {*settings, *written_with} if settings.get(k) != written_with.get(k))
            log.warning("results file %s was written with other settings (%s): none of its runs taken", source, keys)
            continue
        for run in runs:
            found[(run["kind"], int(run["seed"]))] = {k: v for k, v in run.items() if k not in ("kind", "seed")}
    return found


def write_results(path: Path, settings: dict[str, Any], runs: dict[tuple[str, int], dict[str, float]]) -> None:
    """The results file beside the page: the run settings and every finished run (rewritten after each run)."""
    rows = [{"kind": kind, "seed": seed, **result} for (kind, seed), result in runs.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps({"settings": settings, "runs": rows}, indent=1))
    partial.replace(path)  # a run stopped mid-write leaves the previous file whole


def _take_finished(
    config: WikiText2Config, grid: list[tuple[str, int]], settings: dict[str, Any], sources: list[Path]
) -> tuple[dict[tuple[str, int], dict[str, float]], WikiText2Config]:
    """The runs of ``grid`` that ``sources`` hold with ``settings``, and the config with a note on the page saying
    how many were taken from where."""
    for source in sources:
        if not source.is_file():
            raise FileNotFoundError(f"resume_from: results file {source} does not exist")
    earlier = finished_runs(sources, settings)
    finished = {key: earlier[key] for key in grid if key in earlier}
    if finished:
        log.info("taking %d of %d runs from %s", len(finished), len(grid), ", ".join(map(str, sources)))
        note = (f"{len(finished)} of {len(grid)} runs were taken, with the same settings, from the results of earlier "
                f"runs ({', '.join(p.as_posix() for p in sources)}); the rest ran here.")  # fmt: skip
        config = config.replace(notes=[*config.notes, note])
    return finished, config


def run_wikitext2(
    config: WikiText2Config,
    *,
    track: bool = True,
    command: str = "",
    resume: bool = False,
    resume_from: list[str] | None = None,
) -> dict[str, Any]:
    """Trains and scores the three models for every seed, writes ``config.out`` and logs an MLflow summary run.

    The results JSON beside ``config.out`` is rewritten after every run. With ``resume`` the runs it already holds
    with the same settings (:func:`run_settings`) are taken instead of trained again; ``resume_from`` names more
    results files to take runs from, e.g. seeds run at the same time by separate commands. The page says how many
    runs were taken.
    """
    results_path = Path(config.out).with_suffix(".json")
    settings = run_settings(config)
    grid = [(kind, seed) for seed in config.seeds for kind in KINDS]
    sources = ([results_path] if resume and results_path.is_file() else []) + [Path(p) for p in resume_from or []]
    finished, config = _take_finished(config, grid, settings, sources)
    torch.set_num_threads(config.threads)
    provenance = Provenance.capture(command or "xlstm-seq lm wikitext2", threads=config.threads)
    started = _dt.datetime.now(_dt.timezone.utc)
    corpus = load_corpus()
    vocab_size = len(corpus.vocab)
    sizes = check_sizes(config, vocab_size)
    train_ids = corpus.splits["train"][: config.max_train_tokens]
    log.info("WikiText-2: %d words in the vocabulary, %d training tokens; sizes %s", vocab_size, len(train_ids), sizes)
    runs = [(seed, kind) for kind, seed in grid if (kind, seed) not in finished]
    for seed, kind in tqdm(runs, desc="wikitext2 runs", unit="run", disable=not config.progress):
        run = config.run_config(kind, seed, vocab_size)
        shutil.rmtree(run.out_dir, ignore_errors=True)
        trainer = _BarTrainer(run, train_shards=[train_ids], val_shards=[corpus.splits["valid"]], track=track)
        try:
            with tqdm(total=run.max_steps, desc=f"train {kind} seed {seed}", unit="step", mininterval=5,
                      disable=not config.progress, leave=False) as bar:  # fmt: skip
                trainer.bar = bar
                summary = trainer.fit()
            log.info("scoring %s seed %d on the test split", kind, seed)
            scores = score_test(trainer.raw_model, corpus, config)
            trainer.tracker.log_metrics({f"test/{k}": float(v) for k, v in scores.items()}, step=trainer.step)
        finally:
            trainer.close()
        finished[(kind, seed)] = {
            **scores,
            "val_loss": summary["val_loss"],
            "val_ppl": float(np.exp(summary["val_loss"])),
            "parameters": summary["parameters"],
            "tokens_seen": summary["tokens_seen"],
            "tokens_per_s": summary["tokens_per_s_overall"],
            "train_s": summary["train_s"],
        }
        write_results(results_path, settings, {key: finished[key] for key in grid if key in finished})
        log.info("%s seed %d: %s", kind, seed, json.dumps(finished[(kind, seed)]))
    if not runs:  # every run taken: the results file beside this page still holds them
        write_results(results_path, settings, finished)
    results = {kind: [finished[(kind, seed)] for seed in config.seeds] for kind in KINDS}
    provenance = provenance.finish()
    wall_min = (_dt.datetime.now(_dt.timezone.utc) - started).total_seconds() / 60
    markdown = render_markdown(
        results,
        header=provenance.markdown(notes=[f"wall time {wall_min:.1f} min"]),
        setup=setup_lines(config, corpus, sizes, results, len(train_ids)),
        seeds=config.seeds,
    )
    Path(config.out).parent.mkdir(parents=True, exist_ok=True)
    Path(config.out).write_text(markdown)
    with create_tracker(config.experiment, "wikitext2-summary", enabled=track, tags=provenance.tags()) as tracker:
        tracker.log_params({"config": config.to_dict(), "vocab_size": vocab_size})
        tracker.log_metrics(summary_metrics(results))
        tracker.log_text(markdown, "wikitext2.md")
    print(markdown)
    return {"results": results, "markdown": markdown, "sizes": sizes}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def setup_lines(
    config: WikiText2Config,
    corpus: WordCorpus,
    sizes: dict[str, dict[str, int]],
    results: dict[str, list[dict[str, float]]],
    train_tokens: int,
) -> list[str]:
    """The page's setup section: data, recipe, models, scoring, and the config's notes."""
    t = config.train
    first = results["lstm"][0]
    tokens = int(first["tokens_seen"])
    x, lstm, g = config.xlstm.xlstm, config.lstm, config.gpt2
    test_tokens = len(corpus.splits["test"][: config.max_test_tokens])
    projection = (
        f", a {lstm.hidden} -> {lstm.embedding_dim} map before the head" if lstm.hidden != lstm.embedding_dim else ""
    )
    models = {
        "lstm": f"{_plural(lstm.num_layers, 'layer')} of {lstm.hidden} units, embedding {lstm.embedding_dim}"
        f"{projection}, dropout {lstm.dropout:g}",
        "xlstm": f"{_plural(x.num_blocks, 'block')} of width {x.embedding_dim}, sLSTM at {x.slstm_block_ids}, "
        f"{_plural(x.num_heads, 'head')}, backend {x.backend}",
        "gpt2": f"{_plural(g.num_layers, 'layer')}, {_plural(g.num_heads, 'head')}, width {g.embedding_dim}, "
        f"context {g.context_length}",
    }
    size_text = "; ".join(
        f"{label} {sizes[kind]['total']:,} ({sizes[kind]['body']:,} without the token embedding): {models[kind]}"
        for kind, label in MODELS
    )
    buckets = ", ".join(f"{name} {int(first[f'words_{name}']):,}" for name in ("rare", "medium", "frequent"))
    return [
        f"- Data: WikiText-2, word level: {len(corpus.vocab):,} words in the vocabulary (the training split's words "
        f"and `<eos>` at each line end), {train_tokens:,} training tokens used of {len(corpus.splits['train']):,}, "
        f"{test_tokens:,} test tokens scored. Word level rather than GPT-2 BPE because the thesis's magnitudes are "
        "those of a word-level vocabulary and one token per word lets each bucket score exactly the predictions "
        "made.",
        f"- Training (identical for all three): {t.max_steps} steps of {t.batch_size} x {t.seq_len} tokens x "
        f"{t.grad_accum_steps} accumulation = {tokens:,} tokens per model "
        f"({tokens / train_tokens:.2f} epochs); AdamW lr {t.learning_rate:g} (warmup {t.warmup_steps}, cosine to "
        f"{t.min_lr:g} at step {t.max_steps}), betas {t.betas}, weight decay {t.weight_decay:g} on matrices, clip "
        f"{t.grad_clip:g}, precision {t.precision}; validation loss on {t.eval_batches} fixed windows of the "
        f"validation split {f'every {t.eval_every} steps and ' if t.eval_every else ''}at the end.",
        f"- Models at equal size, tied embeddings: {size_text}.",
        f"- Scoring: the library's sliding-window scorer (window {config.window}, stride {config.stride}) on the test "
        f"split; bucket perplexity = exp(mean NLL) over the test words whose training count falls in the bucket; "
        f"overall = every test word; line ends are predicted but belong to no bucket (the per-token perplexity "
        f"below includes them). Test words per bucket: {buckets}.",
        f"- Seeds: {config.seeds}; {config.threads} torch thread{'s' if config.threads > 1 else ''}.",
        *[f"- {note}" for note in config.notes],
    ]
