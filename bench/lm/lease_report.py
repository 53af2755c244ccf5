"""The report of a lease run (:mod:`xlstm_seq_bench.lm.lease`): what the phases wrote, as markdown, JSON and a
loss-curve PNG, rewritten after every phase so that a run cut short still leaves its numbers."""

from __future__ import annotations

import json
import logging
import math
import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Any

from xlstm_seq_bench.lm.lease import FORMAT, LEASE_KINDS, NAMES, _read_json, _run_dir, _write_json, tokens_per_model

log = logging.getLogger(__name__)


class LeaseReport:
    """Collects what the phases wrote and renders the markdown, the JSON and the loss-curve PNG."""

    def __init__(self, config, recipe, plan_data, provenance, previous):
        self.config, self.recipe, self.plan, self.provenance, self.previous = (
            config, recipe, plan_data, provenance, previous,
        )  # fmt: skip
        self.phases: list[dict[str, Any]] = []

    # State ---------------------------------------------------------------------------------------------------

    def phase(self, label: str, limit: float, status: str, seconds: float) -> None:
        self.phases.append({"phase": label, "limit_s": round(limit, 1), "status": status, "seconds": round(seconds, 1)})

    def blocked(self, name: str, kind: str | None, seed: int | None) -> str:
        """Why a phase cannot run ("" when it can): its input is missing."""
        if name == "prepare":
            return ""
        index = Path(self.config.data.out_dir) / "index.json"
        if not (_read_json(index) or {}).get("complete"):
            return "no token shards (prepare did not finish)"
        if name.startswith("eval") and not (_run_dir(self.config, kind, seed) / "model.safetensors").is_file():
            return "no trained weights (training did not finish)"
        return ""

    def runs(self) -> dict[str, list[dict[str, Any]]]:
        """Per kind, one entry per seed: this lease's (read from the run folders) and the previous lease's."""
        out: dict[str, list[dict[str, Any]]] = {kind: [] for kind in LEASE_KINDS}
        for kind in LEASE_KINDS:
            earlier = (self.previous or {}).get("runs", {}).get(kind, [])
            out[kind] += [{**run, "lease": self.config.lease.previous} for run in earlier]
            for seed in self.config.seeds:
                folder = _run_dir(self.config, kind, seed)
                train = _read_json(folder / "train.json")
                if train is None:
                    train = _progress(folder / "progress.jsonl")
                evaluation = _read_json(folder / "eval.json")
                if train is None and evaluation is None:
                    continue
                out[kind].append({"seed": seed, "lease": "this", "train": train or {}, "eval": evaluation or {}})
        return out

    def results(self) -> dict[str, list[dict[str, float]]]:
        """Flat numbers per kind and seed, as benchmark.py's table cells read them."""
        flat: dict[str, list[dict[str, float]]] = {}
        for kind, runs in self.runs().items():
            flat[kind] = []
            for run in runs:
                numbers = {**run["train"], **run["eval"].get("metrics", {})}
                flat[kind].append({k: v for k, v in numbers.items() if isinstance(v, (int, float))})
        return flat

    def index(self) -> dict[str, Any]:
        return _read_json(Path(self.config.data.out_dir) / "index.json") or {}

    # Output --------------------------------------------------------------------------------------------------

    def paths(self) -> tuple[Path, Path, Path]:
        out = Path(self.config.out)
        return out, out.with_suffix(".json"), out.with_suffix(".png")

    def write(self, wall_s: float, final: bool = False) -> dict[str, Any]:
        """Writes the markdown, JSON and PNG (each replaced whole); returns the JSON's data."""
        md_path, json_path, png_path = self.paths()
        md_path.parent.mkdir(parents=True, exist_ok=True)
        if final:
            self.provenance = self.provenance.finish()
        data = self.data(wall_s)
        _write_json(json_path, data)
        try:
            self.figure(png_path)
        except Exception as err:  # a plotting problem must not cost the numbers
            log.warning("loss-curve figure not written: %s", err)
        tmp = md_path.with_name(md_path.name + ".tmp")
        tmp.write_text(self.markdown(wall_s))
        tmp.replace(md_path)
        return data

    def data(self, wall_s: float) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "provenance": asdict(self.provenance),
            "wall_s": round(wall_s, 1),
            "complete": self.complete(),
            "phases": self.phases,
            "plan": self.plan,
            "recipe": self.recipe,
            "config": self.config.to_dict(),
            "index": {k: self.index().get(k) for k in ("num_tokens", "settings", "docs_done")},
            "runs": self.runs(),
            "previous": self.config.lease.previous,
        }

    def complete(self) -> bool:
        expected = 1 + 2 * len(LEASE_KINDS) * len(self.config.seeds)
        done = [p for p in self.phases if p["status"] == "ok"]
        runs = self.runs()
        stopped = any(r["train"].get("stopped_early") for rs in runs.values() for r in rs if r["lease"] == "this")
        return len(done) == expected and not stopped

    def plan_text(self) -> str:
        p = self.plan
        lines = [f"lease plan: {p['tokens_per_model']:,} tokens per model; phases {self.config.lease.limits_s}"]
        for kind, m in p["models"].items():
            lines.append(
                f"  {kind}: {m['parameters'] / 1e6:.1f}M parameters, {m['flops_per_token'] / 1e9:.2f} GFLOP/token; "
                f"assumed {m['assumed_tokens_per_s']:,.0f} tokens/s (MFU {m['assumed_mfu']:.0%}) -> "
                f"{m['planned_train_s']:.0f} s of steps + {m['assumed_startup_s']:.0f} s start and compile + "
                f"{self.config.lease.stop_margin_s:.0f} s margin = {m['planned_phase_s']:.0f} s of a "
                f"{m['limit_s']:.0f} s phase ({m['margin']:.2f}x)"
            )
        return "\n".join(lines)

    def markdown(self, wall_s: float) -> str:
        from xlstm_seq_bench.lm.benchmark import _cell, _verdict, more_metrics_lines, survey_table

        config, t, survey = self.config, self.config.train, survey_table()
        results = self.results()
        runs = self.runs()
        index = self.index()
        tokens = tokens_per_model(config)
        status = "complete" if self.complete() else "**partial**: see the phases and the runs below"
        lines = [
            "# Language modelling in one GPU lease: xLSTM-125M vs GPT-2-124M",
            "",
            *self.provenance.markdown(notes=[f"wall time {wall_s / 60:.1f} min; status: {status}"]),
            "",
            "## Setup",
            "",
            f"- Data: sources {config.data.sources} ({_corpus_files(config.data.sources)}), GPT-2 BPE; "
            f"{_num(index.get('num_tokens', {}).get('train'))} train tokens in the shards, "
            f"{_num(index.get('num_tokens', {}).get('val'))} held-out validation tokens "
            f"({config.data.val_fraction:.1%} of documents, chosen by a hash of the document key).",
            f"- Training (identical for both): {t.max_steps} steps of {t.batch_size} x {t.seq_len} tokens x "
            f"{t.grad_accum_steps} accumulation = {tokens:,} tokens per model; AdamW lr {t.learning_rate:g} "
            f"(warmup {t.warmup_steps}, cosine to {t.min_lr:g} at step {t.max_steps}), weight decay "
            f"{t.weight_decay:g} on matrices, clip {t.grad_clip:g}, precision {t.precision}, compile {t.compile}.",
            f"- Models: xLSTM {self._params('xlstm')} ({config.xlstm.xlstm.num_blocks} blocks, width "
            f"{config.xlstm.xlstm.embedding_dim}, sLSTM at {config.xlstm.xlstm.slstm_block_ids}, "
            f"{config.xlstm.xlstm.num_heads} heads; {self._backends('xlstm')}); GPT-2 {self._params('gpt2')} "
            f"({config.gpt2.num_layers} layers, {config.gpt2.num_heads} heads, width {config.gpt2.embedding_dim}; "
            f"{self._backends('gpt2')}).",
            f"- Seeds: {self._seeds()}. Evaluation: window {config.eval.window}, stride {config.eval.stride}; "
            f"HellaSwag/LAMBADA items: {config.eval.max_items or 'all'}; perplexity tokens per text: "
            f"{config.eval.max_tokens or 'all'}.",
            "",
            "## The survey's table and ours",
            "",
            "| metric | survey xLSTM | survey GPT-2 | our xLSTM | our GPT-2 | better here |",
            "|---|---|---|---|---|---|",
        ]
        wins, rows = 0, 0
        for key, label, higher, survey_x, survey_g in survey.rows:
            digits = 4 if higher else 2
            verdict = _verdict(results, key, higher)
            rows += verdict != "-"
            wins += verdict.startswith("xLSTM")
            lines.append(
                f"| {label} | {survey_x} | {survey_g} | {_cell(results['xlstm'], key, digits)} | "
                f"{_cell(results['gpt2'], key, digits)} | {verdict} |"
            )
        lines += [
            "",
            f"xLSTM better on {wins} of the {rows} rows measured here. The survey's budget was {survey.budget}; ours "
            "is the one above, on other text, so compare the direction of each row, not the numbers.",
            "",
            "## Throughput (training, same device and settings)",
            "",
            "| model | tokens/s | relative to GPT-2 | MFU | start + compile + first step | steps | stopped early |",
            "|---|---|---|---|---|---|---|",
        ]
        g_tps = _mean(results["gpt2"], "tokens_per_s_overall")
        for kind in ("xlstm", "gpt2"):
            tps = _mean(results[kind], "tokens_per_s_overall")
            ratio = f"{tps / g_tps:.2f}x" if tps and g_tps else "-"
            mfu = _mean(results[kind], "mfu")
            this = [r["train"] for r in runs[kind] if r["lease"] == "this"]
            steps = ", ".join(f"{r.get('step', '-')}/{r.get('max_steps', t.max_steps)}" for r in this) or "-"
            early = ", ".join("yes" if r.get("stopped_early") else "no" for r in this) or "-"
            startup = _cell(results[kind], "startup_s", 0)
            lines.append(
                f"| {NAMES[kind]} | {_cell(results[kind], 'tokens_per_s_overall', 0)} | {ratio} | "
                f"{f'{mfu:.1%}' if mfu else '-'} | {startup}{' s' if startup != '-' else ''} | {steps} | {early} |"
            )
        lines += [
            "",
            "Optimiser steps only (validation and weights excluded), the compiling first step and the first step of",
            "each timing segment left out; MFU against the dense bf16 peak of the device. The survey measured",
            f"{survey.throughput}.",
            "",
            "## Token budget: planned and measured",
            "",
            f"{tokens:,} tokens per model, chosen so that both trainings fit their phases with the assumed throughput "
            "(the plan below); the measured columns replace the assumptions for the next lease.",
            "",
            "| model | GFLOP/token | assumed tokens/s (MFU) | planned phase | phase limit | measured tokens/s | "
            "tokens that fit the phase at that rate |",
            "|---|---|---|---|---|---|---|",
        ]
        for kind in ("xlstm", "gpt2"):
            m = self.plan["models"][kind]
            fit = self._tokens_that_fit(kind, results)
            measured = _mean(results[kind], "tokens_per_s_overall")
            lines.append(
                f"| {NAMES[kind]} | {m['flops_per_token'] / 1e9:.3f} | {m['assumed_tokens_per_s']:,.0f} "
                f"({m['assumed_mfu']:.0%}) | {m['planned_phase_s']:.0f} s | {m['limit_s']:.0f} s | "
                f"{f'{measured:,.0f}' if measured else '-'} | {f'{fit:,.0f}' if fit else '-'} |"
            )
        lines += [
            "",
            "## Phases",
            "",
            "| phase | limit | took | status |",
            "|---|---|---|---|",
            *[f"| {p['phase']} | {p['limit_s']:.0f} s | {p['seconds']:.1f} s | {p['status']} |" for p in self.phases],
            "",
            "## Loss curves",
            "",
            f"![training loss of both models]({self.paths()[2].name})",
            "",
            *more_metrics_lines(results),
        ]
        return "\n".join(lines)

    def _params(self, kind: str) -> str:
        return f"{self.plan['models'][kind]['parameters'] / 1e6:.2f}M parameters"

    def _backends(self, kind: str) -> str:
        for run in self.runs()[kind]:
            backends = run["train"].get("backends")
            if backends:
                return ", ".join(f"{k} {v}" for k, v in backends.items())
        return "backends not recorded"

    def _seeds(self) -> str:
        seeds = {kind: [r["seed"] for r in runs] for kind, runs in self.runs().items()}
        earlier = f" (with the runs of {self.config.lease.previous})" if self.previous else ""
        return f"{seeds['xlstm']} xLSTM, {seeds['gpt2']} GPT-2{earlier}"

    def _tokens_that_fit(self, kind: str, results: dict[str, list[dict[str, float]]]) -> float | None:
        tps, startup = _mean(results[kind], "tokens_per_s_overall"), _mean(results[kind], "startup_s")
        if not tps or startup is None:
            return None
        room = self.config.lease.limits_s[f"train_{kind}"] - startup - self.config.lease.stop_margin_s
        return max(0.0, room) * tps

    def figure(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.2))
        colors = {"xlstm": "tab:blue", "gpt2": "tab:orange"}
        for kind, runs in self.runs().items():
            for run in runs:
                history = run["train"].get("history") or []
                tokens_per_step = run["train"].get("tokens_per_step") or tokens_per_model(self.config) / max(
                    1, self.config.train.max_steps
                )
                points = [(h["step"] * tokens_per_step / 1e6, h["loss"]) for h in history if "loss" in h]
                if points:
                    xs, ys = zip(*points, strict=True)
                    ax.plot(xs, ys, color=colors[kind], alpha=0.85, lw=1.2, label=f"{NAMES[kind]} seed {run['seed']}")
                val = run["train"].get("val_loss")
                if isinstance(val, (int, float)) and math.isfinite(val) and points:
                    ax.plot([points[-1][0]], [val], "o", color=colors[kind], ms=6)
        ax.set_xlabel("training tokens (millions)")
        ax.set_ylabel("cross-entropy (nats/token)")
        ax.set_title(f"Training loss (dots: held-out validation)\n{self.provenance.device}", fontsize=9)
        if ax.lines:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def _corpus_files(sources: list[str]) -> str:
    """The corpus files of ``sources`` in the data root (what the prepare phase read)."""
    from xlstm_seq.data import data_root

    folders = {"enwiki": "enwiki_corpus", "gutenberg": "gutenberg_corpus"}
    names = [p.name for s in sources if s in folders for p in sorted((data_root() / folders[s]).glob("*.*"))]
    return ", ".join(names) or "online"


def _num(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"


def _mean(runs: list[dict[str, float]], key: str) -> float | None:
    values = [float(r[key]) for r in runs if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    return statistics.fmean(values) if values else None


def _progress(path: Path) -> dict[str, Any] | None:
    """What a killed training left: its loss curve and throughput from the progress lines (no weights)."""
    try:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return None
    info = next((r for r in lines if r.get("event") == "start"), {})
    history = [{"step": r["step"], "loss": r["train/loss"]} for r in lines if "train/loss" in r]
    # The first window holds the compiling step.
    speeds = [r["perf/tokens_per_s"] for r in lines if "perf/tokens_per_s" in r][1:]
    return {
        **{k: v for k, v in info.items() if k != "event"},
        "step": history[-1]["step"] if history else 0,
        "history": history,
        "stopped_early": True,
        "killed": True,
        **({"tokens_per_s_overall": statistics.median(speeds)} if speeds else {}),
    }
