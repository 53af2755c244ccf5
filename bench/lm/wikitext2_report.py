"""The report of `xlstm-seq lm wikitext2`: the thesis's table (read from ``wikitext2_thesis.yaml``), the comparisons
with the seed spread (a difference smaller than the spread is a tie), the thesis's ordering as a target, and the
markdown page."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The thesis's published table and its source.
THESIS_FILE = Path(__file__).with_name("wikitext2_thesis.yaml")
#: Our models in the order of the table, with their labels.
MODELS = (("lstm", "LSTM (nn.LSTM)"), ("xlstm", "xLSTM (ours)"), ("gpt2", "GPT-2 (ours)"))
#: The columns of the table: metric key of a run's results and its heading.
COLUMNS = (("rare", "rare (< 100)"), ("medium", "medium (100-1,000)"), ("frequent", "frequent (> 1,000)"),
           ("overall", "overall"))  # fmt: skip


@dataclass(frozen=True)
class ThesisRow:
    """One model of the thesis's table."""

    label: str
    """The model as the thesis names it."""
    ours: str
    """Our model it is compared with: "lstm", "xlstm" or "gpt2"."""
    perplexity: dict[str, float]
    """Test perplexity per bucket: rare, medium, frequent, overall."""


@dataclass(frozen=True)
class ThesisTable:
    """The thesis's table as ``wikitext2_thesis.yaml`` holds it."""

    rows: tuple[ThesisRow, ...]
    source: str
    metric: str
    buckets: dict[str, str]


def thesis_table(path: Path = THESIS_FILE) -> ThesisTable:
    """The thesis's published table, read from ``wikitext2_thesis.yaml``."""
    from xlstm_seq.config_io import load_yaml

    data = load_yaml(path)
    rows = tuple(ThesisRow(r["label"], r["ours"], {key: float(r[key]) for key, _ in COLUMNS}) for r in data["rows"])
    return ThesisTable(rows=rows, source=data["source"], metric=data["metric"], buckets=dict(data["buckets"]))


def values(results: dict[str, list[dict[str, float]]], kind: str, key: str) -> list[float]:
    """``key`` of every seed's run of model ``kind``."""
    return [float(run[key]) for run in results.get(kind, []) if key in run]


def spread(xs: Sequence[float]) -> float | None:
    """The range over seeds (max - min); None for fewer than two seeds."""
    return max(xs) - min(xs) if len(xs) > 1 else None


def compare(a: Sequence[float], b: Sequence[float]) -> str:
    """Whether ``a`` is "lower", "higher" or a "tie" against ``b`` (perplexities over seeds).

    The difference of the means is a tie when it is no larger than the spread over seeds: the larger of the two
    models' ranges. With one seed of either model the spread is unknown and the raw direction is returned.
    """
    if not a or not b:
        raise ValueError("compare needs at least one value on each side")
    gap = statistics.fmean(a) - statistics.fmean(b)
    spreads = [s for s in (spread(a), spread(b)) if s is not None]
    if gap == 0 or (len(spreads) == 2 and abs(gap) <= max(spreads)):
        return "tie"
    return "lower" if gap < 0 else "higher"


@dataclass(frozen=True)
class Ordering:
    """The thesis's ordering checked on our runs."""

    below_lstm: dict[str, str]
    """For xlstm and gpt2: their overall perplexity against the LSTM's ("lower", "higher" or "tie")."""
    rare_xlstm: dict[str, str]
    """The xLSTM's rare-word perplexity against each other model's."""
    seeds_known: bool
    """Every model ran on at least two seeds, so ties can be told from differences."""

    @property
    def below_lstm_holds(self) -> bool:
        """xLSTM and GPT-2 both below the LSTM overall (beyond the spread)."""
        return all(v == "lower" for v in self.below_lstm.values())

    @property
    def rare_holds(self) -> bool:
        """The xLSTM lowest on rare words (beyond the spread against each other model)."""
        return all(v == "lower" for v in self.rare_xlstm.values())

    @property
    def holds(self) -> bool:
        return self.below_lstm_holds and self.rare_holds


def ordering(results: dict[str, list[dict[str, float]]]) -> Ordering:
    """Checks the thesis's ordering: xLSTM and Transformer below the LSTM overall; the xLSTM lowest on rare words."""
    below = {
        kind: compare(values(results, kind, "overall"), values(results, "lstm", "overall"))
        for kind in ("xlstm", "gpt2")
    }
    rare = {kind: compare(values(results, "xlstm", "rare"), values(results, kind, "rare")) for kind in ("lstm", "gpt2")}
    known = all(len(values(results, kind, "overall")) > 1 for kind, _ in MODELS)
    return Ordering(below_lstm=below, rare_xlstm=rare, seeds_known=known)


def _number(x: float) -> str:
    """Perplexities at every magnitude: 205,115 / 8,215.5 / 17.0."""
    return f"{x:,.0f}" if abs(x) >= 10_000 else f"{x:,.1f}"


def cell(xs: Sequence[float]) -> str:
    """Mean ± standard deviation over seeds (the value alone for one seed)."""
    if not xs:
        return "-"
    if len(xs) == 1:
        return _number(xs[0])
    return f"{_number(statistics.fmean(xs))} ± {_number(statistics.stdev(xs))}"


