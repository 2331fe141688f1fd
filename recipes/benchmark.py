"""What SSE costs: swap throughput and training-step overhead, measured A/B interleaved in one run.

    python recipes/benchmark.py                      # BERT-base shape, batch 16x128, 10 pairs
    python recipes/benchmark.py --pairs 20 --json out.json --markdown out.md
    python recipes/benchmark.py --tiny               # seconds-long smoke run

Throughput: `swap_uniform` on one CPU thread over a BERT-sized candidate table, in million tokens
per second, for 32x128 and 8x512 batches. Overhead: one model, steps alternating between
unpatched and patched (patching and removal happen outside the timed region); the figure is the
median over pairs of patched/unpatched step time, so slow drifts of the machine cancel out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
import transformers

from sse_hf import SSEConfig, patch_model
from sse_hf.sampling import candidate_positions, swap_uniform

BERT_BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
TINY = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
BERT_SPECIAL_IDS = [0, 100, 101, 102, 103]  # [PAD] [UNK] [CLS] [SEP] [MASK]; 1-998 are [unusedN]


def swap_throughput(batch_shapes, vocab_size=30522, repeats=200) -> dict[str, float]:
    """Million tokens per second of `swap_uniform` at p=0.1 on one thread, median of `repeats` calls."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        protected = set(BERT_SPECIAL_IDS) | set(range(1, 999))
        candidates = torch.tensor([i for i in range(vocab_size) if i not in protected])
        positions = candidate_positions(candidates, vocab_size)
        results = {}
        for rows, cols in batch_shapes:
            ids = torch.randint(999, vocab_size, (rows, cols))
            for _ in range(10):
                swap_uniform(ids, 0.1, candidates, positions)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                swap_uniform(ids, 0.1, candidates, positions)
                times.append(time.perf_counter() - start)
            results[f"{rows}x{cols}"] = ids.numel() / statistics.median(times) / 1e6
        return results
    finally:
        torch.set_num_threads(threads)


def _training_step(model, optimizer, batch) -> float:
    start = time.perf_counter()
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def step_overhead(
    arms: dict[str, Callable[[torch.nn.Module], Callable[[], None]]],
    model_shape: dict,
    batch_size: int,
    seq_len: int,
    pairs: int,
    warmup: int = 2,
) -> dict[str, dict[str, float]]:
    """Median step-time ratio of each arm over the plain model, steps interleaved A/B per pair.

    Each arm is `attach(model) -> detach()`; attaching and detaching are not timed.
    """
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(transformers.BertConfig(**model_shape)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(999, model_shape["vocab_size"], (batch_size, seq_len))
    ids[:, 0], ids[:, -1] = 101, 102
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": torch.randint(0, 2, (batch_size,)),
    }
    for _ in range(warmup):
        _training_step(model, optimizer, batch)
        for attach in arms.values():
            detach = attach(model)
            _training_step(model, optimizer, batch)
            detach()
    results = {}
    for name, attach in arms.items():
        ratios, base_times, arm_times = [], [], []
        for pair in range(pairs):
            detach = None
            order = ("base", "arm") if pair % 2 == 0 else ("arm", "base")
            timings = {}
            for which in order:
                if which == "arm":
                    detach = attach(model)
                timings[which] = _training_step(model, optimizer, batch)
                if which == "arm":
                    detach()
            ratios.append(timings["arm"] / timings["base"])
            base_times.append(timings["base"])
            arm_times.append(timings["arm"])
        results[name] = {
            "ratio_median": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "base_step_s": statistics.median(base_times),
            "arm_step_s": statistics.median(arm_times),
            "pairs": pairs,
        }
    return results


def sse_se_arm(p: float = 0.1) -> Callable[[torch.nn.Module], Callable[[], None]]:
    """Attach SSE-SE at `p` through the public API."""

    def attach(model):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no tokenizer here: config vocab fallback is intended
            handle = patch_model(model, SSEConfig(p=p))
        return handle.remove

    return attach


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=10, help="A/B pairs per arm (median is reported)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--tiny", action="store_true", help="a tiny model and few repeats: a smoke run")
    parser.add_argument("--json", help="write the results as JSON here")
    parser.add_argument("--markdown", help="write the results as a markdown table here")
    args = parser.parse_args(argv)

    shape = TINY if args.tiny else BERT_BASE
    repeats = 20 if args.tiny else 200
    results = {
        "machine": {"torch": torch.__version__, "threads": torch.get_num_threads()},
        "swap_mtokens_per_s_one_thread": swap_throughput([(32, 128), (8, 512)], repeats=repeats),
        "step_overhead": step_overhead(
            {"sse-se p=0.1": sse_se_arm(0.1)}, shape, args.batch_size, args.seq_len, args.pairs
        ),
        "model": "tiny" if args.tiny else "bert-base (12 layers, hidden 768, vocab 30522)",
        "batch": f"{args.batch_size}x{args.seq_len}",
    }
    table = render_markdown(results)
    print(table)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    if args.markdown:
        with open(args.markdown, "w") as handle:
            handle.write(table + "\n")
    return results


def render_markdown(results: dict) -> str:
    lines = ["| swap throughput (1 CPU thread) | million tokens/s |", "|---|---|"]
    lines += [f"| batch {shape} | {rate:.1f} |" for shape, rate in results["swap_mtokens_per_s_one_thread"].items()]
    lines += [
        "",
        f"Training step, {results['model']}, batch {results['batch']}, CPU ({results['machine']['threads']} threads):",
        "",
        "| arm | step time (s) | baseline step (s) | ratio, median of pairs | min / max |",
        "|---|---|---|---|---|",
    ]
    for name, row in results["step_overhead"].items():
        lines.append(
            f"| {name} | {row['arm_step_s']:.3f} | {row['base_step_s']:.3f} | {row['ratio_median']:.4f} "
            f"| {row['ratio_min']:.3f} / {row['ratio_max']:.3f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
