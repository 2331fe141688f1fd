"""Tuned-baseline study: does SSE beat a tuned baseline, NEFTune and label smoothing on RTE, MRPC and CoLA with
all-MiniLM-L6-v2, on the task metric and on calibration?

    python -m recipes.evidence.study_tuned throughput --glue_dir GLUE_DIR     # s/step per task, the budget's basis
    OMP_NUM_THREADS=1 python -m recipes.evidence.study_tuned run --glue_dir GLUE_DIR   # start 2 such workers
    OMP_NUM_THREADS=1 python -m recipes.evidence.study_tuned curve --glue_dir GLUE_DIR # the learning curve, after
    python -m recipes.evidence.study_tuned_report                             # tables, Holm, reliability plots

GLUE_DIR holds `<task>_train.csv` and `<task>_validation.csv` (as `../shared/data/glue/` does). The design
is in `tuned_plan.py`. Per task, 400 rows carved out of the training file make the *carved split*, on which
every choice is made (learning rate, epoch, each regulariser's setting, temperature); GLUE dev is only
reported. The jobs form a small graph: the baseline's learning-rate grid first, then each regulariser's grid
at the chosen rate, then the chosen settings at every final seed. Workers share one queue (claims under
`outputs/study-tuned/claims`, freed when a worker dies) and skip every job whose record exists, so a stopped
study resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Iterator

import numpy as np

from recipes.evidence import job_queue
from recipes.evidence import tuned_plan as plan
from recipes.evidence.checkpoint import checkpoint_dir
from recipes.evidence.code_version import check_unchanged, code_version
from recipes.evidence.tuned_scores import carved_choice, epoch_scores, select_epoch

Split = tuple[list[tuple[str, ...]], list[int]]


def read_glue_files(glue_dir: str, task: str) -> dict:
    """`<task>_train.csv` and `<task>_validation.csv` as data frames (text kept as text); a clear error naming
    the missing file."""
    import pandas as pd

    frames = {}
    for part in ("train", "validation"):
        path = os.path.join(glue_dir, f"{task}_{part}.csv")
        if not os.path.isfile(path):
            raise SystemExit(
                f"--glue_dir: {path} does not exist; it needs {task}_train.csv and {task}_validation.csv."
            )
        frames[part] = pd.read_csv(path, keep_default_na=False)
    return frames


def read_task(glue_dir: str, task: str) -> tuple[Split, Split, Split, list[str]]:
    """(pool, carved, dev, label names): the training file split by a seeded permutation into the carved split
    (CARVED_SIZE rows) and the pool the training subsets are drawn from; GLUE dev unchanged."""
    frames = read_glue_files(glue_dir, task)
    names = sorted({str(v) for v in frames["train"]["label"]})
    index = {name: i for i, name in enumerate(names)}

    def rows(frame) -> Split:
        texts = [tuple(str(frame[c].iloc[i]) for c in plan.TEXT_COLUMNS[task]) for i in range(len(frame))]
        return texts, [index[str(v)] for v in frame["label"]]

    train = frames["train"].iloc[np.random.default_rng(plan.CARVE_SEED).permutation(len(frames["train"]))]
    carved, pool = train[: plan.CARVED_SIZE], train[plan.CARVED_SIZE :]
    return rows(pool), rows(carved), rows(frames["validation"]), names


def training_subset(pool: Split, task: str, seed: int) -> Split:
    """The seed's own training rows: a seeded draw of the regime's training size from the pool (all of it, in
    the seed's order, when None)."""
    size = plan.train_size(task)
    order = np.random.default_rng(1000 + seed).permutation(len(pool[1]))
    if size is not None:
        order = order[:size]
    return [pool[0][i] for i in order], [pool[1][i] for i in order]


def max_length(pool: Split, tokenizer) -> tuple[int, float]:
    """The task's max sequence length (a multiple of 8 at or above the LENGTH_QUANTILE of the pool's token
    lengths) and the share of pool rows it truncates."""
    lengths = np.array([len(ids) for ids in tokenizer(*zip(*pool[0]))["input_ids"]])
    length = int(8 * np.ceil(np.quantile(lengths, plan.LENGTH_QUANTILE) / 8))
    return length, float((lengths > length).mean())


# ----- records ----------------------------------------------------------------------------------------------


def record_path(records: str, task: str, arm: str, seed: int) -> str:
    return os.path.join(records, task, arm, f"seed-{seed}.json")


def load_record(records: str, task: str, arm: str, seed: int) -> dict | None:
    path = record_path(records, task, arm, seed)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def compact_margins(logits: list[list[float]]) -> list[float]:
    """Two-class logits as their margin (logit 1 - logit 0), 4 decimals: softmax and temperature scaling need
    nothing else, and it halves the record."""
    return [round(row[1] - row[0], 4) for row in logits]


# ----- the job graph ----------------------------------------------------------------------------------------


def chosen_arm(records: str, task: str, arms: list[str]) -> str | None:
    """The arm with the best carved-split score at the tuning seed, once every arm of the grid is recorded."""
    results = {arm: load_record(records, task, arm, plan.TUNING_SEED) for arm in arms}
    if any(result is None for result in results.values()):
        return None
    return carved_choice(results, task)


def jobs(
    records: str, regimes: tuple[str, ...] | None = None, families: tuple[str, ...] | None = None
) -> Iterator[tuple[str, str, int, float] | None]:
    """The study's jobs (regime, arm, seed, learning rate) in priority order; None stands for jobs that wait on
    a choice not yet made. Priority: the baseline (tuned) and its seeds, then SSE-SE, then label smoothing,
    NEFTune and SSE-Graph, each grid followed by its chosen setting's seeds (regulariser grids only on
    `plan.REGULARISED_TASKS`). Default: the main study (every task on its full training set, every family)."""
    regimes = regimes or plan.TASKS
    grids = [list(grid) for family, grid in plan.FAMILIES.items() if families is None or family in families]
    lr_arms = list(plan.BASELINE_ARMS)
    chosen_lr: dict[str, tuple[str, float] | None] = {}
    for task in regimes:
        for arm in lr_arms:
            yield task, arm, plan.TUNING_SEED, plan.BASELINE_ARMS[arm]["learning_rate"]
        base = chosen_arm(records, task, lr_arms)
        chosen_lr[task] = (base, plan.BASELINE_ARMS[base]["learning_rate"]) if base else None
    for task in regimes:
        if chosen_lr[task] is None:
            yield None
            continue
        base, lr = chosen_lr[task]
        for seed in plan.FINAL_SEEDS:
            yield task, base, seed, lr
    regimes = tuple(task for task in regimes if plan.regularised(task))
    for grid in grids:
        for task in regimes:
            if chosen_lr[task] is None:
                yield None
                continue
            lr = chosen_lr[task][1]
            for arm in grid:
                yield task, arm, plan.TUNING_SEED, lr
        for task in regimes:
            best = chosen_arm(records, task, grid) if chosen_lr[task] else None
            if best is None:
                yield None
                continue
            for seed in plan.FINAL_SEEDS:
                yield task, best, seed, chosen_lr[task][1]


def run_job(
    glue_dir: str, records: str, study_dir: str, job: tuple[str, str, int, float], model_dir: str | None = None
) -> dict:
    """Fine-tune one (task, arm, seed) at its learning rate and write its compact record (model: the study's
    checkpoint unless `model_dir` names another)."""
    from transformers import AutoTokenizer

    from recipes.evidence.classifier_run import finetune

    task, arm, seed, lr = job
    settings = plan.arm_settings(arm)
    settings.pop("learning_rate", None)
    pool, carved, dev, names = read_task(glue_dir, plan.base_task(task))
    model_dir = model_dir or checkpoint_dir()
    length, truncated = max_length(pool, AutoTokenizer.from_pretrained(model_dir))
    train = training_subset(pool, task, seed)
    run_dir = os.path.join(study_dir, "runs", f"{task}-{arm}-seed-{seed}")
    print(
        f"\n=== tuned study: {task} {arm} seed {seed} lr {lr:g} ({len(train[1])} rows, max length {length}) ===",
        flush=True,
    )
    started = time.time()
    out = finetune(
        model_dir,
        train,
        {"carved": carved, "dev": dev},
        num_labels=len(names),
        max_length=length,
        seed=seed,
        learning_rate=lr,
        epochs=plan.EPOCHS,
        batch_size=plan.BATCH_SIZE,
        warmup_ratio=plan.WARMUP_RATIO,
        weight_decay=plan.WEIGHT_DECAY,
        output_dir=run_dir,
        **settings,
    )
    shutil.rmtree(run_dir, ignore_errors=True)
    scores = epoch_scores(out["epoch_logits"], {"carved": carved[1], "dev": dev[1]}, task)
    epoch = select_epoch(scores, task)
    record = {
        "study": "tuned",
        "task": task,
        "arm": arm,
        "family": plan.family_of(arm),
        "seed": seed,
        "learning_rate": lr,
        "settings": settings,
        "train_size": len(train[1]),
        "max_length": length,
        "truncated_share": truncated,
        "epochs": plan.EPOCHS,
        "batch_size": plan.BATCH_SIZE,
        "kept_epoch": epoch + 1,
        "epoch_scores": scores,
        "labels": names,
        "carved_margins": compact_margins(out["epoch_logits"][epoch]["carved"]),
        "dev_margins": compact_margins(out["epoch_logits"][epoch]["dev"]),
        "train_loss_log": out["loss_log"],
        "train_runtime": out["train_runtime"],
        "steps": out["steps"],
        "wall_seconds": round(time.time() - started, 1),
        "sse_stats": out["sse_stats"],
        "code": code_version(),
    }
    path = record_path(records, task, arm, seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(record, handle, separators=(",", ":"))
    os.replace(path + ".tmp", path)
    print(
        f"recorded {task} {arm} seed {seed}: kept epoch {epoch + 1}, carved {scores[epoch]['carved']}, "
        f"{record['wall_seconds']} s",
        flush=True,
    )
    return record


def work(
    glue_dir: str,
    records: str,
    study_dir: str,
    poll_seconds: float = 60.0,
    model_dir: str | None = None,
    regimes: tuple[str, ...] | None = None,
    families: tuple[str, ...] | None = None,
) -> None:
    """A worker over the study's job graph (see `job_queue.work`)."""
    job_queue.work(
        lambda: jobs(records, regimes, families),
        lambda job: load_record(records, *job[:3]) is not None,
        lambda job: run_job(glue_dir, records, study_dir, job, model_dir),
        study_dir,
        poll_seconds,
        before_each=check_unchanged,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("throughput", "run", "curve"))
    parser.add_argument("--glue_dir", required=True, help="folder with <task>_train.csv and <task>_validation.csv")
    parser.add_argument("--records", default=plan.RECORDS_DIR, help="where the compact run records go (committed)")
    parser.add_argument("--study_dir", default=plan.STUDY_DIR, help="scratch folder for claims and run folders")
    parser.add_argument("--steps", type=int, default=12, help="throughput: timed training steps per task")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.step == "throughput":
        from recipes.evidence.tuned_throughput import measure

        measure(args.glue_dir, args.steps)
        return
    if args.step == "curve":
        work(args.glue_dir, args.records, args.study_dir, regimes=plan.CURVE_REGIMES, families=plan.CURVE_FAMILIES)
    else:
        work(args.glue_dir, args.records, args.study_dir)


if __name__ == "__main__":
    main()
