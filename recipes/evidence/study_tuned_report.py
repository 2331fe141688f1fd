"""Report of the tuned-baseline study: trivial references, tuning tables, per-arm means, the "learned" gates as
they changed, fit and over-fitting per arm, paired comparisons (the primary family Holm-adjusted, the rest
exploratory), what 5 seeds can detect, temperature scaling and reliability diagrams, from the committed records
alone.

    python -m recipes.evidence.study_tuned_report --glue_dir ../shared/data/glue   # also writes labels.json

`--glue_dir` is needed once, to write each task's `labels.json` (carved and dev labels, training class counts)
beside its records; afterwards the report needs nothing but `docs/study/tuned/runs/`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics

import numpy as np

from recipes.evidence import stsb_report, study_stsb
from recipes.evidence import tuned_plan as plan
from recipes.evidence.calibration import reliability, softmax
from recipes.evidence.holm_power import first_step_t, power
from recipes.evidence.paired import mean_interval
from recipes.evidence.tuned_comparisons import (
    EXPLORATORY,
    SSE_FAMILIES,
    comparisons,
    difference_cell,
    fmt,
    scale_of,
    verdict_table,
)
from recipes.evidence.tuned_records import (
    REGIMES,
    chosen,
    load,
    margins_to_logits,
    reference,
    run_metrics,
    write_labels,
)

# A regime "learned" when its tuned baseline clears the trivial reference by this much on dev and its dev NLL is
# below the class-prior cross-entropy. Fixed before the runs on the task metric (MRPC: F1); read on the choice
# metric (MRPC: mean of accuracy and F1) since commit 8148280, after MRPC's baseline seeds were recorded (gate_table
# shows every rule the page has used).
LEARNED_MARGIN = 5.0
# The Holm families the page used before the primary family was named (issue 24), each defined after the fact.
EARLIER_FAMILY_SIZES = (8, 72, 85)
# The true gain, in points of the task metric, whose power the report states.
POWER_GAIN = 1.0


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


def dev_gains(runs: dict, labels: dict, task: str, metric: str) -> list[float]:
    """The tuned baseline's dev score minus the trivial reference's, per final seed, in points."""
    records = list(runs[task][chosen(runs, task)["baseline"]].values())
    ref = reference(labels[task], task)
    return [100 * (r["epoch_scores"][r["kept_epoch"] - 1]["dev"][metric] - ref[metric]) for r in records]


def below_prior(runs: dict, labels: dict, task: str) -> bool:
    """Whether the tuned baseline's mean dev NLL is below the class-prior cross-entropy."""
    records = runs[task][chosen(runs, task)["baseline"]].values()
    nll = statistics.fmean(run_metrics(r, labels[task], task)["nll"] for r in records)
    return nll < reference(labels[task], task)["nll"]


def learned(runs: dict, labels: dict, task: str) -> str | None:
    """'learned' or 'did not learn' for the tuned baseline against the trivial reference (None: not yet), on the
    score every choice is made on (GLUE's: MRPC's mean of accuracy and F1) and dev NLL below the class prior's.
    The task metric's own margin is shown beside it (MRPC's F1 alone: always answering 'paraphrase' scores 81)."""
    if "baseline" not in chosen(runs, task) or task not in labels:
        return None
    base = plan.base_task(task)

    def gain(metric: str) -> float:
        return statistics.fmean(dev_gains(runs, labels, task, metric))

    fits = below_prior(runs, labels, task)
    verdict = "learned" if gain(plan.SELECT[base]) >= LEARNED_MARGIN and fits else "did not learn"
    shown = f"{plan.SELECT[base]} {gain(plan.SELECT[base]):+.1f} points over the trivial reference"
    if plan.PRIMARY[base] != plan.SELECT[base]:
        shown += f" ({plan.PRIMARY[base]} alone {gain(plan.PRIMARY[base]):+.1f})"
    return f"{verdict} ({shown}; dev NLL {'below' if fits else 'not below'} the class prior's)"


