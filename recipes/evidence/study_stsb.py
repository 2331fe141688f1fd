"""STS-B the way all-MiniLM-L6-v2 is used: a sentence-embedding fine-tune in `SentenceTransformerTrainer` with
CoSENT loss and `SSECallback`, scored by the Spearman correlation of cosine similarities, from the zero-shot
checkpoint on.

    python -m recipes.evidence.study_stsb zero-shot --glue_dir GLUE_DIR
    OMP_NUM_THREADS=1 python -m recipes.evidence.study_stsb run --glue_dir GLUE_DIR    # start 2 such workers
    python -m recipes.evidence.study_stsb report

400 rows carved from `stsb_train.csv` (seeded permutation, seed 0) make the carved split; every choice (the
learning rate, the epoch, SSE's p) is made on it, and STS-B dev is only reported. Jobs: the baseline's
learning-rate grid, the SSE-SE grid at the chosen rate, then both chosen settings at seeds 1-5.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from collections.abc import Iterator

import numpy as np

from recipes.evidence import job_queue
from recipes.evidence.checkpoint import checkpoint_dir
from recipes.evidence.code_version import check_unchanged, code_version
from recipes.evidence.holm import paired_p
from recipes.evidence.paired import mean_interval
from recipes.evidence.records import DOCS_STUDY, OUTPUTS

STUDY_DIR = os.path.join(OUTPUTS, "study-stsb")
RECORDS_DIR = os.path.join(DOCS_STUDY, "stsb", "runs")
CARVED_SIZE = 400
EPOCHS = 2
BATCH_SIZE = 32
BASELINE_ARMS = {f"baseline-lr{lr:g}": lr for lr in (1e-5, 2e-5, 5e-5)}
SSE_ARMS = {f"sse-se-p{p}": p for p in (0.02, 0.05, 0.1)}
TUNING_SEED = 1
FINAL_SEEDS = (1, 2, 3, 4, 5)

Pairs = tuple[list[str], list[str], list[float]]


def read_stsb(glue_dir: str) -> tuple[Pairs, Pairs, Pairs]:
    """(pool, carved, dev): the training file split by a seeded permutation; scores kept on their 0-5 scale."""
    from recipes.evidence.study_tuned import read_glue_files

    frames = read_glue_files(glue_dir, "stsb")

    def pairs(frame) -> Pairs:
        return (
            [str(s) for s in frame["sentence1"]],
            [str(s) for s in frame["sentence2"]],
            [float(v) for v in frame["label"]],
        )

    train = frames["train"].iloc[np.random.default_rng(0).permutation(len(frames["train"]))]
    return pairs(train[CARVED_SIZE:]), pairs(train[:CARVED_SIZE]), pairs(frames["validation"])


def cosine_scores(model, pairs: Pairs) -> np.ndarray:
    """Cosine similarity of each pair's sentence embeddings (the model in eval mode, its mode restored after)."""
    was_training = model.training
    model.eval()
    left = model.encode(pairs[0], batch_size=128, convert_to_numpy=True, normalize_embeddings=True)
    right = model.encode(pairs[1], batch_size=128, convert_to_numpy=True, normalize_embeddings=True)
    model.train(was_training)
    return (left * right).sum(axis=1)


def correlations(predicted: np.ndarray, gold: list[float]) -> dict[str, float]:
    from scipy.stats import pearsonr, spearmanr

    return {
        "spearman": round(float(spearmanr(predicted, gold)[0]), 6),
        "pearson": round(float(pearsonr(predicted, gold)[0]), 6),
    }


def zero_shot(glue_dir: str, model_dir: str | None = None) -> dict[str, dict[str, float]]:
    """The checkpoint's own cosine scores, no training: the reference every fine-tune starts from."""
    from sentence_transformers import SentenceTransformer

    _, carved, dev = read_stsb(glue_dir)
    model = SentenceTransformer(model_dir or checkpoint_dir(), device="cpu")
    scores = {
        "carved": correlations(cosine_scores(model, carved), carved[2]),
        "dev": correlations(cosine_scores(model, dev), dev[2]),
    }
    print(f"zero-shot: {scores}")
    return scores


