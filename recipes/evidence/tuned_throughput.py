"""Throughput of all-MiniLM-L6-v2 on each task's length distribution, one thread: the basis of the tuned
study's budget. Prints seconds per training step and per evaluated example, and the study's estimate."""

from __future__ import annotations

import time

import numpy as np
import torch

from recipes.evidence import tuned_plan as plan
from recipes.evidence.checkpoint import checkpoint_dir

RUNS_PER_TASK = (
    len(plan.BASELINE_ARMS)
    + (len(plan.FINAL_SEEDS) - 1)
    + sum(len(grid) + len(plan.FINAL_SEEDS) - 1 for grid in plan.FAMILIES.values())
)


def measure(glue_dir: str, steps: int) -> dict[str, dict[str, float]]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    from recipes.evidence.classifier_run import encode, predict_logits
    from recipes.evidence.study_tuned import max_length, read_task

    torch.set_num_threads(1)
    model_dir = checkpoint_dir()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    collator = DataCollatorWithPadding(tokenizer)
    figures = {}
    print(f"threads: {torch.get_num_threads()}, batch {plan.BATCH_SIZE}, {steps} timed steps after 2 warm-up")
    print(
        "| task | pool rows | max length | truncated | mean tokens | s/step | train ex/s | eval ms/ex "
        "| est. s per run | full pool s per run |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for task in plan.TASKS:
        pool, carved, dev, names = read_task(glue_dir, task)
        length, truncated = max_length(pool, tokenizer)
        rows = encode(tokenizer, *pool, length)
        mean_tokens = float(np.mean([len(row["input_ids"]) for row in rows]))
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=len(names))
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
        # batches as Trainer's group_by_length makes them: a random mega-batch of 50 batches, sorted by length
        mega = np.random.default_rng(0).choice(len(rows), 50 * plan.BATCH_SIZE, replace=False)
        mega = sorted(mega, key=lambda i: -len(rows[i]["input_ids"]))
        picks = np.random.default_rng(1).permutation(50)[: steps + 2]
        times = []
        for step, pick in enumerate(picks):
            batch = collator([rows[i] for i in mega[pick * plan.BATCH_SIZE : (pick + 1) * plan.BATCH_SIZE]])
            started = time.perf_counter()
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if step >= 2:
                times.append(time.perf_counter() - started)
        step_seconds = float(np.median(times))
        eval_rows = encode(tokenizer, *dev, length)
        started = time.perf_counter()
        predict_logits(model, eval_rows, collator)
        eval_per_example = (time.perf_counter() - started) / len(eval_rows)
        size = plan.TRAIN_SIZE[task] or len(pool[1])
        evaluated = len(carved[1]) + len(dev[1])

        def run_seconds(train_rows: int) -> float:
            return plan.EPOCHS * (np.ceil(train_rows / plan.BATCH_SIZE) * step_seconds + evaluated * eval_per_example)

        figures[task] = {
            "pool": len(pool[1]),
            "max_length": length,
            "truncated": truncated,
            "mean_tokens": mean_tokens,
            "step_seconds": step_seconds,
            "eval_seconds_per_example": eval_per_example,
            "run_seconds": run_seconds(size),
            "full_pool_run_seconds": run_seconds(len(pool[1])),
        }
        f = figures[task]
        print(
            f"| {task} | {f['pool']} | {length} | {100 * truncated:.1f}% | {mean_tokens:.1f} | {step_seconds:.3f} "
            f"| {plan.BATCH_SIZE / step_seconds:.1f} | {1000 * eval_per_example:.2f} | {f['run_seconds']:.0f} "
            f"| {f['full_pool_run_seconds']:.0f} |"
        )
    total = sum(f["run_seconds"] for f in figures.values()) * RUNS_PER_TASK
    print(
        f"\nruns per task: {RUNS_PER_TASK}; classification study: {total / 3600:.1f} core-hours "
        f"= {total / 7200:.1f} hours on 2 cores (train sizes {plan.TRAIN_SIZE})"
    )
    return figures
