"""Over-fitting study: does SSE-SE beat an early-stopped, regularisation-tuned baseline where 250 IMDB reviews
over-fit all-MiniLM-L6-v2? The design is in `overfit_plan.py`, the pre-registered plan in
docs/study/overfit/README.md, the rules in `overfit_rules.py`.

    python -m recipes.evidence.study_overfit pilot --data ../shared/data/imdb-2000.csv   # seconds per run: the budget
    OMP_NUM_THREADS=1 python -m recipes.evidence.study_overfit run --data ../shared/data/imdb-2000.csv  # 2 workers
    python -m recipes.evidence.overfit_report --data ../shared/data/imdb-2000.csv        # gates, verdict, tables

The jobs form a graph: the baseline's grid on the tuning seeds; at its chosen dropout and weight decay, SSE-SE's
grid; the baseline's chosen setting on the 20 final seeds; then, only if the validity gates pass on those, SSE-SE's
chosen setting on the same 20 seeds. Workers share one queue and skip every job whose record exists, so a stopped
study resumes where it stopped; run them from a frozen worktree (see `code_version.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Iterator

import numpy as np

from recipes.evidence import job_queue, overfit_rules
from recipes.evidence import overfit_plan as plan
from recipes.evidence.checkpoint import checkpoint_dir
from recipes.evidence.code_version import check_unchanged, code_version
from recipes.evidence.study_tuned import compact_margins
from recipes.evidence.tuned_scores import split_scores

Split = tuple[list[tuple[str, ...]], list[int]]
Job = tuple[str, str, int]  # ("imdb-250", arm, seed)
REGIME = "imdb-250"


def read_splits(data: str) -> dict[str, Split]:
    """pool (700), choice (200 dev + 300 held-out training rows) and test (800) of imdb-2000.csv: a clear error
    naming the file when it is missing or has the wrong shape."""
    import pandas as pd

    if not os.path.isfile(data):
        raise SystemExit(f"--data: {data} does not exist; pass imdb-2000.csv (columns text, label).")
    frame = pd.read_csv(data, keep_default_na=False)
    expected = plan.TEST_ROWS + plan.DEV_ROWS + plan.CHOICE_EXTRA_ROWS + plan.POOL_ROWS
    if {"text", "label"} - set(frame.columns) or len(frame) != expected:
        raise SystemExit(f"--data: {data} needs columns text and label and {expected} rows.")
    frame = frame.iloc[np.random.default_rng(plan.PERMUTATION_SEED).permutation(len(frame))]

    def rows(part) -> Split:
        return [(str(t),) for t in part["text"]], [int(v) for v in part["label"]]

    test_end = plan.TEST_ROWS
    dev_end = test_end + plan.DEV_ROWS
    pool_end = dev_end + plan.POOL_ROWS
    test, dev, pool = rows(frame[:test_end]), rows(frame[test_end:dev_end]), rows(frame[dev_end:pool_end])
    extra = rows(frame[pool_end:])
    choice = (dev[0] + extra[0], dev[1] + extra[1])
    return {"pool": pool, "choice": choice, "test": test}


def training_subset(pool: Split, seed: int) -> Split:
    """The seed's own 250 training reviews, in the seed's order: both arms of a seed train on the same ones."""
    order = np.random.default_rng(1000 + seed).permutation(len(pool[1]))[: plan.TRAIN_SIZE]
    return [pool[0][i] for i in order], [pool[1][i] for i in order]


def truncated_share(split: Split, tokenizer) -> float:
    lengths = np.array([len(ids) for ids in tokenizer([t[0] for t in split[0]])["input_ids"]])
    return float((lengths > plan.MAX_LENGTH).mean())


# ----- records ----------------------------------------------------------------------------------------------


def record_path(records: str, arm: str, seed: int) -> str:
    return os.path.join(records, arm, f"seed-{seed}.json")


def load_record(records: str, arm: str, seed: int) -> dict | None:
    path = record_path(records, arm, seed)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def all_records(records: str) -> list[dict]:
    """Every record in the ledger folder `records`."""
    return [
        load_record(records, arm, int(name[len("seed-") : -len(".json")]))
        for arm in sorted(os.listdir(records))
        for name in sorted(os.listdir(os.path.join(records, arm)))
        if name.startswith("seed-") and name.endswith(".json")
    ]


def arm_settings(arm: str) -> dict:
    """An arm's settings from its name (every name encodes them)."""
    settings = plan.BASELINE_GRID.get(arm)
    if settings is None:
        for dropout, weight_decay in plan.REGULARISATION:
            settings = plan.sse_grid(dropout, weight_decay).get(arm) or settings
    if settings is None:
        raise KeyError(f"unknown arm {arm!r}")
    return dict(settings)


