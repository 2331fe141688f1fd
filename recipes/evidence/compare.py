#!/usr/bin/env python
"""Compare runs (arms x seeds): a markdown table of mean and standard deviation per arm, and a PNG plot.

Run the arms and seeds in this process, then compare:

    python -m recipes.evidence.compare run --output_dir cmp --recipe glue --seeds 1 2 3 \
        --arm "baseline=--sse False" --arm "sse=--sse_p 0.1" -- \
        --model_name_or_path bert-base-uncased --task_name rte --num_train_epochs 3 --logging_steps 20

or collect runs made elsewhere (e.g. with accelerate launch); each run directory holds all_results.json:

    python -m recipes.evidence.compare collect cmp/ other/run-7 --output_dir report

A run's arm is the "arm" key of its all_results.json, else its directory name (or its parent's, for seed-N
directories). Writes comparison.md, comparison.json and comparison.png (eval metric per arm; training loss
over steps from trainer_state.json).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import statistics
import sys
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from recipes.kit import cli
from recipes.kit.run_report import RESULTS_NAME

# Columns of the table besides the eval metrics, in order, when present.
EXTRA_COLUMNS = ("train_loss", "sse_swap_rate", "train_samples_per_second", "wall_time_s")
SKIPPED_EVAL_KEYS = ("runtime", "samples_per_second", "steps_per_second", "samples", "epoch")
DEFAULT_ARMS = ("baseline=--sse False", "sse=--sse_p 0.1")


# ----- collecting ---------------------------------------------------------------------------------
class NoRunsError(cli.RecipeError, FileNotFoundError):
    """A path given to compare that is no run directory and holds none."""


def find_runs(paths: Sequence[str]) -> list[str]:
    """Run directories: each path that holds all_results.json, or every such directory below it."""
    runs = []
    for path in paths:
        if os.path.isfile(os.path.join(path, RESULTS_NAME)):
            runs.append(path)
            continue
        if not os.path.isdir(path):
            raise NoRunsError(
                f"{path!r} is not a directory. Pass run directories (a run's --output_dir, which holds "
                f"{RESULTS_NAME}) or folders above them."
            )
        found = sorted(root for root, _, files in os.walk(path) if RESULTS_NAME in files)
        if not found:
            raise NoRunsError(f"No {RESULTS_NAME} under {path!r}: is it a run's --output_dir?")
        runs.extend(found)
    return runs


def arm_of(run_dir: str, results: dict[str, Any]) -> str:
    if results.get("arm"):
        return str(results["arm"])
    name = os.path.basename(os.path.normpath(run_dir))
    if name.startswith("seed"):
        name = os.path.basename(os.path.dirname(os.path.normpath(run_dir)))
    return name


def training_losses(run_dir: str) -> list[tuple[int, float]]:
    """(step, loss) of every training log in the run's trainer_state.json; empty if it has none."""
    path = os.path.join(run_dir, "trainer_state.json")
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as handle:
        history = json.load(handle).get("log_history", [])
    return [(int(entry["step"]), float(entry["loss"])) for entry in history if "loss" in entry and "step" in entry]


def load_runs(paths: Sequence[str]) -> list[dict[str, Any]]:
    runs = []
    for run_dir in find_runs(paths):
        with open(os.path.join(run_dir, RESULTS_NAME), encoding="utf-8") as handle:
            results = json.load(handle)
        runs.append(
            {"dir": run_dir, "arm": arm_of(run_dir, results), "results": results, "losses": training_losses(run_dir)}
        )
    return runs


# ----- summarising --------------------------------------------------------------------------------
def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def choose_metric(runs: list[dict[str, Any]], metric: str | None) -> str:
    """The metric to compare: the one asked for, else the runs' primary_metric."""
    if metric:
        return metric
    primaries = [run["results"].get("primary_metric") for run in runs if run["results"].get("primary_metric")]
    if primaries:
        return max(set(primaries), key=primaries.count)
    return "eval_loss"


