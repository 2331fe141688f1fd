"""The over-fitting study's report, a function of its committed records: the tuning tables (choice split), the
validity gates, each arm's test scores beside the trivial references, the paired differences and the verdict
by the pre-registered rule.

    python -m recipes.evidence.overfit_report --data ../shared/data/imdb-2000.csv   # report.md, curves.png, paired.png
"""

from __future__ import annotations

import argparse
import os
import statistics

import numpy as np

from recipes.evidence import overfit_plan as plan
from recipes.evidence import overfit_rules as rules
from recipes.evidence import study_overfit as study
from recipes.evidence.calibration import nll
from recipes.evidence.paired import draw_paired_row, mean_interval

REPORT = os.path.join(os.path.dirname(plan.RECORDS_DIR), "report.md")


def _mean_sd(values: list[float], scale: float = 1.0, decimals: int = 1) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values) * scale
    spread = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{mean:.{decimals}f} ± {spread:.{decimals}f}"


def tuning_table(records: str, grid: dict[str, dict]) -> list[str]:
    """One row per grid setting: kept epoch and choice accuracy / NLL per tuning seed, and their means."""
    lines = [
        "| setting | "
        + " | ".join(f"seed {s}: epoch, acc, NLL" for s in plan.TUNING_SEEDS)
        + " | mean acc | mean NLL |",
        "|---|" + "---|" * (len(plan.TUNING_SEEDS) + 2),
    ]
    for arm in grid:
        runs = [study.load_record(records, arm, seed) for seed in plan.TUNING_SEEDS]
        cells, accs, nlls = [], [], []
        for run in runs:
            if run is None:
                cells.append("not run")
                continue
            kept = rules.kept_choice(run)
            accs.append(kept["accuracy"])
            nlls.append(kept["nll"])
            cells.append(f"{run['kept_epoch']}, {100 * kept['accuracy']:.1f}, {kept['nll']:.3f}")
        mean_acc = f"{100 * statistics.fmean(accs):.2f}" if accs else "-"
        mean_nll = f"{statistics.fmean(nlls):.3f}" if nlls else "-"
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {mean_acc} | {mean_nll} |")
    return lines


def gate_lines(verdict: dict) -> list[str]:
    mark = {True: "pass", False: "FAIL"}
    return [
        "| gate | figure | threshold | result |",
        "|---|---|---|---|",
        f"| learns: mean choice accuracy (kept epoch) | {100 * verdict['choice_accuracy']:.1f}% "
        f"| >= {100 * plan.GATE_ACCURACY:.0f}% | {mark[verdict['choice_accuracy'] >= plan.GATE_ACCURACY]} |",
        f"| learns: mean choice NLL (kept epoch) | {verdict['choice_nll']:.3f} | < ln 2 = {plan.GATE_NLL:.3f} "
        f"| {mark[verdict['choice_nll'] < plan.GATE_NLL]} |",
        f"| over-fits: mean last-epoch training loss | {verdict['final_train_loss']:.3f} | < {plan.GATE_TRAIN_LOSS} "
        f"| {mark[verdict['final_train_loss'] < plan.GATE_TRAIN_LOSS]} |",
        f"| over-fits: seeds whose last-epoch choice NLL is >= {plan.GATE_OVERFIT_NATS} above its minimum "
        f"| {verdict['overfit_seeds']} of {verdict['seeds']} | >= {plan.GATE_OVERFIT_SEEDS} of {len(plan.FINAL_SEEDS)} "
        f"| {mark[verdict['overfit_seeds'] >= plan.GATE_OVERFIT_SEEDS]} |",
    ]


def arm_rows(runs: list[dict], labels: dict[str, list[int]]) -> dict[str, list[float]]:
    """Per seed: test accuracy, raw and temperature-scaled test NLL, kept epoch, last-epoch training loss."""
    rows = {"accuracy": [], "nll": [], "scaled_nll": [], "epoch": [], "train_loss": [], "temperature": []}
    for run in runs:
        rows["accuracy"].append(rules.test_accuracy(run, labels["test"]))
        rows["nll"].append(run["test_scores"]["nll"])
        scaled, temperature = rules.scaled_test_nll(run, labels["choice"], labels["test"])
        rows["scaled_nll"].append(scaled)
        rows["temperature"].append(temperature)
        rows["epoch"].append(run["kept_epoch"])
        rows["train_loss"].append(run["epoch_train_loss"][-1])
    return rows


