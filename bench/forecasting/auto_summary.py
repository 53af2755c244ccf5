"""Auto mode over every long-horizon cell on one page (benchmarks/forecasting/auto_all_cells.md), with the spread
over seed sets where it was measured.

    xlstm-seq forecast auto-summary --config configs/forecasting/auto_all_cells.yaml

Trains nothing. The test MSEs of the three columns (grid-wide defaults, hand-chosen grid, auto) exist only on the
pages that `xlstm-seq forecast auto` wrote (MLflow holds the searches' validation scores and settings), so this
reads those pages' cell tables: each cell names the page of its latest run. A hand-chosen MSE that the run skipped
comes from ``hand_page``, or is the defaults' MSE where the grid's hand-chosen settings for the cell are the grid-wide
ones (the same settings and seeds: the same fits). The seed-set pages are runs of
configs/forecasting/auto_seed_sets.yaml (the defaults and auto's recorded choice, no search, on other seed sets);
the earlier-period check's page says which recorded choices today's ``confirm_earlier`` would overrule.
"""

from __future__ import annotations

import ast
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xlstm_seq.config import ConfigMixin
from xlstm_seq.config_io import load_yaml
from xlstm_seq.tracking.provenance import Provenance, cpu_model, visible_cores

HEADER = "| data | h | L | defaults MSE | hand-chosen MSE | auto MSE |"
"""How the cell table of an auto page begins."""
EARLIER_HEADER = "| data | h | the chosen trial changes"
"""How the table of the earlier-period check's page begins."""
HAND_TARGET = 1.03
"""Auto within 3% of the hand-chosen grid on average: the mean ratio of test MSE at most this."""


@dataclass
class AutoSummaryConfig(ConfigMixin):
    """Settings of the summary page (configs/forecasting/auto_all_cells.yaml)."""

    cells: list[dict[str, Any]] = field(default_factory=list)
    """One mapping per cell: dataset, h, page (its latest auto run's page) and, optionally, hand_page."""
    seed_set_pages: list[str] = field(default_factory=list)
    """Pages of configs/forecasting/auto_seed_sets.yaml runs, one per seed set; a missing page is skipped."""
    earlier_check: str | None = "benchmarks/forecasting/auto_earlier_check.md"
    """The earlier-period check's page; None: not consulted."""
    grid: str = "configs/forecasting/long_horizon.yaml"
    """The grid whose hand-chosen settings say where the hand-chosen column equals the defaults."""
    out: str = "benchmarks/forecasting/auto_all_cells.md"
    notes: list[str] = field(default_factory=list)
    """Remarks on the pages read (how they were made), shown under the page's header."""

    def __post_init__(self) -> None:
        for n, cell in enumerate(self.cells):
            missing = sorted({"dataset", "h", "page"} - set(cell))
            if missing:
                raise ValueError(f"cells[{n}] lacks {missing}; each cell needs dataset, h and page")


@dataclass
class PageRow:
    """One cell's row of an auto page: test MSE per column (hand None where not run) and auto's choice."""

    defaults: float
    hand: float | None
    auto: float
    choice: str


def _table_rows(path: str | Path, header: str, what: str) -> list[list[str]]:
    """The cells of each body row of the first markdown table in ``path`` whose header line starts with ``header``."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(header)]
    if not starts:
        raise ValueError(f"{path}: no {what} (a line starting {header!r})")
    rows = []
    for line in lines[starts[0] + 2 :]:  # after the header and its |---| line
        if not line.startswith("|"):
            break
        rows.append([p.strip() for p in line.strip().strip("|").split("|")])
    return rows


def read_auto_table(path: str | Path) -> dict[tuple[str, int], PageRow]:
    """The cell table of a page of `xlstm-seq forecast auto`, by (data set, horizon)."""
    rows = {}
    for parts in _table_rows(path, HEADER, "cell table"):
        hand = None if parts[4] == "-" else float(parts[4])
        choice = "|".join(parts[10:]).strip()
        rows[(parts[0], int(parts[1]))] = PageRow(float(parts[3]), hand, float(parts[5]), choice)
    return rows


def read_earlier_check(path: str | Path) -> dict[tuple[str, int], tuple[bool, str]]:
    """(overruled, the page the checked choice came from) per cell of the earlier-period check's page."""
    verdicts = {}
    for parts in _table_rows(path, EARLIER_HEADER, "table"):
        page = parts[-1].split("](")[-1].rstrip(")")
        verdicts[(parts[0], int(parts[1]))] = (parts[5].startswith("overruled"), page)
    return verdicts