def gate_table(runs: dict, labels: dict) -> list[str]:
    """Every "learned" rule the page has used, on every regime: the one fixed before the runs (task metric >= 5
    points over the trivial reference, dev NLL below the prior), the one used since commit 8148280 (the choice
    metric instead), and the STS-B study's (the choice metric's gain has a 95% CI above 0, written after two of its
    tuning runs were seen)."""
    lines = [
        f"| regime | task metric gain (mean) | choice metric gain [95% CI] | dev NLL below the prior | "
        f"before the runs: task metric >= {LEARNED_MARGIN:g} | used (8148280): choice metric >= {LEARNED_MARGIN:g} | "
        "STS-B's rule: CI above 0 |",
        "|---|---|---|---|---|---|---|",
    ]
    for task in [r for r in REGIMES if r in runs and r in labels and "baseline" in chosen(runs, r)]:
        base = plan.base_task(task)
        task_gain = statistics.fmean(dev_gains(runs, labels, task, plan.PRIMARY[base]))
        mean, low, high = mean_interval(dev_gains(runs, labels, task, plan.SELECT[base]))
        fits = below_prior(runs, labels, task)

        def label(passed: bool) -> str:
            return "learned" if passed else "did not learn"

        spread = "" if math.isnan(low) or low == high else f" [{low:+.1f}, {high:+.1f}]"
        lines.append(
            f"| {task} | {plan.PRIMARY[base]} {task_gain:+.1f} | {plan.SELECT[base]} {mean:+.1f}{spread} | "
            f"{'yes' if fits else 'no'} | {label(task_gain >= LEARNED_MARGIN and fits)} | "
            f"{label(mean >= LEARNED_MARGIN and fits)} | {label(low > 0)} |"
        )
    return lines


def last_epoch_loss(record: dict) -> float:
    """The mean of the training losses logged in a run's last epoch (nan when none was logged there; older records
    keep the log as JSON text)."""
    log = record["train_loss_log"]
    log = json.loads(log) if isinstance(log, str) else log
    start = record["steps"] * (record["epochs"] - 1) / record["epochs"]
    losses = [loss for step, loss in log if step > start]
    return statistics.fmean(losses) if losses else math.nan


def fit_table(runs: dict) -> list[str]:
    """Per regime and chosen arm: how far training fitted (last epoch's training loss) and whether it over-fitted
    (seeds whose carved-split NLL at the last epoch is above its minimum over the epochs), with the kept epochs."""
    lines = [
        "| regime | arm | last-epoch training loss (mean over seeds) | carved NLL rose by the last epoch (seeds) | "
        "kept the last epoch (seeds) |",
        "|---|---|---|---|---|",
    ]
    for task in [r for r in REGIMES if r in runs]:
        for family, arm in chosen(runs, task).items():
            records = [runs[task][arm][s] for s in plan.FINAL_SEEDS if s in runs[task][arm]]
            if len(records) < 2:
                continue
            rose = sum(
                r["epoch_scores"][-1]["carved"]["nll"] > min(e["carved"]["nll"] for e in r["epoch_scores"])
                for r in records
            )
            last = sum(r["kept_epoch"] == len(r["epoch_scores"]) for r in records)
            losses = [loss for loss in map(last_epoch_loss, records) if not math.isnan(loss)]
            shown = f"{statistics.fmean(losses):.2f}" if losses else "not logged"
            if 0 < len(losses) < len(records):
                shown += f" ({len(losses)} seeds logged)"
            lines.append(f"| {task} | {family}: {arm} | {shown} | {rose}/{len(records)} | {last}/{len(records)} |")
    return lines