def plot_curves(arms: dict[str, list[dict]], path: str) -> str:
    """Per epoch, each arm's mean choice NLL, choice accuracy and training loss over its final seeds: where the
    baseline over-fits and where each arm's kept epochs fall."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for name, runs in arms.items():
        epochs = np.arange(1, len(runs[0]["choice_scores"]) + 1)
        series = {
            "choice NLL": [[s["nll"] for s in run["choice_scores"]] for run in runs],
            "choice accuracy": [[s["accuracy"] for s in run["choice_scores"]] for run in runs],
            "training loss": [run["epoch_train_loss"] for run in runs],
        }
        for axis, (label, values) in zip(axes, series.items()):
            axis.plot(epochs, np.mean(values, axis=0), marker="o", markersize=3, label=name)
            axis.set_title(f"{label} (mean of {len(runs)} seeds)")
            axis.set_xlabel("epoch")
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_paired(accuracy_diffs: list[float], nll_diffs: list[float], path: str) -> str:
    """Each seed's SSE-SE minus baseline difference on the two endpoints, with the mean and its 95% CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 2.4))
    for axis, diffs, label in zip(axes, (accuracy_diffs, nll_diffs), ("test accuracy (points)", "scaled test NLL")):
        draw_paired_row(axis, 0, diffs)
        axis.axvline(0, color="black", linewidth=0.8)
        axis.set_yticks([])
        axis.set_title(f"SSE-SE minus baseline: {label}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def report(data: str, records: str = plan.RECORDS_DIR, figures: str | None = None) -> str:
    """The report's Markdown; with `figures` (a folder), its plots are written there and linked."""
    splits = study.read_splits(data)
    labels = {"choice": splits["choice"][1], "test": splits["test"][1]}
    test = np.asarray(labels["test"])
    majority = max(test.mean(), 1 - test.mean())
    prior = nll(np.tile([1 - np.mean(splits["pool"][1]), np.mean(splits["pool"][1])], (len(test), 1)), test)
    choice = np.asarray(labels["choice"])
    pool_rate = float(np.mean(splits["pool"][1]))
    choice_prior = nll(np.tile([1 - pool_rate, pool_rate], (len(choice), 1)), choice)
    commits = sorted(
        {run["code"]["commit"] for run in study.all_records(records)} if os.path.isdir(records) else set()
    )
    lines = [
        "# Over-fitting study: report",
        "",
        f"Generated by `python -m recipes.evidence.overfit_report --data ../shared/data/imdb-2000.csv` from the "
        f"records in `docs/study/overfit/runs/` (plan version {plan.PLAN_VERSION}, docs/study/overfit/README.md), "
        f"written by code commit(s) {', '.join(commits) or 'none yet'}.",
        "",
        "## Tuning (choice split; kept epoch per run)",
        "",
        f"Trivial reference on the choice split: majority class {100 * max(choice.mean(), 1 - choice.mean()):.1f}% "
        f"accuracy, class-prior NLL {choice_prior:.3f}.",
        "",
        "Baseline grid:",
        "",
        *tuning_table(records, plan.BASELINE_GRID),
    ]
    baseline = study.chosen(records, plan.BASELINE_GRID)
    if baseline is None:
        return "\n".join([*lines, "", "The baseline's grid is not complete: nothing is chosen yet.", ""])
    settings = plan.BASELINE_GRID[baseline]
    grid = plan.sse_grid(settings["dropout"], settings["weight_decay"])
    sse = study.chosen(records, grid)
    lines += ["", f"Chosen baseline: **{baseline}**.", "", "SSE-SE grid (at the baseline's dropout and weight decay):"]
    lines += ["", *tuning_table(records, grid), ""]
    lines.append(f"Chosen SSE-SE: **{sse}**." if sse else "SSE-SE's grid is not complete: nothing is chosen yet.")
    verdict = study.gates(records, baseline)
    lines += ["", "## Validity gates (baseline's final seeds, choice split)", ""]
    if verdict is None:
        done = sum(study.load_record(records, baseline, s) is not None for s in plan.FINAL_SEEDS)
        return "\n".join([*lines, f"{done} of {len(plan.FINAL_SEEDS)} final seeds recorded: the gates wait.", ""])
    lines += gate_lines(verdict)
    base_runs = [study.load_record(records, baseline, seed) for seed in plan.FINAL_SEEDS]
    sse_runs = [study.load_record(records, sse, seed) for seed in plan.FINAL_SEEDS] if sse else []
    if figures:
        arms = {baseline: base_runs, **({sse: sse_runs} if sse_runs and None not in sse_runs else {})}
        plot_curves(arms, os.path.join(figures, "curves.png"))
        lines += ["", "![Choice NLL, choice accuracy and training loss per epoch](curves.png)"]
    if not verdict["valid"]:
        lines += ["", "**The study is void** by its gates: not a refutation. A new plan version must run.", ""]
        return "\n".join(lines)
    lines += ["", "The gates pass: the study is valid.", "", "## Test split (800 reviews), 20 paired seeds", ""]
    if any(run is None for run in sse_runs):
        done = sum(run is not None for run in sse_runs)
        return "\n".join([*lines, f"{done} of {len(plan.FINAL_SEEDS)} SSE-SE final seeds recorded.", ""])
    base, treated = arm_rows(base_runs, labels), arm_rows(sse_runs, labels)
    lines += [
        "| arm | accuracy (%) | NLL | NLL, temperature-scaled | kept epoch | last-epoch training loss |",
        "|---|---|---|---|---|---|",
        f"| trivial: majority class / class prior | {100 * majority:.1f} | {prior:.3f} | {prior:.3f} | - | - |",
    ]
    for name, rows in ((baseline, base), (sse, treated)):
        lines.append(
            f"| {name} | {_mean_sd(rows['accuracy'], 100)} | {_mean_sd(rows['nll'], 1, 3)} "
            f"| {_mean_sd(rows['scaled_nll'], 1, 3)} | {_mean_sd(rows['epoch'])} | {_mean_sd(rows['train_loss'], 1, 3)} |"
        )
    accuracy_diffs = [100 * (a - b) for a, b in zip(treated["accuracy"], base["accuracy"])]
    nll_diffs = [a - b for a, b in zip(treated["scaled_nll"], base["scaled_nll"])]
    decided = rules.decision(accuracy_diffs, nll_diffs)
    lines += ["", "## SSE-SE minus baseline, paired by seed (the pre-registered endpoints, Holm over the two)", ""]
    lines += ["| endpoint | mean | 95% CI | seeds ahead | raw p | Holm p |", "|---|---|---|---|---|---|"]
    for name, unit, key in (("test accuracy", "points", "accuracy"), ("scaled test NLL", "nats", "scaled_nll")):
        e = decided[key]
        digits = 2 if key == "accuracy" else 3
        lines.append(
            f"| {name} ({unit}) | {e['mean']:+.{digits}f} | [{e['low']:+.{digits}f}, {e['high']:+.{digits}f}] "
            f"| {e['ahead']} of {len(plan.FINAL_SEEDS)} | {e['p']:.3f} | {e['holm']:.3f} |"
        )
    lines += ["", f"**Verdict by the pre-registered rule: {decided['verdict']}.**", ""]
    if figures:
        plot_paired(accuracy_diffs, nll_diffs, os.path.join(figures, "paired.png"))
        lines += ["![Per-seed differences, mean and 95% CI](paired.png)", ""]
    raw = [a - b for a, b in zip(treated["nll"], base["nll"])]
    mean, low, high = mean_interval(raw)
    lines += [
        "Exploratory (unadjusted): unscaled test NLL, SSE-SE minus baseline "
        f"{mean:+.3f} [{low:+.3f}, {high:+.3f}] nats.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="imdb-2000.csv (the labels of the choice and test splits)")
    parser.add_argument("--records", default=plan.RECORDS_DIR)
    parser.add_argument("--out", default=REPORT)
    args = parser.parse_args(argv)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    text = report(args.data, args.records, figures=os.path.dirname(args.out))
    with open(args.out, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