def short_choice(choice: str) -> str:
    """Auto's choice in a few words: the grid-wide settings, or the searched settings that matter most."""
    if choice.startswith("the grid-wide settings"):
        return "grid-wide settings (first trial)"
    text = choice.split("fixed (a recorded choice, no search): ")[-1]
    try:
        settings = ast.literal_eval(text[: text.index("}") + 1])
    except (ValueError, SyntaxError):
        return text
    words = [" ".join(str(settings.get(k)) for k in ("model", "backbone", "mixing")), f"loss {settings.get('loss')}"]
    if settings.get("freq_loss_weight"):
        words.append(f"FreDF {settings['freq_loss_weight']}")
    words.append(f"dropout {settings.get('dropout')}")
    if settings.get("revin_subtract_last"):
        words.append("RevIN subtract-last")
    words.append(f"{settings.get('max_steps')} steps")
    return ", ".join(words)


def _pct(a: float, b: float) -> str:
    return f"{100 * (a / b - 1):+.1f}%"


def gather_cells(config: AutoSummaryConfig) -> list[dict[str, Any]]:
    """Per cell: the three MSEs, auto's choice, and where each number comes from."""
    from xlstm_seq_bench.forecasting.long_horizon_config import LongHorizonConfig

    grid = LongHorizonConfig.from_dict(load_yaml(config.grid))
    earlier = read_earlier_check(config.earlier_check) if config.earlier_check else {}
    pages: dict[str, dict] = {}
    gathered = []
    for cell in config.cells:
        name, h = str(cell["dataset"]), int(cell["h"])
        for page in (cell["page"], cell.get("hand_page")):
            if page and page not in pages:
                pages[page] = read_auto_table(page)
        if (name, h) not in pages[cell["page"]]:
            raise ValueError(f"{cell['page']} has no row for {name}-{h}")
        row = pages[cell["page"]][(name, h)]
        hand, hand_source = row.hand, Path(cell["page"]).name
        if hand is None and cell.get("hand_page"):
            hand, hand_source = pages[cell["hand_page"]][(name, h)].hand, Path(cell["hand_page"]).name
        if hand is None:
            if grid.settings_for(name, h)[1] != grid.xlstm:
                raise ValueError(f"{name}-{h}: no hand-chosen MSE on {cell['page']} and the grid's hand-chosen "
                                 "settings differ from the grid-wide ones; name a hand_page")  # fmt: skip
            hand, hand_source = row.defaults, "the defaults' MSE: no per-data-set changes in the grid"
        overruled, checked_page = earlier.get((name, h), (False, ""))
        gathered.append({"dataset": name, "h": h, "defaults": row.defaults, "hand": hand, "auto": row.auto,
                         "choice": row.choice, "page": cell["page"], "hand_source": hand_source,
                         "overruled": overruled and checked_page == Path(cell["page"]).name})  # fmt: skip
    return gathered


def gather_seed_sets(config: AutoSummaryConfig) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """Per cell, one entry per seed-set page that exists: seed, defaults and auto MSE, and the page."""
    sets: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for page in config.seed_set_pages:
        if not Path(page).is_file():
            continue
        text = Path(page).read_text(encoding="utf-8")
        seed = int(text.split("- seed ", 1)[1].split(";", 1)[0])
        for key, row in read_auto_table(page).items():
            sets.setdefault(key, []).append({"seed": seed, "defaults": row.defaults, "auto": row.auto, "page": page})
    return sets


