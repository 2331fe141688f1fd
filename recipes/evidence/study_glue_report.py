"""The GLUE study's report: per task and for the GLUE-4 mean, each arm against the baseline and NEFTune.

Reads the compact records that `plan.py` keeps and writes `report.md` (tables) and one PNG per task
(paired differences per seed). The task score is GLUE's: the mean of the task's metrics (MRPC: F1 and
accuracy; STS-B: Pearson and Spearman), in points; GLUE-4 is the mean of the four task scores per seed.
"""

from __future__ import annotations

import argparse
import os
import statistics

from recipes.evidence import compare
from recipes.evidence import glue_plan as plan
from recipes.evidence.paired import draw_paired_row, mean_interval
from recipes.evidence.records import DOCS_STUDY

REPORT_DIR = os.path.join(DOCS_STUDY, "glue")

METRICS = {
    "rte": ("accuracy",),
    "mrpc": ("f1", "accuracy"),
    "stsb": ("pearson", "spearmanr"),
    "cola": ("matthews_correlation",),
}


def task_score(results: dict, task: str, split: str = "eval") -> float:
    """GLUE's score of one run in points: the mean of the task's metrics on `split` (eval = GLUE dev)."""
    return 100 * statistics.fmean(results[f"{split}_{metric}"] for metric in METRICS[task])


def per_seed(records: str, split: str = "eval") -> dict[str, dict[str, dict[int, tuple[float, float]]]]:
    """task (and "glue4") -> arm -> seed -> (score in points, loss) on `split`."""
    table: dict[str, dict[str, dict[int, tuple[float, float]]]] = {}
    for task in plan.TASKS:
        table[task] = {
            arm: {seed: (task_score(r, task, split), r[f"{split}_loss"]) for seed, r in runs.items()}
            for arm, runs in plan.load(records, task).items()
        }
    glue4: dict[str, dict[int, tuple[float, float]]] = {}
    for arm in set.intersection(*(set(table[task]) for task in plan.TASKS)):
        seeds = set.intersection(*(set(table[task][arm]) for task in plan.TASKS))
        glue4[arm] = {
            seed: (statistics.fmean(table[task][arm][seed][0] for task in plan.TASKS), float("nan"))
            for seed in sorted(seeds)
        }
    table["glue4"] = glue4
    return table


def paired(values: dict[int, tuple[float, float]], reference: dict[int, tuple[float, float]], which: int):
    """Same-seed differences (arm minus reference) of the score (which=0) or the loss (which=1)."""
    seeds = sorted(set(values) & set(reference))
    return [values[s][which] - reference[s][which] for s in seeds]


def _interval(diffs: list[float], digits: int) -> str:
    if not diffs:
        return "-"
    mean, low, high = mean_interval(diffs)
    if len(diffs) < 2:
        return f"{mean:+.{digits}f}"
    return f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def _ahead(diffs: list[float], better: int) -> str:
    return f"{sum(better * d > 0 for d in diffs)}/{len(diffs)}" if diffs else "-"


def _mean_std(values: list[float], digits: int) -> str:
    values = [v for v in values if v == v]  # drop nan
    if not values:
        return "-"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {spread:.{digits}f}"


