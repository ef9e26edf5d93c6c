"""Evaluation reports: JSON, markdown tables and PNG bar charts.

matplotlib is imported only when a chart is drawn (``pip install
'multimodal_rag[eval]'``), and through ``matplotlib.figure.Figure`` rather than
pyplot, so drawing a chart never changes the caller's matplotlib backend.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from .metrics import METRICS
from .runner import EvalResult

__all__ = [
    "METRIC_LABELS",
    "comparison_chart",
    "comparison_table",
    "markdown_table",
    "write_chart",
    "write_report",
]

METRIC_LABELS: dict[str, str] = {
    "mrr": "MRR",
    "recall": "Recall",
    "ndcg": "nDCG",
    "map": "MAP",
    "precision": "P",
    "hit_rate": "Hit rate",
}


def _groups(result: EvalResult) -> list[str]:
    # Kinds first, the overall row last, as a reader scans a table down to the total.
    return [g for g in result.metrics if g != "all"] + ["all"]


def _header(first: Sequence[str], k: int) -> list[str]:
    cols = [*first, *(f"{METRIC_LABELS[m]}@{k}" for m in METRICS)]
    align = ["---"] * (len(first) - 1) + ["---:"] * (len(METRICS) + 1)
    return ["| " + " | ".join(cols) + " |", "|" + "|".join(align) + "|"]


def markdown_table(result: EvalResult, *, digits: int = 3) -> str:
    """A markdown table: one row per question kind and one for all, one column per metric.

    Example:
        >>> print(markdown_table(result))  # doctest: +SKIP
        | group | n | MRR@10 | Recall@10 | nDCG@10 | MAP@10 | P@10 | Hit rate@10 |
        |---|---:|---:|---:|---:|---:|---:|---:|
        | figure | 20 | 0.512 | 0.600 | 0.530 | 0.498 | 0.060 | 0.600 |
        | all | 51 | 0.602 | 0.701 | 0.611 | 0.580 | 0.082 | 0.725 |
    """
    counts = result.counts()
    lines = _header(["group", "n"], result.k)
    for group in _groups(result):
        values = " | ".join(f"{result.metrics[group][m]:.{digits}f}" for m in METRICS)
        lines.append(f"| {group} | {counts[group]} | {values} |")
    return "\n".join(lines) + "\n"


def comparison_table(results: Mapping[str, EvalResult], *, digits: int = 3) -> str:
    """Compare named runs (e.g. this project vs stock LlamaIndex) on the same questions.

    Rows are (group, system) pairs, grouped by question kind with ``all`` last;
    the best value of each metric within a group is bold.

    Args:
        results: Run name -> result, in the order to print.
        digits: Decimals shown.

    Raises:
        ValueError: No results, or results cut at different ``k``.
    """
    if not results:
        raise ValueError("comparison_table needs at least one result")
    ks = {r.k for r in results.values()}
    if len(ks) != 1:
        raise ValueError(f"results are cut at different k ({sorted(ks)}); compare at one k")
    groups: list[str] = []
    for result in results.values():
        groups += [g for g in _groups(result) if g not in groups]
    groups = [g for g in groups if g != "all"] + ["all"]
    lines = _header(["group", "system", "n"], ks.pop())
    for group in groups:
        present = {name: r for name, r in results.items() if group in r.metrics}
        best = {m: max(r.metrics[group][m] for r in present.values()) for m in METRICS}
        for name, result in present.items():
            cells = []
            for m in METRICS:
                text = f"{result.metrics[group][m]:.{digits}f}"
                # Bold ties too, but only when there is something to compare against.
                if len(present) > 1 and round(result.metrics[group][m], digits) == round(
                    best[m], digits
                ):
                    text = f"**{text}**"
                cells.append(text)
            lines.append(f"| {group} | {name} | {result.counts()[group]} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def _bar_chart(series: Mapping[str, Sequence[float]], title: str, path: Path, k: int) -> Path:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 4.5), layout="constrained")
    ax = figure.add_subplot()
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(METRICS))]
        bars = ax.bar(xs, values, width=width, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.set_xticks(range(len(METRICS)), [f"{METRIC_LABELS[m]}@{k}" for m in METRICS])
    ax.set_ylim(0, 1.08)  # headroom for the value labels above bars at 1.0
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    # Below the axes: any corner inside would cover bars that reach 1.0.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncols=len(series), frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path


def write_chart(result: EvalResult, path: str | Path) -> Path:
    """Draw a PNG bar chart of the metrics, one bar per group (kinds and all).

    Returns:
        The path written.
    """
    counts = result.counts()
    series = {
        f"{g} (n={counts[g]})": [result.metrics[g][m] for m in METRICS] for g in _groups(result)
    }
    return _bar_chart(series, "Retrieval metrics", Path(path), result.k)


def comparison_chart(
    results: Mapping[str, EvalResult], path: str | Path, *, group: str = "all"
) -> Path:
    """Draw a PNG bar chart comparing named runs on one group (default: all questions).

    Raises:
        ValueError: No results, different ``k``, or a run without that group.
    """
    if not results:
        raise ValueError("comparison_chart needs at least one result")
    ks = {r.k for r in results.values()}
    if len(ks) != 1:
        raise ValueError(f"results are cut at different k ({sorted(ks)}); compare at one k")
    missing = [name for name, r in results.items() if group not in r.metrics]
    if missing:
        raise ValueError(f"no {group!r} questions in {missing}")
    series = {name: [r.metrics[group][m] for m in METRICS] for name, r in results.items()}
    return _bar_chart(series, f"Retrieval metrics ({group})", Path(path), ks.pop())


def write_report(result: EvalResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``eval.json``, ``eval.md`` and ``eval.png`` into ``out_dir`` (created if missing).

    Returns:
        ``{"json": ..., "markdown": ..., "chart": ...}``, the paths written.

    Raises:
        ImportError: matplotlib is not installed (``pip install 'multimodal_rag[eval]'``);
            raised before anything is written.

    Example:
        >>> write_report(evaluate(questions, retriever), "report/")  # doctest: +SKIP
        {'json': PosixPath('report/eval.json'), ...}
    """
    import matplotlib  # noqa: F401 - missing, it fails here, before any file is written

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "eval.json", "markdown": out / "eval.md", "chart": out / "eval.png"}
    paths["json"].write_text(
        json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    paths["markdown"].write_text(markdown_table(result), encoding="utf-8")
    write_chart(result, paths["chart"])
    return paths
