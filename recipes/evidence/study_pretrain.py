"""Pre-training study: MLM pre-training of a small BERT from scratch on IMDB text, with and without SSE.

    python -m recipes.evidence.study_imdb split --data ../shared/data/imdb-2000.csv     # the same fixed split
    python -m recipes.evidence.study_pretrain run --seeds 1 2 3                         # both arms, every seed
    python -m recipes.evidence.study_pretrain run ... --shard 0/2 & ... --shard 1/2      # the same, as 2 workers
    python -m recipes.evidence.study_pretrain report

Per seed and arm: `run_mlm.py` pre-trains the same small BERT (same tokenizer, steps and masks) on the
1,000 training-pool reviews and reports held-out MLM perplexity on the 200 dev reviews; `run_glue.py`
then fine-tunes that model for sentiment on the same 1,000 reviews (dev for evaluation, test accuracy
reported). SSE is applied in pre-training only, so the fine-tuning step measures what it left in the
model. Records are kept under docs/study/pretrain/ (committed; finished runs are skipped).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics

from recipes.evidence import compare
from recipes.evidence.imdb_split import STUDY_DIR, test_accuracy
from recipes.evidence.records import DOCS_STUDY, is_recorded, save_record
from recipes.evidence.shards import add_shard_option, study_jobs

RECORDS_DIR = os.path.join(DOCS_STUDY, "pretrain")
ARMS = {"baseline": ["--sse", "False"], "sse-se-p0.1": ["--sse_p", "0.1"]}
MLM_ARGS = [
    "--model_type", "bert",
    "--config_overrides",
    "hidden_size=128,num_hidden_layers=2,num_attention_heads=2,intermediate_size=512,max_position_embeddings=128",
    "--tokenizer_vocab_size", "8000",
    "--max_seq_length", "128",
    "--per_device_train_batch_size", "32",
    "--per_device_eval_batch_size", "64",
    "--learning_rate", "5e-4",
    "--warmup_steps", "0.05",
    "--weight_decay", "0.01",
    "--num_train_epochs", "15",
    "--logging_steps", "10",
    "--save_strategy", "no",
    "--report_to", "none",
    "--do_train", "--do_eval",
    "--overwrite_output_dir",
]
GLUE_ARGS = [
    "--do_train", "--do_eval", "--do_predict",
    "--max_seq_length", "128",
    "--per_device_train_batch_size", "16",
    "--per_device_eval_batch_size", "64",
    "--learning_rate", "1e-4",
    "--num_train_epochs", "4",
    "--warmup_steps", "0.1",
    "--weight_decay", "0.01",
    "--logging_steps", "10",
    "--save_strategy", "no",
    "--report_to", "none",
    "--sse", "False",
    "--overwrite_output_dir",
]


def write_corpus(study_dir: str) -> dict[str, str]:
    """One review per line (HTML line breaks removed): the training pool for MLM, dev as held-out text.

    Written to a temporary name and renamed, so a parallel worker never reads a half-written corpus.
    """
    import pandas as pd

    paths = {}
    for split_name, out_name in (("train-1000", "mlm-train.txt"), ("dev", "mlm-heldout.txt")):
        texts = pd.read_csv(os.path.join(study_dir, f"{split_name}.csv"))["text"]
        path = os.path.join(study_dir, out_name)
        scratch = f"{path}.{os.getpid()}.tmp"
        with open(scratch, "w", encoding="utf-8") as handle:
            for text in texts:
                handle.write(re.sub(r"\s+", " ", text.replace("<br />", " ")).strip() + "\n")
        os.replace(scratch, path)
        paths[split_name] = path
    return paths


def run_seed(arm: str, seed: int, study_dir: str, records: str, corpus: dict[str, str]) -> None:
    from recipes import run_glue
    from recipes import run_mlm

    target = os.path.join(records, "runs", arm, f"seed-{seed}")
    if is_recorded(target):
        print(f"skip {arm} seed {seed}: recorded in {target}")
        return
    mlm_dir = os.path.join(study_dir, "pretrain", arm, f"seed-{seed}", "mlm")
    glue_dir = os.path.join(study_dir, "pretrain", arm, f"seed-{seed}", "sentiment")
    print(f"\n=== pre-training study: arm {arm}, seed {seed} ===", flush=True)
    mlm = run_mlm.main(
        ["--train_file", corpus["train-1000"], "--validation_file", corpus["dev"], *MLM_ARGS, *ARMS[arm],
         "--seed", str(seed), "--output_dir", mlm_dir]
    )  # fmt: skip
    glue = run_glue.main(
        ["--model_name_or_path", mlm_dir,
         "--train_file", os.path.join(study_dir, "train-1000.csv"),
         "--validation_file", os.path.join(study_dir, "dev.csv"),
         "--test_file", os.path.join(study_dir, "test.csv"),
         *GLUE_ARGS, "--seed", str(seed), "--output_dir", glue_dir]
    )  # fmt: skip
    record = {
        "arm": arm,
        "seed": seed,
        "perplexity": mlm.get("perplexity"),
        "mlm_eval_loss": mlm.get("eval_loss"),
        "mlm_swap_rate": mlm.get("sse_swap_rate"),
        "mlm_train_loss": mlm.get("train_loss"),
        "mlm_wall_time_s": mlm.get("wall_time_s"),
        "dev_accuracy": glue.get("eval_accuracy"),
        "test_accuracy": test_accuracy(glue_dir, os.path.join(study_dir, "test.csv")),
        "primary_metric": "perplexity",
    }
    save_record(target, record, mlm_dir)
    shutil.rmtree(os.path.join(study_dir, "pretrain", arm, f"seed-{seed}"), ignore_errors=True)
    print(f"recorded {arm} seed {seed}: perplexity {record['perplexity']:.2f}, test acc {record['test_accuracy']:.4f}")


def report(records: str) -> str:
    """Per arm, mean ± std of held-out perplexity, final training and held-out MLM loss (their gap shows whether
    pre-training overfits at all) and sentiment test accuracy; then each seed side by side."""
    runs = compare.load_runs([os.path.join(records, "runs")])
    by_arm: dict[str, dict[int, dict]] = {}
    for run in runs:
        final_loss = run["losses"][-1][1] if run["losses"] else float("nan")
        by_arm.setdefault(run["arm"], {})[run["results"]["seed"]] = {**run["results"], "final_train_loss": final_loss}
    columns = {
        "perplexity": "held-out MLM perplexity",
        "final_train_loss": "final MLM training loss",
        "mlm_eval_loss": "held-out MLM loss",
        "test_accuracy": "sentiment test accuracy",
    }
    lines = ["| arm | seeds | " + " | ".join(columns.values()) + " |", "| --- | --- |" + " --- |" * len(columns)]
    for arm, seeds in sorted(by_arm.items()):
        cells = []
        for key in columns:
            values = [r[key] for r in seeds.values()]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.fmean(values):.4g} ± {spread:.2g}")
        lines.append(f"| {arm} | {len(seeds)} | " + " | ".join(cells) + " |")
    if {"baseline", "sse-se-p0.1"} <= set(by_arm):
        shared = sorted(set(by_arm["baseline"]) & set(by_arm["sse-se-p0.1"]))
        lines += ["", "| seed | perplexity: baseline / SSE | test accuracy: baseline / SSE |", "| --- | --- | --- |"]
        for seed in shared:
            base, sse = by_arm["baseline"][seed], by_arm["sse-se-p0.1"][seed]
            lines.append(
                f"| {seed} | {base['perplexity']:.2f} / {sse['perplexity']:.2f} "
                f"| {base['test_accuracy']:.4f} / {sse['test_accuracy']:.4f} |"
            )
    table = "\n".join(lines) + "\n"
    with open(os.path.join(records, "pretrain.md"), "w", encoding="utf-8") as handle:
        handle.write(table)
    print(table)
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("run", "report"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--study_dir", default=STUDY_DIR)
    parser.add_argument("--records", default=RECORDS_DIR)
    add_shard_option(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.step == "run":
        corpus = write_corpus(args.study_dir)
        for seed, arm in study_jobs(args.seeds, list(ARMS), args.shard):
            run_seed(arm, seed, args.study_dir, args.records, corpus)
    else:
        report(args.records)


if __name__ == "__main__":
    main()
