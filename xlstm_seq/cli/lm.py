"""`xlstm-seq lm ...`: language modelling: prepare, train, eval, benchmark, wikitext2. Only argparse at import time;
`benchmark` and `wikitext2` run the benchmark suite (xlstm_seq_bench.lm), which the library itself never imports."""

from __future__ import annotations

import argparse

from xlstm_seq.cli.command_line import add_resume_options, reproducing_command, require_bench

CONFIG_CLASSES = {
    "lm prepare": "xlstm_seq.lm.shards:PrepareConfig",
    "lm train": "xlstm_seq.lm.trainer:TrainConfig",
    "lm eval": "xlstm_seq.lm.eval_suite:EvalConfig",
    "lm benchmark": "xlstm_seq_bench.lm.benchmark:LMBenchmarkConfig",
    "lm wikitext2": "xlstm_seq_bench.lm.wikitext2:WikiText2Config",
}


def _load(cls, args: argparse.Namespace):
    from xlstm_seq.config_io import apply_overrides, load_yaml

    data = load_yaml(args.config) if args.config else cls().to_dict()
    return cls.from_dict(apply_overrides(data, args.overrides))


def _prepare(args: argparse.Namespace) -> int:
    from xlstm_seq.lm.shards import PrepareConfig, prepare

    index = prepare(_load(PrepareConfig, args), progress=not args.no_progress)
    print(
        f"{index['num_tokens']['train']:,} train and {index['num_tokens']['val']:,} validation tokens "
        f"from {index['docs_done']:,} documents"
    )
    return 0


def _train(args: argparse.Namespace) -> int:
    import torch.distributed as dist

    from xlstm_seq.lm.trainer import TrainConfig, Trainer

    trainer = Trainer(_load(TrainConfig, args), track=not args.no_track)
    try:
        summary = trainer.fit()
    finally:
        trainer.close()
        if dist.is_initialized():
            dist.destroy_process_group()
    if trainer.dist.is_main:
        print(
            f"step {summary['step']}: train loss {summary['train_loss']:.4f}, val loss {summary['val_loss']:.4f}, "
            f"{summary['tokens_per_s_overall']:,.0f} tokens/s"
        )
    return 0


def _eval(args: argparse.Namespace) -> int:
    import json

    from xlstm_seq.lm.eval_suite import EvalConfig, run_eval

    config = _load(EvalConfig, args)
    if args.checkpoint:
        config = config.replace(checkpoint=args.checkpoint)
    metrics = run_eval(config, track=not args.no_track)
    print(json.dumps(metrics, indent=1))
    return 0


def _benchmark(args: argparse.Namespace) -> int:
    require_bench("lm benchmark")
    from xlstm_seq_bench.lm.benchmark import LMBenchmarkConfig, run_benchmark

    config = _load(LMBenchmarkConfig, args)
    command = reproducing_command(["xlstm-seq", "lm", "benchmark"], args, options=("no_track",))
    run_benchmark(config, track=not args.no_track, command=command)
    return 0


def _wikitext2(args: argparse.Namespace) -> int:
    require_bench("lm wikitext2")
    from xlstm_seq_bench.lm.wikitext2 import WikiText2Config, run_wikitext2

    config = _load(WikiText2Config, args)
    command = reproducing_command(["xlstm-seq", "lm", "wikitext2"], args, options=("resume", "resume_from", "no_track"))
    run_wikitext2(config, track=not args.no_track, command=command, resume=args.resume, resume_from=args.resume_from)
    return 0


def _common(parser: argparse.ArgumentParser, default_config: str) -> None:
    parser.add_argument("--config", help=f"YAML file (default: built-in settings; see {default_config})")
    parser.add_argument("overrides", nargs="*", help="dotted overrides such as max_steps=100 model.kind=gpt2")


def add_commands(groups) -> None:
    """Adds the `lm` group to the top-level subparsers."""
    lm = groups.add_parser("lm", help="language modelling: xLSTM vs GPT-2 (and an LSTM)").add_subparsers(
        dest="lm_command", required=True, metavar="SUBCOMMAND"
    )
    prepare = lm.add_parser("prepare", help="text corpora -> uint16 GPT-2 token shards (resumable)")
    _common(prepare, "configs/lm/prepare-tiny.yaml")
    prepare.add_argument("--no-progress", action="store_true", help="no progress bar")
    prepare.set_defaults(func=_prepare)

    train = lm.add_parser("train", help="train one model (DDP under torchrun); checkpoints and resumes")
    _common(train, "configs/lm/train-tiny-xlstm.yaml")
    train.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    train.set_defaults(func=_train)

    evaluate = lm.add_parser("eval", help="HellaSwag, LAMBADA, WikiText-2/103, PTB and frequency buckets")
    _common(evaluate, "configs/lm/eval-tiny.yaml")
    evaluate.add_argument("--checkpoint", help="checkpoint folder or training out_dir (overrides the config)")
    evaluate.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    evaluate.set_defaults(func=_eval)

    bench = lm.add_parser("benchmark", help="train and evaluate xLSTM and GPT-2 alike; writes benchmarks/lm/tiny.md")
    _common(bench, "configs/lm/tiny.yaml")
    bench.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    bench.set_defaults(func=_benchmark)

    wikitext2 = lm.add_parser(
        "wikitext2", help="LSTM, xLSTM and GPT-2 at equal size on WikiText-2, test perplexity by word frequency"
    )
    _common(wikitext2, "configs/lm/wikitext2-thesis.yaml")
    add_resume_options(wikitext2, "beside the config's out")
    wikitext2.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    wikitext2.set_defaults(func=_wikitext2)
