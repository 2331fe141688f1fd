"""Report of the tuned-baseline study: trivial references, tuning tables, per-arm means, paired comparisons with
Holm-adjusted p-values, temperature scaling and reliability diagrams, from the committed records alone.

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

from recipes.evidence import tuned_plan as plan
from recipes.evidence.calibration import calibration_metrics, fit_temperature, reliability, softmax
from recipes.evidence.holm import holm, paired_p
from recipes.evidence.paired import mean_interval
from recipes.evidence.tuned_scores import carved_choice

METRICS = ("primary", "nll", "ece", "brier")
HIGHER_IS_BETTER = {"primary": True, "accuracy": True, "nll": False, "ece": False, "brier": False}
# A regime "learned" when its tuned baseline clears the trivial reference by this much on dev (points of the
# task metric; MCC in points too) and its dev NLL is below the class-prior cross-entropy.
LEARNED_MARGIN = 5.0
REGIMES = (*plan.TASKS, *plan.CURVE_REGIMES)


def write_labels(glue_dir: str, records: str) -> None:
    """Per task, `labels.json`: the carved and dev labels (as the study indexes them) and the class counts of
    the training rows, so the report and anyone else can recompute every figure from the records."""
    from recipes.evidence.study_tuned import read_task

    for task in plan.TASKS:
        pool, carved, dev, names = read_task(glue_dir, task)
        counts = [pool[1].count(i) for i in range(len(names))]
        os.makedirs(os.path.join(records, task), exist_ok=True)
        with open(os.path.join(records, task, "labels.json"), "w", encoding="utf-8") as handle:
            json.dump({"names": names, "train_counts": counts, "carved": carved[1], "dev": dev[1]}, handle)


def load(records: str) -> tuple[dict, dict]:
    """(task -> arm -> seed -> record, task -> labels) of every record present."""
    runs: dict[str, dict[str, dict[int, dict]]] = {}
    labels: dict[str, dict] = {}
    for task in REGIMES:
        folder = os.path.join(records, task)
        if not os.path.isdir(folder):
            continue
        label_path = os.path.join(records, plan.base_task(task), "labels.json")  # a curve regime shares its task's
        if os.path.isfile(label_path):
            with open(label_path, encoding="utf-8") as handle:
                labels[task] = json.load(handle)
        for arm in sorted(os.listdir(folder)):
            if not os.path.isdir(os.path.join(folder, arm)):
                continue
            for name in os.listdir(os.path.join(folder, arm)):
                if name.startswith("seed-") and name.endswith(".json"):
                    with open(os.path.join(folder, arm, name), encoding="utf-8") as handle:
                        record = json.load(handle)
                    runs.setdefault(task, {}).setdefault(arm, {})[record["seed"]] = record
    return runs, labels


def margins_to_logits(margins: list[float]) -> np.ndarray:
    return np.stack([np.zeros(len(margins)), np.asarray(margins, dtype=np.float64)], axis=1)


def run_metrics(record: dict, labels: dict, task: str) -> dict[str, float]:
    """A run's dev figures at its kept epoch, and its dev calibration after temperature scaling fitted on its
    carved split."""
    dev = record["epoch_scores"][record["kept_epoch"] - 1]["dev"]
    figures = {
        "primary": dev[plan.PRIMARY[plan.base_task(task)]],
        "accuracy": dev["accuracy"],
        "nll": dev["nll"],
        "ece": dev["ece"],
        "brier": dev["brier"],
        "epoch": record["kept_epoch"],
    }
    if labels:
        temperature = fit_temperature(margins_to_logits(record["carved_margins"]), np.array(labels["carved"]))
        scaled = calibration_metrics(
            softmax(margins_to_logits(record["dev_margins"]), temperature), np.array(labels["dev"])
        )
        figures.update(
            {"temperature": temperature, "ts_nll": scaled["nll"], "ts_ece": scaled["ece"], "ts_brier": scaled["brier"]}
        )
    return figures


def reference(labels: dict, task: str) -> dict[str, float]:
    """The trivial references on dev: always the training majority class (accuracy, F1, MCC 0), and the
    class-prior probabilities (cross-entropy, Brier, ECE)."""
    from recipes.kit.glue_metrics import f1

    counts = np.array(labels["train_counts"], dtype=np.float64)
    prior = counts / counts.sum()
    dev = np.array(labels["dev"])
    majority = int(prior.argmax())
    predictions = np.full(len(dev), majority)
    accuracy = float((dev == majority).mean())
    probs = np.tile(prior, (len(dev), 1))
    scores = {"accuracy": accuracy, "f1": f1(predictions, dev), "matthews_correlation": 0.0}
    scores["acc_and_f1"] = (scores["accuracy"] + scores["f1"]) / 2
    return {
        "primary": scores[plan.PRIMARY[plan.base_task(task)]],
        "majority_class": labels["names"][majority],
        **scores,
        **calibration_metrics(probs, dev),
    }


def chosen(runs: dict, task: str) -> dict[str, str]:
    """family -> its chosen arm (once its whole grid is recorded at the tuning seed): the baseline's learning
    rate first, then each regulariser's setting."""
    picks = {}
    task_runs = runs.get(task, {})

    def pick(arms: list[str]) -> str | None:
        seed_one = {arm: task_runs.get(arm, {}).get(plan.TUNING_SEED) for arm in arms}
        return carved_choice(seed_one, task) if all(seed_one.values()) else None

    base = pick(list(plan.BASELINE_ARMS))
    if base:
        picks["baseline"] = base
        for family, grid in plan.FAMILIES.items():
            best = pick(list(grid))
            if best:
                picks[family] = best
    return picks


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
                    scale, digits = scale_of(metric)
                    cells.append(
                        f"{scale * row['mean']:+.{digits}f} [{scale * row['low']:+.{digits}f}, "
                        f"{scale * row['high']:+.{digits}f}] ({fmt(row['p_holm'], digits=2)})"
                    )
                    if row["p_holm"] < 0.05:
                        ahead = row["mean"] > 0 if HIGHER_IS_BETTER[metric] else row["mean"] < 0
                        (won if ahead else lost).append("task metric" if metric == "primary" else metric.upper())
                verdict = "; ".join(
                    [f"better on {', '.join(won)}"] * bool(won) + [f"worse on {', '.join(lost)}"] * bool(lost)
                )
                lines.append(
                    f"| {task} | {shown[0]['left_arm']} | {shown[0]['right_arm']} | {' | '.join(cells)} | "
                    f"{verdict or 'no difference shown'} |"
                )
    return lines


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
    versions = sorted({r["code"]["commit"] for t in runs.values() for a in t.values() for r in a.values()})
    lines += [f"Code versions in these records: {', '.join(v[:12] for v in versions) or 'none yet'}.", ""]
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
    from recipes.evidence import study_stsb

    stsb_records = os.path.join(os.path.dirname(os.path.dirname(records)), "stsb", "runs")
    stsb = study_stsb.comparison(stsb_records)
    zero_shot = os.path.join(stsb_records, "zero-shot.json")
    if os.path.isfile(zero_shot):
        with open(zero_shot, encoding="utf-8") as handle:
            shot = json.load(handle)["dev"]
        lines += [
            "## STS-B (sentence embeddings, CoSENT, dev Spearman)",
            "",
            f"Zero-shot checkpoint (the trivial reference): Spearman {100 * shot['spearman']:.1f}, Pearson "
            f"{100 * shot['pearson']:.1f}.",
            "",
        ]
        if stsb:
            lines += [
                f"Tuned baseline {stsb['right_arm']}: {100 * stsb['base_mean']:.2f}; chosen SSE {stsb['left_arm']}: "
                f"{100 * stsb['sse_mean']:.2f} (seeds {stsb['seeds'][0]}-{stsb['seeds'][-1]}).",
                "",
            ]
        else:
            lines += ["The fine-tunes are not complete yet (`python -m recipes.evidence.study_stsb run`).", ""]
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