# ----- the job graph ----------------------------------------------------------------------------------------


def chosen(records: str, grid: dict[str, dict]) -> str | None:
    """The grid's chosen arm, once every setting is recorded on every tuning seed."""
    found = {arm: [load_record(records, arm, seed) for seed in plan.TUNING_SEEDS] for arm in grid}
    if any(record is None for runs in found.values() for record in runs):
        return None
    return overfit_rules.grid_choice(found)


def gates(records: str, baseline: str) -> dict | None:
    """The validity gates, once the baseline's every final seed is recorded."""
    runs = [load_record(records, baseline, seed) for seed in plan.FINAL_SEEDS]
    return None if any(run is None for run in runs) else overfit_rules.gates(runs)


def jobs(records: str) -> Iterator[Job | None]:
    """The study's jobs in priority order; None stands for jobs waiting on a choice or the gates. When the gates
    fail, SSE-SE's final seeds never become jobs: the study is void and a new plan version is needed."""
    for arm in plan.BASELINE_GRID:
        for seed in plan.TUNING_SEEDS:
            yield REGIME, arm, seed
    baseline = chosen(records, plan.BASELINE_GRID)
    if baseline is None:
        yield None
        return
    settings = plan.BASELINE_GRID[baseline]
    grid = plan.sse_grid(settings["dropout"], settings["weight_decay"])
    for arm in grid:
        for seed in plan.TUNING_SEEDS:
            yield REGIME, arm, seed
    for seed in plan.FINAL_SEEDS:
        yield REGIME, baseline, seed
    sse = chosen(records, grid)
    verdict = gates(records, baseline)
    if sse is None or verdict is None:
        yield None
        return
    if not verdict["valid"]:
        failed = {key: verdict[key] for key in ("choice_accuracy", "choice_nll", "final_train_loss", "overfit_seeds")}
        print(f"the validity gates failed ({failed}): the study is void; SSE-SE's final seeds do not run", flush=True)
        return
    for seed in plan.FINAL_SEEDS:
        yield REGIME, sse, seed


def kept_epoch_index(epoch_logits: list[dict], choice_labels: list[int]) -> int:
    scores = [split_scores(np.asarray(e["choice"]), np.asarray(choice_labels)) for e in epoch_logits]
    return overfit_rules.select_epoch(scores)


