"""What SSE costs a real recipe run: run_glue's own training throughput (samples/s) with SSE on against off.

    python -m recipes.evidence.bench_recipe --pairs 7    # small BERT, batch 32 x 128 tokens, 30 steps per run

Runs `run_glue.py` in one process with SSE off and on, alternating which goes first in each pair, after one
discarded warm-up run, and prints the median train samples/s of each arm and their ratio. It also times the SSE
hook alone on one batch against one training step, which gives a steadier estimate of the same ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from recipes import run_glue
from recipes.evidence.timing import isolated_hook_cost, median_seconds
from recipes.kit.demo_data import TRAIN_FILE, training_sentences
from recipes.kit.tiny_bert import build_tiny_bert
from sse_hf import SSEConfig, patch_model


def run_arguments(model_dir: str, output_dir: str, sse_on: bool, args: argparse.Namespace) -> list[str]:
    return [
        "--model_name_or_path",
        model_dir,
        "--train_file",
        TRAIN_FILE,
        "--output_dir",
        output_dir,
        "--overwrite_output_dir",
        "--do_train",
        "--max_steps",
        str(args.max_steps),
        "--per_device_train_batch_size",
        str(args.batch_size),
        "--max_seq_length",
        str(args.seq_length),
        "--pad_to_max_length",
        "--learning_rate",
        "1e-4",
        "--save_strategy",
        "no",
        "--logging_steps",
        str(args.max_steps),
        "--report_to",
        "none",
        "--log_level",
        "error",
        "--disable_tqdm",
        "True",  # keeps the A/B output readable; the recipes themselves keep their bars
        "--dataloader_pin_memory",
        "False",
        "--seed",
        "42",
        *(["--sse_p", str(args.sse_p)] if sse_on else ["--sse", "False"]),
    ]


def recipe_hook_cost(model_dir: str, texts: list[str], args: argparse.Namespace, rounds: int = 7) -> dict[str, float]:
    """What SSE adds to one training step, measured apart from the noise of whole runs.

    Times the embedding lookup of one padded batch with and without the SSE hook (interleaved rounds,
    medians), and one full training step (forward, backward, AdamW) without it. The estimated throughput
    ratio is step / (step + hook cost).
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).train()
    batch = tokenizer(
        texts[: args.batch_size],
        padding="max_length",
        truncation=True,
        max_length=args.seq_length,
        return_tensors="pt",
    )
    batch["labels"] = torch.zeros(len(batch["input_ids"]), dtype=torch.long)
    embedding, ids = model.get_input_embeddings(), batch["input_ids"]
    config = SSEConfig(p=args.sse_p)
    hook = max(
        0.0,
        isolated_hook_cost(
            lambda: patch_model(model, config, tokenizer=tokenizer).remove,
            lambda: embedding(ids),
            repeats=1,
            rounds=rounds,
            calls=100,
        ),
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()

    step_s = median_seconds(step, rounds, warmup=2)
    return {"hook_ms": hook * 1e3, "step_ms": step_s * 1e3, "estimated_ratio": step_s / (step_s + hook)}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--max_steps", type=int, default=30)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seq_length", type=int, default=128, help="tokens per example")
    parser.add_argument("--hidden_size", type=int, default=128)
    parser.add_argument("--num_hidden_layers", type=int, default=2)
    parser.add_argument("--sse_p", type=float, default=0.1)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's); 1 is steadier when busy")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="sse-ab-") as root:
        texts = training_sentences()
        model_dir = build_tiny_bert(
            os.path.join(root, "model"),
            texts,
            vocab_size=400,
            hidden_size=args.hidden_size,
            num_hidden_layers=args.num_hidden_layers,
            num_attention_heads=max(1, args.hidden_size // 64),
            max_position_embeddings=max(128, args.seq_length),
        )

        def measure(sse_on: bool) -> float:
            out = os.path.join(root, "on" if sse_on else "off")
            return run_glue.main(run_arguments(model_dir, out, sse_on, args))["train_samples_per_second"]

        measure(False)  # warm-up: first-run costs (allocator, thread pools, caches) are not SSE's
        off, on, ratios = [], [], []
        started = time.perf_counter()
        for pair in range(args.pairs):
            order = (False, True) if pair % 2 == 0 else (True, False)
            values = {sse_on: measure(sse_on) for sse_on in order}
            off.append(values[False])
            on.append(values[True])
            ratios.append(values[True] / values[False])
            print(
                f"pair {pair + 1}: off {values[False]:.1f}  on {values[True]:.1f} samples/s  ratio {ratios[-1]:.4f}",
                flush=True,
            )

        isolated = recipe_hook_cost(model_dir, texts, args)

    result = {
        "median_off": statistics.median(off),
        "median_on": statistics.median(on),
        "ratio_of_medians": statistics.median(on) / statistics.median(off),
        "median_pair_ratio": statistics.median(ratios),
        "pairs": args.pairs,
        "seconds": time.perf_counter() - started,
    }
    print(
        f"\nSSE throughput A/B (run_glue, BERT hidden {args.hidden_size} x {args.num_hidden_layers} layers, "
        f"batch {args.batch_size}, "
        f"seq {args.seq_length}, {args.max_steps} steps, p={args.sse_p}, {args.pairs} interleaved pairs, "
        f"{torch.get_num_threads()} CPU threads)\n"
        f"median train samples/s: off {result['median_off']:.1f}, on {result['median_on']:.1f}\n"
        f"ratio on/off: {result['ratio_of_medians']:.4f} (median of medians); {result['median_pair_ratio']:.4f} "
        "(median of per-pair ratios)\n"
        f"isolated: the SSE hook adds {isolated['hook_ms']:.3f} ms to a {isolated['step_ms']:.1f} ms training step "
        f"-> estimated ratio {isolated['estimated_ratio']:.4f}"
    )
    return {**result, **isolated}


if __name__ == "__main__":
    main()