def _word(verdict: str, other: str) -> str:
    return {"lower": f"below {other}", "higher": f"above {other}", "tie": f"tie with {other} (within the seed spread)"}[
        verdict
    ]


def _names() -> dict[str, str]:
    return {"lstm": "the LSTM", "xlstm": "the xLSTM", "gpt2": "GPT-2"}


def _thesis_ratios(thesis: ThesisTable) -> str:
    """How many times lower than the LSTM's the thesis's other rows' overall perplexities are."""
    lstm = next(row.perplexity["overall"] for row in thesis.rows if row.ours == "lstm")
    return ", ".join(
        f"{row.label} {lstm / row.perplexity['overall']:.1f}x" for row in thesis.rows if row.ours != "lstm"
    )


def verdict_lines(order: Ordering, results: dict[str, list[dict[str, float]]], thesis: ThesisTable) -> list[str]:
    """The target's verdict as markdown bullets."""
    names = _names()
    mean = {kind: statistics.fmean(values(results, kind, "overall")) for kind, _ in MODELS}
    below = ", ".join(
        f"{names[kind]} {_word(v, 'the LSTM')} ({mean['lstm'] / mean[kind]:.2f}x lower perplexity than the LSTM)"
        if v == "lower"
        else f"{names[kind]} {_word(v, 'the LSTM')}"
        for kind, v in order.below_lstm.items()
    )
    rare = ", ".join(f"{_word(v, names[kind])}" for kind, v in order.rare_xlstm.items())
    lines = [
        f"- xLSTM and Transformer below the LSTM overall: **{'met' if order.below_lstm_holds else 'not met'}** "
        f"({below}; in the thesis: {_thesis_ratios(thesis)}).",
        f"- The xLSTM lowest on rare words: **{'met' if order.rare_holds else 'not met'}** (the xLSTM is {rare}).",
        f"- The thesis's ordering as a whole: **{'met' if order.holds else 'not met'}**.",
    ]
    if not order.seeds_known:
        lines.append(
            "- One seed per model: the spread over seeds is unknown, so no difference can be called a tie and the "
            "verdicts above are the raw directions of a single run."
        )
    return lines


def render_markdown(
    results: dict[str, list[dict[str, float]]],
    *,
    header: Sequence[str],
    setup: Sequence[str],
    seeds: Sequence[int],
    thesis: ThesisTable | None = None,
    notes: Sequence[str] = (),
) -> str:
    """The benchmark page: header (provenance), setup, the thesis's table beside ours, the target, more numbers.

    ``results`` maps each model kind to one dict per seed with the bucket perplexities (rare, medium, frequent,
    overall), ``token_ppl``, ``val_ppl`` and ``parameters``.
    """
    thesis = thesis or thesis_table()
    order = ordering(results)
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))} (mean ± std)"
    lines = [
        "# WikiText-2 by word frequency: LSTM, xLSTM and GPT-2 at equal size",
        "",
        *header,
        "",
        "## Setup",
        "",
        *setup,
        "",
        "## The thesis's table and ours",
        "",
        f"Test perplexity per word-frequency bucket (training-split counts); ours over {seed_text}.",
        "",
        "| model | " + " | ".join(head for _, head in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for row in thesis.rows:
        lines.append(
            f"| thesis: {row.label} | " + " | ".join(_number(row.perplexity[key]) for key, _ in COLUMNS) + " |"
        )
    for kind, label in MODELS:
        lines.append(f"| ours: {label} | " + " | ".join(cell(values(results, kind, key)) for key, _ in COLUMNS) + " |")
    lines += [
        "",
        f"The thesis's source: {thesis.source}",
        "",
        "## Target: the thesis's ordering",
        "",
        *verdict_lines(order, results, thesis),
        "",
        "A difference of two means no larger than the spread over seeds (the larger of the two models' ranges) "
        "counts as a tie.",
        "",
        "## More numbers",
        "",
        "| model | parameters | validation perplexity | test perplexity per token (words and line ends) | "
        "train tokens/s |",
        "|---|---|---|---|---|",
    ]
    for kind, label in MODELS:
        params = values(results, kind, "parameters")
        lines.append(
            f"| {label} | {int(params[0]):,} | {cell(values(results, kind, 'val_ppl'))} | "
            f"{cell(values(results, kind, 'token_ppl'))} | {_tokens_per_s(values(results, kind, 'tokens_per_s'))} |"
        )
    lines += ["", *notes] if notes else []
    lines.append("")
    return "\n".join(lines)


def _tokens_per_s(xs: Sequence[float]) -> str:
    if not xs:
        return "-"
    return f"{statistics.fmean(xs):,.0f}"


def summary_metrics(results: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """Mean of every numeric result per model, flat (``lstm/overall``, ...), for the tracker."""
    out: dict[str, Any] = {}
    for kind, runs in results.items():
        for key in runs[0] if runs else ():
            out[f"{kind}/{key}"] = statistics.fmean(float(run[key]) for run in runs)
    return out