def power_table(rows: list[dict]) -> list[str]:
    """What 5 seeds could detect: per family size (unadjusted, the primary family, the earlier families), the |t|
    Holm's first step needs and the power for a true gain of POWER_GAIN points on each task's metric, given the
    spread of the paired differences each SSE arm showed against the tuned baseline."""
    primary = [r for r in rows if r["family"] == "primary" and r["metric"] == "primary"]
    if not primary:
        return []
    seeds = len(primary[0]["seeds"])
    sizes = {"unadjusted": 1, "the primary family": sum(r["family"] == "primary" for r in rows)}
    sizes.update({f"earlier family of {m}": m for m in EARLIER_FAMILY_SIZES})
    spreads = {}
    for row in primary:
        half = (row["high"] - row["low"]) / 2  # the t interval's half-width gives back the differences' sd
        spreads[f"{row['task']} {row['left']}"] = 100 * half * math.sqrt(seeds) / first_step_t(1, seeds)
    lines = [
        f"| Holm family ({seeds} seeds) | comparisons | first step needs abs(t) > | "
        + " | ".join(f"power for +{POWER_GAIN:g}: {name} (sd {sd:.2f})" for name, sd in spreads.items())
        + " |",
        "|---|---|---|" + "---|" * len(spreads),
    ]
    for name, size in sizes.items():
        # differences without spread (an arm identical to the baseline on every seed) have no t, hence no power
        cells = [f"{power(POWER_GAIN, sd, size, seeds):.3f}" if sd > 0 else "n/a" for sd in spreads.values()]
        lines.append(f"| {name} | {size} | {first_step_t(size, seeds):.2f} | " + " | ".join(cells) + " |")
    return lines


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
    reference, and the chosen SSE-SE arm against the tuned baseline (mean [95% CI] (Holm p within the primary
    family for the full set; unadjusted p for the smaller sets, which are exploratory), seeds ahead)."""
    task = plan.base_task(plan.CURVE_REGIMES[0])
    regimes = [r for r in (*plan.CURVE_REGIMES, task) if r in runs]
    keyed = {(r["task"], r["left"], r["right"], r["metric"]): r for r in rows}
    primary_name = plan.PRIMARY[task]
    lines = [
        f"| training rows | tuned lr | tuned baseline | chosen SSE-SE | SSE-SE minus baseline: {primary_name} | "
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
    rows = comparisons(runs, labels, [{**stsb, "family": "stsb"}] if stsb else [])
    primary = [r for r in rows if r["family"] == "primary"]
    exploratory = [r for r in rows if r["family"] == EXPLORATORY and r["left"].split(" ")[0] in SSE_FAMILIES]
    lines += [
        "## Verdicts: does SSE beat the tuned baseline? (dev; the primary family)",
        "",
        f"The primary family: each SSE arm against the tuned baseline, per task and metric ({len(primary)} "
        "comparisons); Holm adjusts within it and only it. It was named after the runs (the page had adjusted over "
        f"{', then '.join(map(str, EARLIER_FAMILY_SIZES))} comparisons, each defined after the fact). Each cell: SSE "
        "minus the tuned baseline, mean over the paired seeds [95% CI] (Holm p). Task metric in points; NLL, ECE and "
        "Brier lower is better. STS-B's one comparison is its own study's family of one (section STS-B).",
        "",
        *verdict_table(primary),
        "",
        "What 5 paired seeds could detect (the spread of each SSE arm's paired differences from the tuned baseline "
        "on the task metric, as recorded; power at Holm's first step, the most any step gets):",
        "",
        *power_table(rows),
        "",
        "## Exploratory comparisons (dev; unadjusted p, no claim)",
        "",
        "SSE against label smoothing and NEFTune; SSE and the tuned baseline both after temperature scaling fitted "
        "on each run's carved split ('+ TS'); the learning curve's smaller sets. Each cell: SSE minus the "
        "competitor, mean over the paired seeds [95% CI] (unadjusted p).",
        "",
        *verdict_table(exploratory),
        "",
        "## Fit and over-fitting (the training loss of the last epoch; the carved split's NLL by epoch)",
        "",
        "Label smoothing's training loss is measured against smoothed targets, so it is not comparable with the "
        "others'.",
        "",
        *fit_table(runs),
        "",
        "## The 'learned' gate, under every rule the page has used (dev, the tuned baseline)",
        "",
        *gate_table(runs, labels),
        "",
        f"## Learning curve: {plan.base_task(plan.CURVE_REGIMES[0]).upper()} by training size (dev)",
        "",
        "Each size is its own regime: its own seeded subsets, learning-rate grid, SSE-SE grid and paired seeds. "
        "The full set's row is in the primary family (Holm p); the smaller sets' are exploratory (unadjusted p).",
        "",
        *curve_table(runs, labels, rows),
        "",
        "## Paired comparisons (dev)",
        "",
        f"{len(rows)} comparisons: {len(primary)} in the primary family (Holm within it), STS-B's one in its own, "
        "the rest exploratory (unadjusted p only). A difference is left minus right; 'ahead' counts seeds where "
        "left is better (higher score, lower NLL / ECE / Brier).",
        "",
        "| task | left | right | metric | mean diff | 95% CI | ahead | p | family | Holm p within the family |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        scale, digits = scale_of("primary" if row["metric"] == "spearman" else row["metric"])
        lines.append(
            f"| {row['task']} | {row['left_arm']} | {row['right_arm']} | {row['metric']} | "
            f"{scale * row['mean']:+.{digits}f} | [{scale * row['low']:+.{digits}f}, {scale * row['high']:+.{digits}f}] | "
            f"{row['ahead']}/{len(row['seeds'])} | {fmt(row['p'])} | {row['family']} | {fmt(row['p_holm'])} |"
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