def run_job(
    data: str, records: str, study_dir: str, job: Job, model_dir: str | None = None, epochs: int | None = None
) -> dict:
    """Fine-tune one (arm, seed) and write its compact record (`epochs` shortens the run: the pilot only)."""
    from transformers import AutoTokenizer

    from recipes.evidence.classifier_run import finetune

    _, arm, seed = job
    settings = arm_settings(arm)
    splits = read_splits(data)
    model_dir = model_dir or checkpoint_dir()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    train = training_subset(splits["pool"], seed)
    run_dir = os.path.join(study_dir, "runs", f"{arm}-seed-{seed}")
    epochs = epochs or plan.EPOCHS
    print(f"\n=== over-fitting study: {arm} seed {seed} ({len(train[1])} rows, {epochs} epochs) ===", flush=True)
    started = time.time()
    choice_labels = splits["choice"][1]
    out = finetune(
        model_dir,
        train,
        {"choice": splits["choice"]},
        num_labels=2,
        max_length=plan.MAX_LENGTH,
        seed=seed,
        learning_rate=settings["learning_rate"],
        epochs=epochs,
        batch_size=plan.BATCH_SIZE,
        warmup_ratio=plan.WARMUP_RATIO,
        weight_decay=settings["weight_decay"],
        output_dir=run_dir,
        sse_p=settings["sse_p"],
        config_overrides={
            "hidden_dropout_prob": settings["dropout"],
            "attention_probs_dropout_prob": settings["dropout"],
        },
        training_overrides={"logging_strategy": "epoch"},
        kept_splits={"test": splits["test"]},
        keep=lambda epoch_logits: kept_epoch_index(epoch_logits, choice_labels),
    )
    shutil.rmtree(run_dir, ignore_errors=True)
    choice_scores = [split_scores(np.asarray(e["choice"]), np.asarray(choice_labels)) for e in out["epoch_logits"]]
    epoch = overfit_rules.select_epoch(choice_scores)
    record = {
        "study": "overfit",
        "plan_version": plan.PLAN_VERSION,
        "arm": arm,
        "seed": seed,
        "settings": settings,
        "train_size": len(train[1]),
        "max_length": plan.MAX_LENGTH,
        "truncated_share": {
            "train": truncated_share(train, tokenizer),
            "choice": truncated_share(splits["choice"], tokenizer),
            "test": truncated_share(splits["test"], tokenizer),
        },
        "epochs": epochs,
        "batch_size": plan.BATCH_SIZE,
        "kept_epoch": epoch + 1,
        "choice_scores": choice_scores,
        "epoch_train_loss": [loss for _, loss in out["loss_log"]],
        "choice_margins": compact_margins(out["epoch_logits"][epoch]["choice"]),
        "test_margins": compact_margins(out["kept_logits"]["test"]),
        "test_scores": split_scores(np.asarray(out["kept_logits"]["test"]), np.asarray(splits["test"][1])),
        "train_runtime": out["train_runtime"],
        "steps": out["steps"],
        "wall_seconds": round(time.time() - started, 1),
        "sse_stats": out["sse_stats"],
        "code": code_version(),
    }
    path = record_path(records, arm, seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(record, handle, separators=(",", ":"))
    os.replace(path + ".tmp", path)
    kept = choice_scores[epoch]
    print(
        f"recorded {arm} seed {seed}: kept epoch {epoch + 1}, choice accuracy {kept['accuracy']:.3f} nll "
        f"{kept['nll']:.3f}, last-epoch training loss {record['epoch_train_loss'][-1]:.3f}, "
        f"{record['wall_seconds']} s",
        flush=True,
    )
    return record


def work(data: str, records: str, study_dir: str, poll_seconds: float = 60.0, model_dir: str | None = None) -> None:
    """A worker over the study's job graph (see `job_queue.work`)."""
    job_queue.work(
        lambda: jobs(records),
        lambda job: load_record(records, job[1], job[2]) is not None,
        lambda job: run_job(data, records, study_dir, job, model_dir),
        study_dir,
        poll_seconds,
        before_each=check_unchanged,
    )


def pilot(data: str, study_dir: str, epochs: int) -> float:
    """Time a shortened run of the baseline's first setting on seed 0 (no study seed) and print the estimate of
    the study's core-hours; its record goes to the scratch folder, never to the ledger."""
    records = os.path.join(study_dir, "pilot")
    arm = next(iter(plan.BASELINE_GRID))
    record = run_job(data, records, study_dir, (REGIME, arm, 0), epochs=epochs)
    per_epoch = record["wall_seconds"] / epochs
    runs = 2 * len(plan.BASELINE_GRID) + 2 * len(plan.LEARNING_RATES) * len(plan.SSE_P) + 2 * len(plan.FINAL_SEEDS)
    hours = runs * per_epoch * plan.EPOCHS / 3600
    print(
        f"pilot: {epochs} epochs in {record['wall_seconds']} s ({per_epoch:.0f} s per epoch, one thread); a "
        f"{plan.EPOCHS}-epoch run ~{per_epoch * plan.EPOCHS / 3600:.2f} core-hours; {runs} runs ~{hours:.1f} core-hours"
    )
    return hours


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("pilot", "run"))
    parser.add_argument("--data", required=True, help="imdb-2000.csv (columns text, label)")
    parser.add_argument("--records", default=plan.RECORDS_DIR, help="where the compact run records go (committed)")
    parser.add_argument("--study_dir", default=plan.STUDY_DIR, help="scratch folder for claims and run folders")
    parser.add_argument("--pilot_epochs", type=int, default=2, help="pilot: epochs of the timed run")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.step == "pilot":
        pilot(args.data, args.study_dir, args.pilot_epochs)
    else:
        work(args.data, args.records, args.study_dir)


if __name__ == "__main__":
    main()
