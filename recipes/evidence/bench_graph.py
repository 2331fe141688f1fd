"""What SSE-Graph costs before training: kNN graph build time and peak memory, and its swap throughput beside SSE-SE.

Runs offline on CPU. The build is timed in fresh processes (peak memory = ru_maxrss rise during the build, which
sees torch's allocations, unlike tracemalloc); the throughput runs on one thread (bench_swap), with medians over
repeats because other jobs may share the cores.

    python -m recipes.evidence.bench_graph                 # BERT-base-shaped random table, k=10
    python -m recipes.evidence.bench_graph --repeats 1 --no_minilm
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import torch

from recipes.evidence.bench_swap import BERT_BASE, BERT_RESERVED, swap_throughput, throughput_table
from recipes.evidence.checkpoint import optional_checkpoint_dir
from recipes.evidence.timing import peak_rss_mib, run_in_fresh_process
from sse_hf import SSEGraph


def knn_worker(args: argparse.Namespace) -> None:
    """In a fresh process: build one kNN graph, print {seconds, peak_mib} as JSON, optionally save it."""
    if args.table == "random":
        generator = torch.Generator().manual_seed(0)
        table = torch.randn(BERT_BASE["vocab_size"], BERT_BASE["hidden_size"], generator=generator)
        exclude, tokenizer = range(BERT_RESERVED), None
    else:
        from safetensors.torch import load_file
        from transformers import AutoTokenizer

        table = load_file(os.path.join(args.table, "model.safetensors"))["embeddings.word_embeddings.weight"]
        table = table.float()
        exclude, tokenizer = (), AutoTokenizer.from_pretrained(args.table)
    before = peak_rss_mib()
    start = time.perf_counter()
    graph = SSEGraph.from_embeddings(
        table, k=args.k, tokenizer=tokenizer, exclude_token_ids=exclude, chunk_size=args.chunk_size
    )
    seconds = time.perf_counter() - start
    peak = peak_rss_mib() - before
    if args.save:
        graph.save(args.save)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mib": peak,
                "table_mib": table.numel() * 4 / 2**20,
                "shape": list(table.shape),
                "edges": graph.num_edges,
                "threads": torch.get_num_threads(),
            }
        )
    )


def time_build(table: str, k: int, chunk_size: int, repeats: int, save: str | None = None) -> list[dict]:
    """Run the kNN build `repeats` times, each in a fresh process; the first one saves the graph."""
    results = []
    for repeat in range(repeats):
        command = ["--knn_worker", "--table", table, "--k", str(k), "--chunk_size", str(chunk_size)]
        if save and repeat == 0:
            command += ["--save", save]
        output = run_in_fresh_process("recipes.evidence.bench_graph", command)
        results.append(json.loads(output.strip().splitlines()[-1]))
    return results


def report_build(label: str, results: list[dict]) -> None:
    seconds = statistics.median(r["seconds"] for r in results)
    peak = statistics.median(r["peak_mib"] for r in results)
    first = results[0]
    runs = ", ".join(f"{r['seconds']:.1f}" for r in results)
    print(
        f"{label}: table {first['shape'][0]} x {first['shape'][1]} ({first['table_mib']:.0f} MiB), {first['edges']} "
        f"edges, {first['threads']} threads: build {seconds:.1f} s (median of {len(results)}: "
        f"{runs}), peak memory +{peak:.0f} MiB"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--chunk_size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3, help="kNN builds (each in a fresh process); timing repeats")
    parser.add_argument("--calls", type=int, default=200, help="swap calls per timing repeat")
    parser.add_argument("--p", type=float, default=0.1)
    parser.add_argument("--no_minilm", action="store_true", help="skip the real all-MiniLM-L6-v2 table")
    parser.add_argument("--knn_worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--table", default="random", help=argparse.SUPPRESS)
    parser.add_argument("--save", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.knn_worker:
        knn_worker(args)
        return

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, k={args.k}, chunk_size={args.chunk_size}")
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "bert_knn.safetensors")
        report_build(
            "kNN graph, random BERT-base-shaped table",
            time_build("random", args.k, args.chunk_size, args.repeats, save=path),
        )
        model = None if args.no_minilm else optional_checkpoint_dir()
        if model is not None:
            report_build(
                "kNN graph, all-MiniLM-L6-v2 word embeddings", time_build(model, args.k, args.chunk_size, args.repeats)
            )
        graph = SSEGraph.load(path)
    repeats = max(args.repeats, 5)
    print(f"\nswap throughput, p={args.p}, 1 thread, median of {repeats} x {args.calls} calls:")
    print("\n".join(throughput_table(swap_throughput(graph, args.p, repeats, args.calls))))


if __name__ == "__main__":
    main()