def finetune(
    glue_dir: str, arm: str, seed: int, lr: float, p: float, output_dir: str, model_dir: str | None = None
) -> dict:
    """One CoSENT fine-tune; carved and dev correlations after every epoch; the dev cosines of the kept epoch."""
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss
    from transformers import TrainerCallback

    from sse_hf import SSECallback, SSEConfig

    pool, carved, dev = read_stsb(glue_dir)
    model = SentenceTransformer(model_dir or checkpoint_dir(), device="cpu")
    train = Dataset.from_dict({"sentence1": pool[0], "sentence2": pool[1], "score": [v / 5 for v in pool[2]]})
    per_epoch: list[dict] = []
    kept: list[np.ndarray] = []

    class EpochScores(TrainerCallback):
        def on_epoch_end(self, args, state, control, **kwargs):
            dev_cosines = cosine_scores(model, dev)
            per_epoch.append(
                {
                    "carved": correlations(cosine_scores(model, carved), carved[2]),
                    "dev": correlations(dev_cosines, dev[2]),
                }
            )
            kept.append(dev_cosines)

    callbacks: list = [EpochScores()]
    sse = SSECallback(SSEConfig(p=p), tokenizer=model.tokenizer) if p > 0 else None
    if sse is not None:
        callbacks.append(sse)
    epochs = EPOCHS
    args = SentenceTransformerTrainingArguments(
        output_dir=output_dir,
        num_train_epochs=epochs,
        per_device_train_batch_size=BATCH_SIZE,
        learning_rate=lr,
        warmup_steps=0.1,
        weight_decay=0.01,
        seed=seed,
        data_seed=seed,
        eval_strategy="no",
        save_strategy="no",
        logging_steps=10,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train, loss=CoSENTLoss(model), callbacks=callbacks
    )
    started = time.time()
    if sse is not None:
        with sse:
            trainer.train()
    else:
        trainer.train()
    best = max(range(len(per_epoch)), key=lambda e: (per_epoch[e]["carved"]["spearman"], -e))

    return {
        "study": "stsb",
        "arm": arm,
        "seed": seed,
        "learning_rate": lr,
        "sse_p": p,
        "epochs": epochs,
        "train_size": len(pool[2]),
        "epoch_scores": per_epoch,
        "kept_epoch": best + 1,
        "dev_cosines": [round(float(v), 4) for v in kept[best]],
        "train_loss_log": [(log["step"], log["loss"]) for log in trainer.state.log_history if "loss" in log],
        "sse_stats": sse.stats() if sse is not None else {},
        "wall_seconds": round(time.time() - started, 1),
        "code": code_version(),
    }


def record_path(records: str, arm: str, seed: int) -> str:
    return os.path.join(records, arm, f"seed-{seed}.json")


def load_records(records: str) -> dict[str, dict[int, dict]]:
    runs: dict[str, dict[int, dict]] = {}
    if not os.path.isdir(records):
        return runs
    for arm in sorted(os.listdir(records)):
        folder = os.path.join(records, arm)
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            with open(os.path.join(folder, name), encoding="utf-8") as handle:
                record = json.load(handle)
            runs.setdefault(arm, {})[record["seed"]] = record
    return runs


def kept_carved(record: dict) -> float:
    return record["epoch_scores"][record["kept_epoch"] - 1]["carved"]["spearman"]


def choose(runs: dict, arms: list[str]) -> str | None:
    """The arm of a grid with the best carved Spearman at the tuning seed, once the whole grid is recorded."""
    if not all(TUNING_SEED in runs.get(arm, {}) for arm in arms):
        return None
    return max(sorted(arms), key=lambda arm: kept_carved(runs[arm][TUNING_SEED]))


