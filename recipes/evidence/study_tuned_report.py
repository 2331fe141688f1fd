"""Report of the tuned-baseline study: trivial references, tuning tables, per-arm means, paired comparisons with
Holm-adjusted p-values, temperature scaling and reliability diagrams, from the committed records alone.

    python -m recipes.evidence.study_tuned_report --glue_dir ../shared/data/glue   # also writes labels.json

`--glue_dir` is needed once, to write each task's `labels.json` (carved and dev labels, training class counts)
beside its records; afterwards the report needs nothing but `docs/study/tuned/runs/`.
"""

from __future__ import annotations

import argparse
import os
import statistics

import numpy as np

from recipes.evidence import stsb_report, study_stsb
from recipes.evidence import tuned_plan as plan
from recipes.evidence.calibration import reliability, softmax
from recipes.evidence.tuned_comparisons import comparisons, difference_cell, fmt, scale_of, verdict_table
from recipes.evidence.tuned_records import (
    REGIMES,
    chosen,
    load,
    margins_to_logits,
    reference,
    run_metrics,
    write_labels,
)

# A regime "learned" when its tuned baseline clears the trivial reference by this much on dev (points of the
# task metric; MCC in points too) and its dev NLL is below the class-prior cross-entropy.
LEARNED_MARGIN = 5.0