def summarise(runs: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """Per arm: number of runs, seeds, and mean / std / values of every compared column."""
    eval_keys = sorted(
        {
            key
            for run in runs
            for key, value in run["results"].items()
            if (key.startswith("eval_") or key == "perplexity")
            and not key.endswith(SKIPPED_EVAL_KEYS)
            and _number(value) is not None
        }
    )
    columns = [metric] + [k for k in eval_keys if k != metric] + [k for k in EXTRA_COLUMNS if k != metric]
    by_arm: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        by_arm[run["arm"]].append(run)
    summary = {"metric": metric, "columns": columns, "arms": {}}
    for arm, arm_runs in by_arm.items():
        stats = {}
        for column in columns:
            values = [v for v in (_number(run["results"].get(column)) for run in arm_runs) if v is not None]
            if values:
                stats[column] = {
                    "mean": statistics.fmean(values),
                    "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                    "values": values,
                }
        summary["arms"][arm] = {
            "runs": len(arm_runs),
            "seeds": [run["results"].get("seed") for run in arm_runs],
            "dirs": [run["dir"] for run in arm_runs],  # made relative to the output folder when written
            "stats": stats,
        }
    return summary


def markdown_table(summary: dict[str, Any]) -> str:
    columns = [c for c in summary["columns"] if any(c in arm["stats"] for arm in summary["arms"].values())]
    lines = [
        f"Compared metric: `{summary['metric']}`; each cell is mean ± standard deviation over the arm's runs.",
        "",
        "| arm | runs | " + " | ".join(columns) + " |",
        "| --- | --- | " + " | ".join("---" for _ in columns) + " |",
    ]
    for arm, data in summary["arms"].items():
        cells = []
        for column in columns:
            stat = data["stats"].get(column)
            cells.append("n/a" if stat is None else f"{stat['mean']:.4g} ± {stat['std']:.2g}")
        lines.append(f"| {arm} | {data['runs']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(runs: list[dict[str, Any]], summary: dict[str, Any], path: str) -> str:
    """Left: the metric per arm (mean ± std, and each run as a dot). Right: training loss over steps per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = summary["metric"]
    arms = list(summary["arms"])
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, arm in enumerate(arms):
        stat = summary["arms"][arm]["stats"].get(metric)
        colour = colours[i % len(colours)]
        if stat is not None:
            left.errorbar(i, stat["mean"], yerr=stat["std"], fmt="s", color=colour, markersize=9, capsize=8, zorder=3)
            offsets = [0.08 * (k - (len(stat["values"]) - 1) / 2) for k in range(len(stat["values"]))]
            left.scatter([i + 0.25 + o for o in offsets], stat["values"], color=colour, alpha=0.6, zorder=2)
        arm_runs = [run for run in runs if run["arm"] == arm and run["losses"]]
        for j, run in enumerate(arm_runs):
            steps, losses = zip(*run["losses"])
            right.plot(
                steps,
                losses,
                color=colour,
                alpha=0.25 if len(arm_runs) > 1 else 0.9,
                label=None if len(arm_runs) > 1 or j else arm,
            )
        if len(arm_runs) > 1:
            by_step: dict[int, list[float]] = defaultdict(list)
            for run in arm_runs:
                for step, loss in run["losses"]:
                    by_step[step].append(loss)
            steps = sorted(by_step)
            right.plot(
                steps, [statistics.fmean(by_step[s]) for s in steps], color=colour, linewidth=2, label=f"{arm} (mean)"
            )
    left.set_xticks(range(len(arms)), arms, rotation=30, ha="right")
    left.set_xlim(-0.6, len(arms) - 0.4)
    left.set_ylabel(metric)
    left.set_title(f"{metric} per arm (square: mean ± std; dots: runs)")
    right.set_xlabel("step")
    right.set_ylabel("training loss")
    right.set_title("training loss (trainer_state.json)")
    if right.lines:
        right.legend(loc="upper right", fontsize=7, framealpha=0.7)
    else:
        right.text(
            0.5,
            0.5,
            "no training-loss logs\n(set --logging_steps)",
            ha="center",
            va="center",
            transform=right.transAxes,
        )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def compare(paths: Sequence[str], output_dir: str, metric: str | None = None) -> dict[str, Any]:
    """Collect the runs under `paths`, write comparison.md/.json/.png into `output_dir`, return the summary."""
    runs = load_runs(paths)
    summary = summarise(runs, choose_metric(runs, metric))
    os.makedirs(output_dir, exist_ok=True)
    table = markdown_table(summary)
    with open(os.path.join(output_dir, "comparison.md"), "w", encoding="utf-8") as handle:
        handle.write("# SSE comparison\n\n" + table)
    written = {
        **summary,
        "arms": {
            arm: {**entry, "dirs": [os.path.relpath(d, output_dir) for d in entry["dirs"]]}
            for arm, entry in summary["arms"].items()
        },
    }
    with open(os.path.join(output_dir, "comparison.json"), "w", encoding="utf-8") as handle:
        json.dump(written, handle, indent=2)  # run folders relative to it: no machine paths
    plot(runs, summary, os.path.join(output_dir, "comparison.png"))
    print(table)
    print(f"Wrote comparison.md, comparison.json and comparison.png to {output_dir}")
    return summary


# ----- running ------------------------------------------------------------------------------------
def parse_arm(text: str) -> tuple[str, list[str]]:
    name, separator, arguments = text.partition("=")
    if not separator or not name.strip():
        raise ValueError(f"--arm must look like NAME=ARGS, e.g. 'sse=--sse_p 0.1'; got {text!r}.")
    return name.strip(), shlex.split(arguments)


def name_the_arm(run_dir: str, arm: str) -> None:
    """Add `"arm": arm` to the run's all_results.json (the recipe wrote it; this process is its only writer)."""
    path = os.path.join(run_dir, RESULTS_NAME)
    with open(path, encoding="utf-8") as handle:
        results = json.load(handle)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({**results, "arm": arm}, handle, indent=4, sort_keys=True)


def run_arms(
    recipe: str, arms: Sequence[str], seeds: Sequence[int], output_dir: str, recipe_args: Sequence[str]
) -> list[str]:
    """Run every arm with every seed, in this process, into output_dir/ARM/seed-N; return the run directories."""
    if recipe == "glue":
        from recipes import run_glue as module
    elif recipe == "mlm":
        from recipes import run_mlm as module
    else:
        raise ValueError(f"--recipe must be glue or mlm, got {recipe!r}.")
    if "--output_dir" in recipe_args or "--seed" in recipe_args:
        raise ValueError("compare.py sets --output_dir and --seed of every run itself; leave them out after --.")
    run_dirs = []
    for arm_text in arms:
        name, arm_args = parse_arm(arm_text)
        for seed in seeds:
            run_dir = os.path.join(output_dir, name, f"seed-{seed}")
            print(f"\n=== compare: arm {name!r}, seed {seed} -> {run_dir} ===", flush=True)
            module.main([*recipe_args, *arm_args, "--seed", str(seed), "--output_dir", run_dir])
            name_the_arm(run_dir, name)
            run_dirs.append(run_dir)
    return run_dirs


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    recipe_args: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, recipe_args = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run arms x seeds of a recipe, then compare them")
    run.add_argument("--recipe", choices=("glue", "mlm"), default="glue")
    run.add_argument(
        "--arm", action="append", help=f"NAME=RECIPE ARGS, repeatable (default: {' and '.join(DEFAULT_ARMS)})."
    )
    run.add_argument("--seeds", type=int, nargs="+", default=[42])
    run.add_argument("--output_dir", required=True)
    run.add_argument("--metric", help="metric to compare (default: the recipe's primary metric)")
    collect = commands.add_parser("collect", help="compare runs that already exist")
    collect.add_argument("runs", nargs="+", help="run directories, or directories to search for all_results.json")
    collect.add_argument("--output_dir", required=True)
    collect.add_argument("--metric", help="metric to compare (default: the runs' primary metric)")
    args = parser.parse_args(argv)
    if args.command == "run":
        if not recipe_args:
            parser.error("give the recipe's arguments after --, e.g. -- --model_name_or_path DIR --task_name rte")
        run_dirs = run_arms(args.recipe, args.arm or DEFAULT_ARMS, args.seeds, args.output_dir, recipe_args)
        return compare(run_dirs, args.output_dir, args.metric)
    return compare(args.runs, args.output_dir, args.metric)


if __name__ == "__main__":
    cli.run(main)