def jobs(records: str) -> Iterator[tuple | None]:
    runs = load_records(records)
    for arm, lr in BASELINE_ARMS.items():
        yield "stsb", arm, TUNING_SEED, lr, 0.0
    base = choose(runs, list(BASELINE_ARMS))
    if base is None:
        yield None
        return
    lr = BASELINE_ARMS[base]
    for seed in FINAL_SEEDS:
        yield "stsb", base, seed, lr, 0.0
    for arm, p in SSE_ARMS.items():
        yield "stsb", arm, TUNING_SEED, lr, p
    best = choose(runs, list(SSE_ARMS))
    if best is None:
        yield None
        return
    for seed in FINAL_SEEDS:
        yield "stsb", best, seed, lr, SSE_ARMS[best]


def run_job(glue_dir: str, records: str, study_dir: str, job: tuple, model_dir: str | None = None) -> dict:
    _, arm, seed, lr, p = job
    run_dir = os.path.join(study_dir, "runs", f"{arm}-seed-{seed}")
    print(f"\n=== STS-B study: {arm} seed {seed} lr {lr:g} p {p} ===", flush=True)
    record = finetune(glue_dir, arm, seed, lr, p, run_dir, model_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    path = record_path(records, arm, seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(record, handle, separators=(",", ":"))
    os.replace(path + ".tmp", path)
    print(f"recorded {arm} seed {seed}: kept epoch {record['kept_epoch']}, {record['epoch_scores']}", flush=True)
    return record


def comparison(records: str) -> dict | None:
    """The chosen SSE arm against the tuned baseline on dev Spearman, paired by seed (None until both have
    every final seed)."""
    runs = load_records(records)
    base, best = choose(runs, list(BASELINE_ARMS)), choose(runs, list(SSE_ARMS))
    if not base or not best or not all(s in runs[base] and s in runs[best] for s in FINAL_SEEDS):
        return None

    def dev(record):
        return record["epoch_scores"][record["kept_epoch"] - 1]["dev"]["spearman"]

    diffs = [dev(runs[best][s]) - dev(runs[base][s]) for s in FINAL_SEEDS]
    mean, low, high = mean_interval(diffs)
    return {
        "task": "stsb",
        "left": "sse-se",
        "right": "baseline",
        "left_arm": best,
        "right_arm": base,
        "metric": "spearman",
        "seeds": list(FINAL_SEEDS),
        "mean": mean,
        "low": low,
        "high": high,
        "ahead": sum(d > 0 for d in diffs),
        "p": paired_p(diffs),
        "base_mean": statistics.fmean(dev(runs[base][s]) for s in FINAL_SEEDS),
        "sse_mean": statistics.fmean(dev(runs[best][s]) for s in FINAL_SEEDS),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("zero-shot", "run", "report"))
    parser.add_argument("--glue_dir", help="folder with stsb_train.csv and stsb_validation.csv")
    parser.add_argument("--records", default=RECORDS_DIR)
    parser.add_argument("--study_dir", default=STUDY_DIR)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.step != "report" and not args.glue_dir:
        parser.error(f"{args.step} needs --glue_dir (a folder with stsb_train.csv and stsb_validation.csv)")
    if args.step == "zero-shot":
        scores = zero_shot(args.glue_dir)
        os.makedirs(args.records, exist_ok=True)
        with open(os.path.join(args.records, "zero-shot.json"), "w", encoding="utf-8") as handle:
            json.dump(scores, handle, indent=2)
    elif args.step == "run":
        job_queue.work(
            lambda: jobs(args.records),
            lambda job: os.path.isfile(record_path(args.records, job[1], job[2])),
            lambda job: run_job(args.glue_dir, args.records, args.study_dir, job),
            args.study_dir,
            before_each=check_unchanged,
        )
    else:
        print(json.dumps(comparison(args.records), indent=2))


if __name__ == "__main__":
    main()
