"""The tuned study's paired comparisons (each family's chosen arm against another's, over the seeds both have,
Holm-adjusted together) and the verdict table the results page shows."""

from __future__ import annotations

import math

from recipes.evidence import tuned_plan as plan
from recipes.evidence.holm import holm, paired_p
from recipes.evidence.paired import mean_interval
from recipes.evidence.tuned_records import REGIMES, chosen, run_metrics

METRICS = ("primary", "nll", "ece", "brier")
METRIC_NAMES = {"primary": "task metric", "nll": "NLL", "ece": "ECE", "brier": "Brier"}
HIGHER_IS_BETTER = {"primary": True, "accuracy": True, "nll": False, "ece": False, "brier": False}


def fmt(value: float, scale: float = 1.0, digits: int = 3) -> str:
    return (
        "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{scale * value:.{digits}f}"
    )


def scale_of(metric: str) -> tuple[float, int]:
    return (100.0, 1) if metric in ("primary", "accuracy") else (1.0, 4)


COMPARISONS = [
    ("sse-se", "baseline"),
    ("sse-graph", "baseline"),
    ("label-smoothing", "baseline"),
    ("neftune", "baseline"),
    ("sse-se", "label-smoothing"),
    ("sse-se", "neftune"),
    ("sse-graph", "label-smoothing"),
    ("sse-graph", "neftune"),
]


# SSE's calibration against the cheap fix: each SSE arm as trained, against the tuned baseline after temperature
# scaling fitted on its carved split (its "ts_" figures), on the metrics scaling can change.
AGAINST_SCALING = [("sse-se", "baseline"), ("sse-graph", "baseline")]
SCALED_METRICS = ("nll", "ece")
SCALED = " + TS"  # suffix of a right-hand side read after temperature scaling


def paired_row(task: str, labels: dict, left: tuple[str, str, dict], right: tuple[str, str, dict], metric: str):
    """One paired comparison over the seeds both arms have (None below 2): left and right are (family, arm,
    seed -> record); a right family ending in SCALED is read after temperature scaling."""
    (left_family, left_arm, a), (right_family, right_arm, b) = left, right
    seeds = sorted(set(a) & set(b) & set(plan.FINAL_SEEDS))
    if len(seeds) < 2:
        return None
    right_metric = "ts_" + metric if right_family.endswith(SCALED) else metric
    diffs = [
        run_metrics(a[s], labels.get(task), task)[metric] - run_metrics(b[s], labels.get(task), task)[right_metric]
        for s in seeds
    ]
    better = [d > 0 if HIGHER_IS_BETTER[metric] else d < 0 for d in diffs]
    mean, low, high = mean_interval(diffs)
    return {
        "task": task,
        "left": left_family,
        "right": right_family,
        "left_arm": left_arm,
        "right_arm": right_arm + (SCALED if right_family.endswith(SCALED) else ""),
        "metric": metric,
        "seeds": seeds,
        "mean": mean,
        "low": low,
        "high": high,
        "ahead": sum(better),
        "p": paired_p(diffs),
    }


def comparisons(runs: dict, labels: dict, extra: list[dict] = ()) -> list[dict]:
    """Every paired comparison the page reports (these studies' and `extra`, the STS-B study's), with its CI,
    seeds ahead, raw and Holm-adjusted p: Holm runs over all of them together."""
    rows = list(extra)
    for task in REGIMES:
        picks = chosen(runs, task)

        def side(family: str) -> tuple[str, str, dict]:
            arm = picks[family.removesuffix(SCALED)]
            return family, arm, runs[task][arm]

        pairs = [(left, right, METRICS) for left, right in COMPARISONS]
        if task in labels:
            pairs += [(left, right + SCALED, SCALED_METRICS) for left, right in AGAINST_SCALING]
        for left, right, metrics in pairs:
            if left not in picks or right.removesuffix(SCALED) not in picks:
                continue
            for metric in metrics:
                row = paired_row(task, labels, side(left), side(right), metric)
                if row:
                    rows.append(row)
    for row, adjusted in zip(rows, holm([row["p"] for row in rows])):
        row["p_holm"] = adjusted
    return rows


def difference_cell(row: dict, metric: str) -> str:
    """One comparison as a table cell: mean difference [95% CI] (Holm p), in the metric's scale."""
    scale, digits = scale_of(metric)
    return (
        f"{scale * row['mean']:+.{digits}f} [{scale * row['low']:+.{digits}f}, {scale * row['high']:+.{digits}f}] "
        f"({fmt(row['p_holm'], digits=2)})"
    )


def verdict_table(rows: list[dict]) -> list[str]:
    """Per task, each SSE family against each competitor: the task metric and the calibration metrics, each as
    mean difference [95% CI] (Holm p), and what survives Holm at 0.05."""
    metrics = ("primary", *METRICS[1:])
    lines = [
        "| task | SSE | against | task metric | NLL | ECE | Brier | verdict (Holm p < 0.05) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    keyed = {(r["task"], r["left"], r["right"], r["metric"]): r for r in rows}
    for task in REGIMES:
        for left in ("sse-se", "sse-graph"):
            for right in ("baseline", "label-smoothing", "neftune", "baseline" + SCALED):
                found = {m: keyed.get((task, left, right, m)) for m in metrics}
                shown = [r for r in found.values() if r]
                if not shown:
                    continue
                cells, won, lost = [], [], []
                for metric, row in found.items():
                    if row is None:
                        cells.append("")
                        continue
                    cells.append(difference_cell(row, metric))
                    if row["p_holm"] < 0.05:
                        ahead = row["mean"] > 0 if HIGHER_IS_BETTER[metric] else row["mean"] < 0
                        (won if ahead else lost).append(METRIC_NAMES[metric])
                verdict = "; ".join(
                    [f"better on {', '.join(won)}"] * bool(won) + [f"worse on {', '.join(lost)}"] * bool(lost)
                )
                lines.append(
                    f"| {task} | {shown[0]['left_arm']} | {shown[0]['right_arm']} | {' | '.join(cells)} | "
                    f"{verdict or 'no difference shown'} |"
                )
    return lines