def task_table(name: str, arms: dict[str, dict[int, tuple[float, float]]]) -> str:
    """One markdown table: per arm, score and loss on GLUE dev, and paired differences with 95% CIs."""
    base, neftune = arms.get("baseline", {}), arms.get("neftune-5", {})
    has_loss = name != "glue4"
    lines = [
        f"#### {name}",
        "",
        "| arm | seeds | score (points) | vs baseline: diff [95% CI], seeds ahead | vs NEFTune: diff [95% CI], seeds ahead"
        + (" | loss | loss vs baseline [95% CI], seeds lower |" if has_loss else " |"),
        "| --- | --- | --- | --- | ---" + (" | --- | --- |" if has_loss else " |"),
    ]
    for arm in [a for a in plan.ARMS if a in arms]:
        values = arms[arm]
        row = [arm, str(len(values)), _mean_std([v[0] for v in values.values()], 2)]
        for reference, label in ((base, "baseline"), (neftune, "neftune-5")):
            diffs = paired(values, reference, 0) if arm != label else []
            row.append(f"{_interval(diffs, 2)}, {_ahead(diffs, 1)}" if diffs else "-")
        if has_loss:
            row.append(_mean_std([v[1] for v in values.values()], 3))
            diffs = paired(values, base, 1) if arm != "baseline" else []
            row.append(f"{_interval(diffs, 3)}, {_ahead(diffs, -1)}" if diffs else "-")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def plot(name: str, arms: dict[str, dict[int, tuple[float, float]]], path: str) -> str:
    """Per arm, each seed's difference from the baseline (dots) with the mean and 95% CI; score and loss panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = arms.get("baseline", {})
    shown = [a for a in plan.ARMS if a in arms and a != "baseline"]
    panels = [(0, "GLUE score (points): higher is better")] + (
        [(1, "loss: lower is better")] if name != "glue4" else []
    )
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 0.45 * len(shown) + 1.4), squeeze=False)
    for axis, (which, title) in zip(axes[0], panels):
        for row, arm in enumerate(shown):
            diffs = paired(arms[arm], base, which)
            if not diffs:
                continue
            draw_paired_row(axis, row, diffs)
        axis.axvline(0, color="black", linewidth=0.8)
        axis.set_yticks(range(len(shown)), shown if which == 0 else [])
        axis.set_ylim(len(shown) - 0.5, -0.5)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("minus baseline, same seed")
    figure.suptitle(f"{name} (GLUE dev), train-{plan.TRAIN_SIZE}: per seed, mean and 95% CI", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def fit_table(records: str) -> str:
    """Per task and arm: the training loss at the first and the last log (mean over seeds) and the realised
    swap rate, to show how closely each arm fits its training examples (the regime SSE is meant for)."""
    lines = [
        "| task | arm | seeds | first logged training loss | last logged training loss | realised swap rate |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for task in plan.TASKS:
        for arm in [a for a in plan.ARMS if os.path.isdir(os.path.join(records, task, a))]:
            curves = [
                compare.training_losses(os.path.join(records, task, arm, seed))
                for seed in sorted(os.listdir(os.path.join(records, task, arm)))
            ]
            curves = [curve for curve in curves if curve]
            if not curves:
                continue
            rates = [r.get("sse_swap_rate", 0.0) for r in plan.load(records, task).get(arm, {}).values()]
            first, last = (statistics.fmean(curve[i][1] for curve in curves) for i in (0, -1))
            lines.append(
                f"| {task} | {arm} | {len(curves)} | {first:.3f} | {last:.3f} | {statistics.fmean(rates or [0.0]):.3f} |"
            )
    return "\n".join(lines) + "\n"


def report(records: str, output_dir: str) -> str:
    """Write report.md and the plots; return the markdown."""
    os.makedirs(output_dir, exist_ok=True)
    dev, choice = per_seed(records, "eval"), per_seed(records, "predict")
    parts = [
        "### GLUE dev (reported only; no choice was made on it)\n",
        *(task_table(name, dev[name]) for name in (*plan.TASKS, "glue4") if dev[name]),
        "### Choice split (carved from the training files; the best arm is chosen here)\n",
        *(task_table(name, choice[name]) for name in (*plan.TASKS, "glue4") if choice[name]),
        "### How closely each arm fits its 300 training examples\n",
        fit_table(records),
    ]
    for name in (*plan.TASKS, "glue4"):
        if dev[name]:
            plot(name, dev[name], os.path.join(output_dir, f"paired-{name}.png"))
    text = "\n".join(parts)
    with open(os.path.join(output_dir, "report.md"), "w", encoding="utf-8") as handle:
        handle.write(text)
    print(text)
    return text


def adaptive_rates(records: str, adaptive: str = "sse-se-p0.2-adaptive", constant: str = "sse-se-p0.2") -> str:
    """The adaptive arm's swap rate over the whole run: its swapped tokens over the eligible tokens the constant
    arm saw at the same seed (the same data order). The logged rate covered only the steps where p > 0,
    because the library counted no tokens while p was 0."""
    lines = ["| task | seed | logged rate (steps with p > 0) | rate over the whole run |", "|---|---|---|---|"]
    for task in [t for t in plan.TASKS if os.path.isdir(os.path.join(records, t))]:
        runs = plan.load(records, task)
        for seed in sorted(set(runs.get(adaptive, {})) & set(runs.get(constant, {}))):
            arm, reference = runs[adaptive][seed], runs[constant][seed]
            whole = arm["sse_tokens_swapped"] / reference["sse_tokens_eligible"]
            lines.append(f"| {task} | {seed} | {arm['sse_swap_rate']:.4f} | {whole:.4f} |")
    text = "\n".join(lines)
    print(text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", default=plan.RECORDS_DIR, help="the study's compact run records")
    parser.add_argument("--report_dir", default=REPORT_DIR, help="where report.md and the plots go")
    parser.add_argument("--adaptive_rates", action="store_true", help="only the adaptive arm's whole-run swap rates")
    args = parser.parse_args(argv)
    if args.adaptive_rates:
        adaptive_rates(args.records)
        return
    report(args.records, args.report_dir)


if __name__ == "__main__":
    main()