def spread_verdict(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Means, standard deviations and ranges (max - min) of the two columns over seed sets, and the verdict: the
    difference of the means (auto - defaults) is a tie when it is no larger than the larger of the two ranges."""
    stats: dict[str, Any] = {"n": len(entries)}
    for column in ("defaults", "auto"):
        values = [e[column] for e in entries]
        stats[column] = (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else float("nan"),
                         max(values) - min(values))  # fmt: skip
    diff = stats["auto"][0] - stats["defaults"][0]
    spread = max(stats["defaults"][2], stats["auto"][2])
    worse_each = all(e["auto"] > e["defaults"] for e in entries)
    better_each = all(e["auto"] < e["defaults"] for e in entries)
    if len(entries) < 2:
        verdict = "not measured (one seed set)"
    elif abs(diff) <= spread:
        verdict = "tie (the difference lies within the spread over seed sets)"
    elif diff > 0:
        verdict = "loss beyond the spread" + ("" if worse_each else " (though not in every seed set)")
    else:
        verdict = "win beyond the spread" + ("" if better_each else " (though not in every seed set)")
    return {**stats, "diff": diff, "spread": spread, "verdict": verdict, "worse_each": worse_each}


def summary_markdown(config: AutoSummaryConfig, cells: list[dict[str, Any]], seed_sets: dict, provenance) -> str:
    """The page."""
    ratios = [c["auto"] / c["hand"] for c in cells]
    mean_ratio = statistics.mean(ratios)
    served = [c["defaults"] / c["hand"] if c["overruled"] else c["auto"] / c["hand"] for c in cells]
    worse = [c for c in cells if c["auto"] > c["defaults"]]
    verdicts = {key: spread_verdict(entries) for key, entries in seed_sets.items()}
    rows = ["| data | h | defaults MSE | hand-chosen MSE | auto MSE | auto vs defaults | auto vs hand-chosen | "
            "auto's choice | source page (hand-chosen from) |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in cells:
        choice = short_choice(c["choice"])
        if c["overruled"]:
            choice += "; the earlier-period check (now on) overrules it: grid-wide settings served today"
        key = (c["dataset"], c["h"])
        if key in verdicts and verdicts[key]["n"] > 1:
            choice += f"; over {verdicts[key]['n']} seed sets: {verdicts[key]['verdict'].split(' (')[0]}"
        page = Path(c["page"]).name
        hand_from = "" if c["hand_source"] == page else f" ({c['hand_source']})"
        rows.append(f"| {c['dataset']} | {c['h']} | {c['defaults']:.4f} | {c['hand']:.4f} | {c['auto']:.4f} | "
                    f"{_pct(c['auto'], c['defaults'])} | {_pct(c['auto'], c['hand'])} | {choice} | "
                    f"[{page}]({page}){hand_from} |")  # fmt: skip
    lines = [
        "# Auto mode on all 20 long-horizon cells",
        "",
        *provenance.markdown(
            ["trains nothing: every number is read from the pages named in the table and below", *config.notes]
        ),
        "",
        "Per cell, the test MSE (standardised, every test window) of the grid-wide defaults, the hand-chosen grid "
        "and auto mode (AutoXLSTMForecaster's choice on the validation split), each the mean forecast of 5 seeds "
        "(members' random seeds 0-4), as the cell's latest `xlstm-seq forecast auto` run wrote them on its page. "
        "Those pages are the only record of the test columns (MLflow holds the searches' settings and validation "
        "scores). Where the run skipped the hand-chosen column, the hand-chosen MSE is the one named in brackets: "
        "another page of the same cell, or the defaults' MSE where `" + config.grid + "` sets no per-data-set "
        "changes (ETTm1, Weather: the same settings and seeds, so the same fits). The percentages are recomputed "
        "from the pages' 4-decimal MSEs and may differ from a page's own by 0.1 point.",
        "",
        *rows,
        "",
        "## Targets over the 20 cells",
        "",
        f"- auto within 3% of the hand-chosen grid on average: {'met' if mean_ratio <= HAND_TARGET else 'missed'} "
        f"(mean ratio of test MSE auto / hand-chosen {mean_ratio:.3f} over {len(cells)} cells; "
        f"{sum(r > 1 for r in ratios)} cells above 1)",
        f"  - with the earlier-period check's verdicts applied (the {sum(c['overruled'] for c in cells)} recorded "
        f"choices it overrules served as the grid-wide settings, taken at the defaults' MSE: the same settings and "
        f"seeds, though auto's early stopping follows validation MSE, so its own number may differ by a few "
        f"tenths of a percent): {statistics.mean(served):.3f}",
        f"- auto no worse than the defaults on every cell's test MSE: {'met' if not worse else 'missed'} as "
        f"recorded on one seed set: worse on {len(worse)} cells ("
        + ", ".join(f"{c['dataset']}-{c['h']} {_pct(c['auto'], c['defaults'])}" for c in worse)
        + "). A difference smaller than the spread over seed sets is a tie; the spread was measured on the cells "
        "below only. Where auto kept the grid-wide settings, a gap of a few tenths of a percent can only come from "
        "the search's own fit of them (its early stopping follows validation MSE; the defaults' follows their "
        "training loss, MAE).",
        *[
            f"  - {name}-{h}, over {v['n']} seed sets: auto - defaults {v['diff']:+.4f} "
            f"({_pct(v['auto'][0], v['defaults'][0])}) against a spread of {v['spread']:.4f} "
            f"({100 * v['spread'] / v['defaults'][0]:.1f}% of the defaults' mean): {v['verdict']}"
            for (name, h), v in verdicts.items()
            if v["n"] > 1
        ],
        "",
        *_seed_section(config, seed_sets, verdicts, cells),
    ]
    return "\n".join(lines) + "\n"


def _seed_section(config: AutoSummaryConfig, seed_sets: dict, verdicts: dict, cells: list[dict]) -> list[str]:
    if not seed_sets:
        return ["## Spread over seed sets", "", "Not measured: no seed-set page exists yet.", ""]
    recorded = {(c["dataset"], c["h"]): c for c in cells}
    lines = [
        "## Spread over seed sets",
        "",
        "Runs of `xlstm-seq forecast auto --config configs/forecasting/auto_seed_sets.yaml seed=S` (pages linked per "
        "row): the defaults and auto's recorded choice (its settings as the cell's search logged them; no search) "
        "refitted with the members' random seeds 5S..5S+4, each column the mean forecast of its 5 members. Seed "
        "set 0 repeats the recorded runs' seeds. Verdict: the difference of the two columns' means over seed sets "
        "is a tie when it is no larger than the larger of the two columns' ranges (max - min over seed sets).",
        "",
        "| data | h | seed set (members' seeds) | defaults MSE | auto MSE | auto vs defaults | page |",
        "|---|---|---|---|---|---|---|",
    ]
    for (name, h), entries in seed_sets.items():
        for e in sorted(entries, key=lambda e: e["seed"]):
            page = Path(e["page"]).name
            lines.append(f"| {name} | {h} | {e['seed']} ({5 * e['seed']}-{5 * e['seed'] + 4}) | {e['defaults']:.4f} | "
                         f"{e['auto']:.4f} | {_pct(e['auto'], e['defaults'])} | [{page}]({page}) |")  # fmt: skip
    lines += ["", "| data | h | seed sets | defaults: mean ± std (range) | auto: mean ± std (range) | "
              "auto - defaults (means) | spread (larger range) | verdict |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for (name, h), v in verdicts.items():
        d, a = v["defaults"], v["auto"]
        lines.append(f"| {name} | {h} | {v['n']} | {d[0]:.4f} ± {d[1]:.4f} ({d[2]:.4f}) | {a[0]:.4f} ± {a[1]:.4f} "
                     f"({a[2]:.4f}) | {v['diff']:+.4f} ({_pct(a[0], d[0])}) | {v['spread']:.4f} | "
                     f"{v['verdict']} |")  # fmt: skip
    lines.append("")
    for (name, h), entries in seed_sets.items():
        rec, zero = recorded.get((name, h)), [e for e in entries if e["seed"] == 0]
        if rec and zero:
            same = abs(zero[0]["defaults"] - rec["defaults"]) < 5e-5 and abs(zero[0]["auto"] - rec["auto"]) < 5e-5
            lines.append(f"- {name}-{h}: seed set 0 here {'reproduces' if same else 'DOES NOT reproduce'} the "
                         f"recorded run ({Path(rec['page']).name}: defaults {rec['defaults']:.4f}, auto "
                         f"{rec['auto']:.4f})")  # fmt: skip
    return [*lines, ""]


def write_summary(config: AutoSummaryConfig, command: str | None = None) -> Path:
    """Reads the pages, writes ``config.out``; returns its path."""
    device = f"{cpu_model()} (CPU, {visible_cores()} cores visible); no model is fitted"
    provenance = Provenance.capture(command, packages=("pandas", "optuna"), device=device)
    cells, seed_sets = gather_cells(config), gather_seed_sets(config)
    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(summary_markdown(config, cells, seed_sets, provenance.finish()), encoding="utf-8")
    return out