def arm_table(runs: dict, labels: dict, task: str) -> list[str]:
    """Trivial reference, then each family's chosen arm: mean ± sd over the seeds every listed arm has."""
    picks = chosen(runs, task)
    if not picks:
        return ["(the learning-rate grid is not complete yet)"]
    complete = {f: a for f, a in picks.items() if set(plan.FINAL_SEEDS) <= set(runs[task][a])}
    seeds = sorted(plan.FINAL_SEEDS) if complete else []
    lines = [
        f"Seeds {seeds[0]}-{seeds[-1]} for every row." if seeds else "No arm has every final seed yet.",
        "",
        f"| arm | {plan.PRIMARY[plan.base_task(task)]} | accuracy | NLL | ECE | Brier | ECE after TS | NLL after TS | kept epochs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    if task in labels:
        ref = reference(labels[task], task)
        lines.append(
            f"| trivial reference (always '{ref['majority_class']}'; class prior) | {100 * ref['primary']:.1f} | "
            f"{100 * ref['accuracy']:.1f} | {ref['nll']:.4f} | {ref['ece']:.4f} | {ref['brier']:.4f} | | | |"
        )
    for family, arm in complete.items():
        figures = [run_metrics(runs[task][arm][s], labels.get(task), task) for s in seeds]

        def cell(key: str) -> str:
            values = [f[key] for f in figures if key in f]
            if not values:
                return "n/a"
            scale, digits = scale_of(key if key in ("primary", "accuracy") else "nll")
            return f"{scale * statistics.fmean(values):.{digits}f} ± {scale * statistics.stdev(values):.{digits}f}"

        epochs = ",".join(str(f["epoch"]) for f in figures)
        lines.append(
            f"| {family}: {arm} | {cell('primary')} | {cell('accuracy')} | {cell('nll')} | {cell('ece')} | "
            f"{cell('brier')} | {cell('ts_ece')} | {cell('ts_nll')} | {epochs} |"
        )
    pending = sorted(set(picks) - set(complete))
    if pending:
        lines += [
            "",
            "Chosen but not yet at every final seed: " + ", ".join(f"{f} ({picks[f]})" for f in pending) + ".",
        ]
    return lines


def tuning_table(runs: dict, task: str) -> list[str]:
    """Every grid setting's carved-split score at the tuning seed (the choices; dev is not shown)."""
    select = plan.SELECT[plan.base_task(task)]
    picks = chosen(runs, task)
    lines = [f"| family | setting | carved {select} | carved NLL | kept epoch | chosen |", "|---|---|---|---|---|---|"]
    for family, grid in [("baseline", plan.BASELINE_ARMS), *plan.FAMILIES.items()]:
        if task in plan.CURVE_REGIMES and family not in ("baseline", *plan.CURVE_FAMILIES):
            continue
        for arm in grid:
            record = runs.get(task, {}).get(arm, {}).get(plan.TUNING_SEED)
            if record is None:
                status = (
                    "pending" if family == "baseline" or plan.regularised(task) else "not run (baseline did not learn)"
                )
                lines.append(f"| {family} | {arm} | {status} | | | |")
                continue
            carved = record["epoch_scores"][record["kept_epoch"] - 1]["carved"]
            mark = "**yes**" if picks.get(family) == arm else ""
            lines.append(
                f"| {family} | {arm} | {100 * carved[select]:.1f} | {carved['nll']:.4f} | "
                f"{record['kept_epoch']} | {mark} |"
            )
    return lines


def learned(runs: dict, labels: dict, task: str) -> str | None:
    """'learned' or 'did not learn' for the tuned baseline against the trivial reference (None: not yet), on the
    score every choice is made on (GLUE's: MRPC's mean of accuracy and F1) and dev NLL below the class prior's.
    The task metric's own margin is shown beside it (MRPC's F1 alone: always answering 'paraphrase' scores 81)."""
    picks = chosen(runs, task)
    if "baseline" not in picks or task not in labels:
        return None
    base = plan.base_task(task)
    records = list(runs[task][picks["baseline"]].values())
    ref = reference(labels[task], task)

    def gain(metric: str) -> float:
        dev = [r["epoch_scores"][r["kept_epoch"] - 1]["dev"][metric] for r in records]
        return 100 * (statistics.fmean(dev) - ref[metric])

    below_prior = statistics.fmean(run_metrics(r, labels[task], task)["nll"] for r in records) < ref["nll"]
    verdict = "learned" if gain(plan.SELECT[base]) >= LEARNED_MARGIN and below_prior else "did not learn"
    shown = f"{plan.SELECT[base]} {gain(plan.SELECT[base]):+.1f} points over the trivial reference"
    if plan.PRIMARY[base] != plan.SELECT[base]:
        shown += f" ({plan.PRIMARY[base]} alone {gain(plan.PRIMARY[base]):+.1f})"
    return f"{verdict} ({shown}; dev NLL {'below' if below_prior else 'not below'} the class prior's)"


def reliability_plot(runs: dict, labels: dict, task: str, path: str) -> str | None:
    """Reliability diagram on dev, seeds pooled: the tuned baseline, the chosen SSE-SE and SSE-Graph, and label
    smoothing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = chosen(runs, task)
    shown = [f for f in ("baseline", "sse-se", "sse-graph", "label-smoothing") if f in picks]
    if task not in labels or not shown:
        return None
    figure, axis = plt.subplots(figsize=(4.5, 4.5))
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    for family in shown:
        records = runs[task][picks[family]].values()
        probs = np.concatenate([softmax(margins_to_logits(r["dev_margins"])) for r in records])
        truth = np.concatenate([np.array(labels[task]["dev"]) for _ in records])
        rows = reliability(probs, truth)
        axis.plot(
            [r["confidence"] for r in rows],
            [r["accuracy"] for r in rows],
            marker="o",
            label=f"{picks[family]} ({len(records)} seeds)",
        )
    axis.set(
        xlabel="confidence",
        ylabel="accuracy",
        title=f"{task.upper()} dev: reliability (15 bins)",
        xlim=(0.45, 1),
        ylim=(0, 1),
    )
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def version_table(runs: dict) -> list[str]:
    """Which code ran which records: commit and transformers version, with the runs of each. A study is one code
    version; more than one is said in bold, above the table, so that it cannot be missed."""
    found: dict[tuple[str, str], list[str]] = {}
    for task, arms in runs.items():
        for arm, seeds in arms.items():
            for seed, record in sorted(seeds.items()):
                key = (record["code"]["commit"][:12], record["code"]["transformers"])
                found.setdefault(key, []).append(f"{task}/{arm}/{seed}")
    if not found:
        return ["Code versions: no records yet."]
    lines = []
    if len(found) > 1:
        lines += [
            f"**These records come from {len(found)} code versions (commit, transformers), not one.** Read the "
            "results page on what that does to the comparisons.",
            "",
        ]
    lines += ["| commit | transformers | runs | which (task/arm/seed) |", "|---|---|---|---|"]
    for (commit, transformers), which in sorted(found.items(), key=lambda item: -len(item[1])):
        shown = ", ".join(which) if len(which) <= 12 else ", ".join(which[:12]) + f", ... ({len(which) - 12} more)"
        lines.append(f"| {commit} | {transformers} | {len(which)} | {shown} |")
    return lines


def curve_table(runs: dict, labels: dict, rows: list[dict]) -> list[str]:
    """The learning curve as a regime map: per training size of its task, the tuned baseline against the trivial
    reference, and the chosen SSE-SE arm against the tuned baseline (mean [95% CI] (Holm p), seeds ahead)."""
    task = plan.base_task(plan.CURVE_REGIMES[0])
    regimes = [r for r in (*plan.CURVE_REGIMES, task) if r in runs]
    keyed = {(r["task"], r["left"], r["right"], r["metric"]): r for r in rows}
    primary_name = plan.PRIMARY[task]
    lines = [
        f"| training rows | tuned lr | tuned baseline | chosen SSE-SE | SSE-SE minus baseline (Holm p): {primary_name} | "
        f"NLL | ECE | seeds ahead ({primary_name}) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for regime in regimes:
        picks = chosen(runs, regime)
        size = next(iter(next(iter(runs[regime].values())).values()))["train_size"]
        base = picks.get("baseline")
        cells = [
            f"{plan.arm_settings(base)['learning_rate']:g}" if base else "pending",
            (learned(runs, labels, regime) or "pending") if base else "pending",
            picks.get("sse-se", "pending"),
        ]
        for metric in ("primary", "nll", "ece"):
            row = keyed.get((regime, "sse-se", "baseline", metric))
            cells.append(difference_cell(row, metric) if row else "not run yet")
        primary = keyed.get((regime, "sse-se", "baseline", "primary"))
        cells.append(f"{primary['ahead']}/{len(primary['seeds'])}" if primary else "")
        lines.append(f"| {size} | " + " | ".join(cells) + " |")
    return lines


def report(records: str, output: str) -> str:
    runs, labels = load(records)
    os.makedirs(os.path.dirname(output), exist_ok=True)
    lines = [
        "# Tuned-baseline study: report",
        "",
        "Generated by `python -m recipes.evidence.study_tuned_report` from the records in `runs/`. Dev figures are "
        "at each run's kept epoch (best on the carved split). TS: temperature scaling fitted on the run's carved "
        "split. Metrics: the task's GLUE metric and accuracy in points; NLL in nats; ECE with 15 equal-width bins; "
        "Brier summed over the two classes.",
        "",
    ]
    lines += [*version_table(runs), ""]
    for task in [regime for regime in REGIMES if regime in runs]:
        size = plan.train_size(task)
        lines += [
            f"## {task.upper()} ({'full training set' if size is None else f'{size} training rows per seed'})",
            "",
        ]
        verdict = learned(runs, labels, task)
        if verdict:
            lines += [f"Tuned baseline: **{verdict}**.", ""]
        lines += [
            "### Per arm (dev)",
            "",
            *arm_table(runs, labels, task),
            "",
            "### Tuning (carved split, seed 1)",
            "",
            *tuning_table(runs, task),
            "",
        ]
        plot = reliability_plot(runs, labels, task, os.path.join(os.path.dirname(output), f"reliability-{task}.png"))
        if plot:
            lines += [f"![reliability {task}]({os.path.basename(plot)})", ""]
    stsb_records = os.path.join(os.path.dirname(os.path.dirname(records)), "stsb", "runs")
    stsb = study_stsb.comparison(stsb_records)
    lines += stsb_report.section(stsb_records)
    rows = comparisons(runs, labels, [stsb] if stsb else [])
    lines += [
        "## Verdicts: does SSE beat each competitor? (dev)",
        "",
        "Each cell: SSE minus the competitor, mean over the paired seeds [95% CI] (Holm-adjusted p, over every "
        "comparison below). Task metric in points; NLL, ECE and Brier lower is better. 'baseline + TS': the tuned "
        "baseline after temperature scaling fitted on its carved split.",
        "",
        *verdict_table(rows),
        "",
        f"## Learning curve: {plan.base_task(plan.CURVE_REGIMES[0]).upper()} by training size (dev)",
        "",
        "Each size is its own regime: its own seeded subsets, learning-rate grid, SSE-SE grid and paired seeds. "
        "Holm p over every comparison of this report.",
        "",
        *curve_table(runs, labels, rows),
        "",
        "## Paired comparisons (dev)",
        "",
        f"{len(rows)} comparisons; Holm adjusts across all of them. A difference is left minus right; 'ahead' counts "
        "seeds where left is better (higher score, lower NLL / ECE / Brier).",
        "",
        "| task | left | right | metric | mean diff | 95% CI | ahead | p | Holm p |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        scale, digits = scale_of("primary" if row["metric"] == "spearman" else row["metric"])
        lines.append(
            f"| {row['task']} | {row['left_arm']} | {row['right_arm']} | {row['metric']} | "
            f"{scale * row['mean']:+.{digits}f} | [{scale * row['low']:+.{digits}f}, {scale * row['high']:+.{digits}f}] | "
            f"{row['ahead']}/{len(row['seeds'])} | {fmt(row['p'])} | {fmt(row['p_holm'])} |"
        )
    with open(output, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return output


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", default=plan.RECORDS_DIR)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(plan.RECORDS_DIR), "report.md"))
    parser.add_argument("--glue_dir", help="write each task's labels.json from the GLUE files first")
    args = parser.parse_args(argv)
    if args.glue_dir:
        write_labels(args.glue_dir, args.records)
    report(args.records, args.output)


if __name__ == "__main__":
    main()
