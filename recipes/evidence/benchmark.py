"""The benchmark: what SSE costs, in swap throughput, training-step overhead, peak memory and recipe throughput.

Three subcommands, each A/B interleaved in one run (`cost` is the default):

    python -m recipes.evidence.benchmark                      # BERT-base shape, batch 16x128, 20 pairs per arm
    python -m recipes.evidence.benchmark --arms sse-se --pairs 20 --json out.json --markdown out.md
    python -m recipes.evidence.benchmark --memory             # also peak memory per arm (a fresh process each)
    python -m recipes.evidence.benchmark --device cuda --bf16 --sync_check   # on a GPU
    python -m recipes.evidence.benchmark --tiny               # seconds-long smoke run
    python -m recipes.evidence.benchmark --compile --skip_eager --skip_throughput --pairs 10   # both arms torch.compile'd

Throughput: `swap_uniform` (SSE-SE) and `swap_graph` (SSE-Graph, 10 neighbours per token) on one
CPU thread over a BERT-sized vocabulary, in million tokens per second, for 32x128 and 8x512 batches.
Overhead: one model, trained in rounds; a round takes one step with no regulariser and one with
each arm (SSE-SE, SSE-Graph, label SSE, NEFTune as transformers implements it) in a random order;
attaching and detaching are not timed; the figure is the median over rounds ("pairs") of arm/baseline
step time, so slow drifts of the machine cancel out.

    python -m recipes.evidence.benchmark graph       # kNN graph build time and memory, SSE-Graph swap throughput
    python -m recipes.evidence.benchmark recipe      # run_glue's samples/s with SSE on against off
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import statistics
import tempfile
import time
from collections.abc import Callable

import torch
import transformers

from recipes import run_glue
from recipes.evidence.checkpoint import optional_checkpoint_dir
from recipes.evidence.records import REPO_ROOT
from recipes.evidence.timing import isolated_hook_cost, median_interval, median_seconds
from recipes.kit.demo_data import TRAIN_FILE, training_sentences
from recipes.kit.tiny_bert import build_tiny_bert
from sse_hf import SSEConfig, SSEGraph, patch_model
from sse_hf.sampling import candidate_positions, swap_graph, swap_uniform

BERT_BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
TINY = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
BERT_SPECIAL_IDS = [0, 100, 101, 102, 103]  # [PAD] [UNK] [CLS] [SEP] [MASK]; 1-998 are [unusedN]


def random_graph(vocab_size: int = 30522, k: int = 10, seed: int = 0) -> SSEGraph:
    """A graph shaped like a kNN graph of a BERT vocabulary: k weighted neighbours for every real token."""
    generator = torch.Generator().manual_seed(seed)
    sources = torch.arange(999, vocab_size).repeat_interleave(k)
    targets = torch.randint(999, vocab_size, sources.shape, generator=generator)
    weights = torch.rand(sources.shape, generator=generator) + 0.1
    return SSEGraph.from_edges(sources, targets, weights, vocab_size=vocab_size)


def swap_throughput(batch_shapes, vocab_size=30522, repeats=200) -> dict[str, dict[str, float]]:
    """Million tokens per second of SSE-SE and SSE-Graph kernels at p=0.1 on one thread (median call)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        protected = set(BERT_SPECIAL_IDS) | set(range(1, 999))
        candidates = torch.tensor([i for i in range(vocab_size) if i not in protected])
        positions = candidate_positions(candidates, vocab_size)
        graph = random_graph(vocab_size)
        results = {}
        for rows, cols in batch_shapes:
            ids = torch.randint(999, vocab_size, (rows, cols))
            se = median_seconds(lambda: swap_uniform(ids, 0.1, candidates, positions), repeats)
            gr = median_seconds(lambda: swap_graph(ids, 0.1, graph), repeats)
            results[f"{rows}x{cols}"] = {"sse-se": ids.numel() / se / 1e6, "sse-graph": ids.numel() / gr / 1e6}
        return results
    finally:
        torch.set_num_threads(threads)


def _training_step(model, optimizer, batch, bf16: bool = False) -> float:
    device = batch["input_ids"].device
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def build_model_and_batch(model_shape: dict, batch_size: int, seq_len: int, device: str = "cpu"):
    """A BERT classifier from config, AdamW, and one fixed batch of real-looking ids on `device`."""
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(transformers.BertConfig(**model_shape)).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(999, model_shape["vocab_size"], (batch_size, seq_len))
    ids[:, 0], ids[:, -1] = 101, 102
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": torch.randint(0, 2, (batch_size,)),
    }
    return model, optimizer, {key: value.to(device) for key, value in batch.items()}


def step_overhead(
    arms: dict[str, Callable[[torch.nn.Module], Callable[[], None]]],
    model_shape: dict,
    batch_size: int,
    seq_len: int,
    pairs: int,
    warmup: int = 2,
    device: str = "cpu",
    bf16: bool = False,
    sync_check: bool = False,
) -> dict[str, dict[str, float]]:
    """Median step-time ratio of each arm over the plain model, from `pairs` interleaved rounds.

    A round times one plain step and one step of every arm, in a fresh random order, so each round
    gives every arm one A/B pair taken within seconds of each other: slow drifts of the machine cancel,
    and the plain step is shared (1 + arms steps a round, not 2 x arms). Each arm is
    `attach(model) -> detach()`; attaching and detaching are not timed. With `sync_check` (CUDA), the
    arm's forward runs under `torch.cuda.set_sync_debug_mode("error")`, so any host-device sync raises.
    """
    model, optimizer, batch = build_model_and_batch(model_shape, batch_size, seq_len, device)

    def arm_step(attach) -> float:
        detach = attach(model)
        try:
            if sync_check:
                return _checked_step(model, batch, bf16)
            return _training_step(model, optimizer, batch, bf16)
        finally:
            detach()

    def timed(name: str | None) -> float:
        return _training_step(model, optimizer, batch, bf16) if name is None else arm_step(arms[name])

    for _ in range(warmup):
        for name in (None, *arms):
            timed(name)
    order_rng = random.Random(0)
    times: dict[str | None, list[float]] = {name: [] for name in (None, *arms)}
    for _ in range(pairs):
        order = [None, *arms]
        order_rng.shuffle(order)
        for name in order:
            times[name].append(timed(name))
    base_times = times[None]
    results = {}
    for name, attach in arms.items():
        ratios = [arm / base for arm, base in zip(times[name], base_times)]
        hook_cost = hook_cost_in_forward(attach, model, batch)
        results[name] = {
            "hook_cost_ms": hook_cost * 1e3,
            "ratio_from_hook_cost": 1 + hook_cost / statistics.median(base_times),
            "ratio_median": statistics.median(ratios),
            "ratio_median_ci95": list(median_interval(ratios)),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "ratios": [round(ratio, 5) for ratio in ratios],
            "base_step_s": statistics.median(base_times),
            "arm_step_s": statistics.median(times[name]),
            "pairs": pairs,
        }
    return results


def compiled_step_overhead(
    model_shape: dict, batch_size: int, seq_len: int, pairs: int, warmup: int = 3, device: str = "cpu", bf16: bool = False,
    backend: str = "inductor",
) -> dict[str, float]:
    """Median step-time ratio of SSE-SE p=0.1 over no SSE, both under `torch.compile` (inductor), A/B interleaved.

    Hooks cannot be attached and detached per step here (that recompiles), so there are two identical models:
    one patched before compiling, one plain. Each round steps both in a fresh random order; the warm-up steps
    (compilation included) are not timed.
    """
    plain, plain_optimizer, batch = build_model_and_batch(model_shape, batch_size, seq_len, device)
    patched, patched_optimizer, _ = build_model_and_batch(model_shape, batch_size, seq_len, device)
    detach = sse_arm(p=0.1)(patched)
    arms = {
        "plain": (torch.compile(plain, backend=backend), plain_optimizer),
        "sse": (torch.compile(patched, backend=backend), patched_optimizer),
    }
    try:
        for _ in range(warmup):
            for model, optimizer in arms.values():
                _training_step(model, optimizer, batch, bf16)
        order_rng = random.Random(0)
        times: dict[str, list[float]] = {name: [] for name in arms}
        for _ in range(pairs):
            order = list(arms)
            order_rng.shuffle(order)
            for name in order:
                times[name].append(_training_step(*arms[name], batch, bf16))
    finally:
        detach()
    ratios = [sse / base for sse, base in zip(times["sse"], times["plain"])]
    return {
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "base_step_s": statistics.median(times["plain"]),
        "arm_step_s": statistics.median(times["sse"]),
        "pairs": pairs,
    }


def _checked_step(model, batch, bf16: bool) -> float:
    """A forward pass in which any host-device synchronisation raises (CUDA only); not timed for ratios."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch).loss
    finally:
        torch.cuda.set_sync_debug_mode("default")
    loss.backward()
    model.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    return time.perf_counter() - start


def hook_cost_in_forward(attach, model, batch, repeats: int = 100) -> float:
    """Seconds an arm's hooks add to one training forward, timed alone (steadier than whole steps).

    Times the embedding layer's forward (where SSE-SE, SSE-Graph and NEFTune hooks run) and the
    model-level pre-hooks (label SSE) in training mode, with and without the arm; medians of `repeats`.
    """
    embeddings = model.bert.embeddings
    inputs = {"input_ids": batch["input_ids"], "token_type_ids": torch.zeros_like(batch["input_ids"])}
    kwargs = {"input_ids": batch["input_ids"], "labels": batch["labels"]}

    def forward_pieces():
        embeddings(**inputs)
        for key, hook in model._forward_pre_hooks.items():
            if model._forward_pre_hooks_with_kwargs.get(key):
                hook(model, (), kwargs)

    model.train()
    return isolated_hook_cost(lambda: attach(model), forward_pieces, repeats)


def sse_arm(graph: SSEGraph | None = None, **config) -> Callable[[torch.nn.Module], Callable[[], None]]:
    """Attach SSE through the public API with these SSEConfig fields (and an in-memory graph)."""

    def attach(model):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no tokenizer here: config vocab fallback is intended
            handle = patch_model(model, SSEConfig(**config), graph=graph)
        return handle.remove

    return attach


def neftune_arm(alpha: float = 5.0) -> Callable[[torch.nn.Module], Callable[[], None]]:
    """Attach NEFTune exactly as Trainer does for `neftune_noise_alpha` (transformers' own hook)."""
    from transformers.integrations.neftune import activate_neftune, deactivate_neftune

    def attach(model):
        hook = activate_neftune(model, alpha)
        return lambda: deactivate_neftune(model, hook)

    return attach


def all_arms(vocab_size: int) -> dict[str, Callable[[], Callable]]:
    """Each arm's factory, by name (built lazily: the graph takes a moment)."""
    return {
        "sse-se": lambda: sse_arm(p=0.1),
        "sse-graph": lambda: sse_arm(graph=random_graph(vocab_size), p=0.1),
        "label-sse": lambda: sse_arm(p=0.0, label_p=0.1),
        "neftune": lambda: neftune_arm(5.0),
    }


ARM_LABELS = {
    "sse-se": "SSE-SE p=0.1",
    "sse-graph": "SSE-Graph p=0.1 (10 neighbours/token)",
    "label-sse": "label SSE label_p=0.1",
    "neftune": "NEFTune alpha=5 (transformers)",
}


def peak_memory(arm: str | None, model_shape: dict, batch_size: int, seq_len: int, steps: int = 3) -> float:
    """Peak resident memory (MiB) of a fresh process that trains `steps` steps with one arm (None: baseline)."""
    command = ["cost", "--_memory_probe", arm or "none", "--batch_size", str(batch_size), "--seq_len", str(seq_len),
               "--_steps", str(steps)]  # fmt: skip
    if model_shape is TINY:
        command.append("--tiny")
    output = run_in_fresh_process(command)
    return float(output.strip().splitlines()[-1])


def _memory_probe(arm: str, model_shape: dict, batch_size: int, seq_len: int, steps: int) -> None:
    model, optimizer, batch = build_model_and_batch(model_shape, batch_size, seq_len)
    if arm != "none":
        all_arms(model_shape["vocab_size"])[arm]()(model)
    for _ in range(steps):
        _training_step(model, optimizer, batch)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def cost_main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", nargs="+", default=list(ARM_LABELS), choices=list(ARM_LABELS))
    parser.add_argument("--pairs", type=int, default=20, help="rounds, each one A/B pair per arm (the median is reported)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--bf16", action="store_true", help="autocast the steps to bfloat16")
    parser.add_argument("--sync_check", action="store_true", help="CUDA: fail on any host sync in arm forwards")
    parser.add_argument("--memory", action="store_true", help="peak memory per arm, a fresh process each (CPU)")
    parser.add_argument("--skip_throughput", action="store_true")
    parser.add_argument("--compile", action="store_true", help="also SSE-SE's ratio with both models torch.compile'd")
    parser.add_argument("--skip_eager", action="store_true", help="skip the uncompiled arms (with --compile)")
    parser.add_argument("--tiny", action="store_true", help="a tiny model and few repeats: a smoke run")
    parser.add_argument("--num_hidden_layers", type=int, help="fewer (or more) layers than BERT-base's 12")
    parser.add_argument("--json", help="write the results as JSON here")
    parser.add_argument("--markdown", help="write the results as a markdown table here")
    parser.add_argument("--_memory_probe", help=argparse.SUPPRESS)
    parser.add_argument("--_steps", type=int, default=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    shape = TINY if args.tiny else BERT_BASE
    if args.num_hidden_layers:
        shape = {**shape, "num_hidden_layers": args.num_hidden_layers}
    if args._memory_probe:
        _memory_probe(args._memory_probe, shape, args.batch_size, args.seq_len, args._steps)
        return {}
    factories = all_arms(shape["vocab_size"])
    arms = {ARM_LABELS[name]: factories[name]() for name in args.arms}
    results = {
        "machine": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
            "bf16": args.bf16,
        },
        "model": "tiny" if args.tiny else f"bert-base shape ({shape['num_hidden_layers']} layers, hidden 768, vocab 30522)",
        "batch": f"{args.batch_size}x{args.seq_len}",
    }
    if not args.skip_throughput:
        results["swap_mtokens_per_s_one_thread"] = swap_throughput([(32, 128), (8, 512)], repeats=20 if args.tiny else 200)
    if not args.skip_eager:
        results["step_overhead"] = step_overhead(
            arms, shape, args.batch_size, args.seq_len, args.pairs, device=args.device, bf16=args.bf16,
            sync_check=args.sync_check,
        )
    if args.compile:
        results["compiled_step_overhead"] = compiled_step_overhead(
            shape, args.batch_size, args.seq_len, args.pairs, device=args.device, bf16=args.bf16
        )
    if args.sync_check:
        results["sync_check"] = "passed: no host-device sync in any arm's forward pass"
    if args.memory:
        results["peak_memory_mib"] = {"no regulariser": peak_memory(None, shape, args.batch_size, args.seq_len)}
        for name in args.arms:
            results["peak_memory_mib"][ARM_LABELS[name]] = peak_memory(name, shape, args.batch_size, args.seq_len)
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
    lines = []
    if "swap_mtokens_per_s_one_thread" in results:
        lines += ["| batch | SSE-SE (M tokens/s, 1 thread) | SSE-Graph (M tokens/s) | Graph / SE |", "|---|---|---|---|"]
        for shape, rates in results["swap_mtokens_per_s_one_thread"].items():
            ratio = rates["sse-graph"] / rates["sse-se"]
            lines.append(f"| {shape} | {rates['sse-se']:.1f} | {rates['sse-graph']:.1f} | {ratio:.2f} |")
        lines.append("")
    machine = results["machine"]
    lines += [
        f"Training step, {results['model']}, batch {results['batch']}, {machine['device']}"
        f"{' bf16' if machine['bf16'] else ''} ({machine['threads']} threads), torch {machine['torch']}:",
        "",
        "| arm | step (s) | baseline step (s) | ratio, median of pairs | 95% CI of the median | min / max "
        "| hook alone (ms) | ratio from hook alone | peak memory (MiB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    memory = results.get("peak_memory_mib", {})
    if memory:
        lines.append(f"| no regulariser | | | 1 | | | | 1 | {memory['no regulariser']:.0f} |")
    for name, row in results.get("step_overhead", {}).items():
        peak = f"{memory[name]:.0f}" if name in memory else "-"
        lines.append(
            f"| {name} | {row['arm_step_s']:.3f} | {row['base_step_s']:.3f} | {row['ratio_median']:.4f} "
            f"| {row['ratio_median_ci95'][0]:.4f} to {row['ratio_median_ci95'][1]:.4f} "
            f"| {row['ratio_min']:.3f} / {row['ratio_max']:.3f} | {row['hook_cost_ms']:.3f} "
            f"| {row['ratio_from_hook_cost']:.5f} | {peak} |"
        )
    if "step_overhead" not in results and not memory:
        lines = lines[:-4]  # no uncompiled arms: no table
    if "compiled_step_overhead" in results:
        row = results["compiled_step_overhead"]
        lines += [
            "",
            f"Under torch.compile (inductor, both models), SSE-SE p=0.1 against no SSE, {results['model']}, batch "
            f"{results['batch']}, {row['pairs']} pairs: step {row['arm_step_s']:.3f} s against {row['base_step_s']:.3f} s, "
            f"ratio {row['ratio_median']:.4f} (min {row['ratio_min']:.3f}, max {row['ratio_max']:.3f}).",
        ]
    if "sync_check" in results:
        lines += ["", f"Sync check: {results['sync_check']}."]
    return "\n".join(lines)


def run_in_fresh_process(arguments: list[str]) -> str:
    """Run `python -m recipes.evidence.benchmark ARGUMENTS` in a new process (this tree first on its path); its stdout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "recipes.evidence.benchmark", *arguments]
    return subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout


# ----- graph: kNN graph build and SSE-Graph swap throughput ----------------------------------------
GRAPH_DOC = """Benchmark SSE-Graph: kNN graph build time and peak memory, and swap throughput next to SSE-SE.

Runs offline on CPU. The build is timed in fresh subprocesses (peak memory = ru_maxrss rise during
the build, which sees torch's allocations, unlike tracemalloc); throughput runs on one thread, with
medians over repeats because other jobs may share the cores.

    python -m recipes.evidence.benchmark graph                 # BERT-base-shaped random table, k=10
    python -m recipes.evidence.benchmark graph --repeats 1 --no-minilm
"""

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
        command = ["graph", "--knn-worker", "--table", table, "--k", str(k), "--chunk-size", str(chunk_size)]
        if save and repeat == 0:
            command += ["--save", save]
        results.append(json.loads(run_in_fresh_process(command).strip().splitlines()[-1]))
    return results


def graph_throughput(graph: SSEGraph, p: float, repeats: int, calls: int) -> None:
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
            se.append(median_seconds(lambda: swap_uniform(ids, p, candidates, positions, generator), 1, warmup=1, calls=calls))
            gr.append(median_seconds(lambda: swap_graph(ids, p, graph, generator), 1, warmup=1, calls=calls))
        se_rate = ids.numel() / statistics.median(se) / 1e6
        gr_rate = ids.numel() / statistics.median(gr) / 1e6
        print(f"{batch:>3}x{length:<4}  {se_rate:8.1f}  {gr_rate:9.1f}  {gr_rate / se_rate:8.2f}")


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


def graph_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="benchmark graph", description=GRAPH_DOC)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3, help="kNN builds (each in a fresh process); timing repeats")
    parser.add_argument("--calls", type=int, default=200, help="swap calls per timing repeat")
    parser.add_argument("--p", type=float, default=0.1)
    parser.add_argument("--no-minilm", action="store_true", help="skip the real all-MiniLM-L6-v2 table")
    parser.add_argument("--knn-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--table", default="random", help=argparse.SUPPRESS)
    parser.add_argument("--save", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.knn_worker:
        knn_worker(args)
        return

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, k={args.k}, chunk_size={args.chunk_size}")
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "bert_knn.safetensors")
        report_build("kNN graph, random BERT-base-shaped table", time_build("random", args.k, args.chunk_size,
                                                                            args.repeats, save=path))
        model = None if args.no_minilm else optional_checkpoint_dir()
        if model is not None:
            report_build("kNN graph, all-MiniLM-L6-v2 word embeddings",
                         time_build(model, args.k, args.chunk_size, args.repeats))
        graph = SSEGraph.load(path)
    graph_throughput(graph, args.p, max(args.repeats, 5), args.calls)


# ----- recipe: run_glue's own training throughput, SSE on against off ----------------------------------
RECIPE_DOC = """"""


def run_arguments(model_dir: str, output_dir: str, sse_on: bool, args: argparse.Namespace) -> list[str]:
    return [
        "--model_name_or_path", model_dir,
        "--train_file", TRAIN_FILE,
        "--output_dir", output_dir, "--overwrite_output_dir",
        "--do_train",
        "--max_steps", str(args.max_steps),
        "--per_device_train_batch_size", str(args.batch_size),
        "--max_seq_length", str(args.seq_length), "--pad_to_max_length",
        "--learning_rate", "1e-4",
        "--save_strategy", "no",
        "--logging_steps", str(args.max_steps),
        "--report_to", "none",
        "--log_level", "error",
        "--disable_tqdm", "True",  # keeps the A/B output readable; the recipes themselves keep their bars
        "--dataloader_pin_memory", "False",
        "--seed", "42",
        *(["--sse_p", str(args.sse_p)] if sse_on else ["--sse", "False"]),
    ]  # fmt: skip


def recipe_hook_cost(model_dir: str, texts: list[str], args: argparse.Namespace, rounds: int = 7) -> dict[str, float]:
    """What SSE adds to one training step, measured apart from the noise of whole runs.

    Times the embedding lookup of one padded batch with and without the SSE hook (interleaved rounds,
    medians), and one full training step (forward, backward, AdamW) without it. The estimated throughput
    ratio is step / (step + hook cost).
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).train()
    batch = tokenizer(texts[: args.batch_size], padding="max_length", truncation=True, max_length=args.seq_length,
                      return_tensors="pt")  # fmt: skip
    batch["labels"] = torch.zeros(len(batch["input_ids"]), dtype=torch.long)
    embedding, ids = model.get_input_embeddings(), batch["input_ids"]
    config = SSEConfig(p=args.sse_p)
    hook = max(0.0, isolated_hook_cost(
        lambda: patch_model(model, config, tokenizer=tokenizer).remove, lambda: embedding(ids), repeats=1, rounds=rounds,
        calls=100,
    ))  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()

    step_s = median_seconds(step, rounds, warmup=2)
    return {"hook_ms": hook * 1e3, "step_ms": step_s * 1e3, "estimated_ratio": step_s / (step_s + hook)}


def recipe_main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="benchmark recipe", description=RECIPE_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--max_steps", type=int, default=30)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seq_length", type=int, default=128)
    parser.add_argument("--hidden_size", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--sse_p", type=float, default=0.1)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's); 1 is steadier on a busy machine")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="sse-ab-") as root:
        texts = training_sentences()
        model_dir = build_tiny_bert(
            os.path.join(root, "model"), texts, vocab_size=400, hidden_size=args.hidden_size,
            num_hidden_layers=args.layers, num_attention_heads=max(1, args.hidden_size // 64),
            max_position_embeddings=max(128, args.seq_length),
        )  # fmt: skip

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
            print(f"pair {pair + 1}: off {values[False]:.1f}  on {values[True]:.1f} samples/s  ratio {ratios[-1]:.4f}", flush=True)

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
        f"\nSSE throughput A/B (run_glue, BERT hidden {args.hidden_size} x {args.layers} layers, batch {args.batch_size}, "
        f"seq {args.seq_length}, {args.max_steps} steps, p={args.sse_p}, {args.pairs} interleaved pairs, "
        f"{torch.get_num_threads()} CPU threads)\n"
        f"median train samples/s: off {result['median_off']:.1f}, on {result['median_on']:.1f}\n"
        f"ratio on/off: {result['ratio_of_medians']:.4f} (median of medians); {result['median_pair_ratio']:.4f} "
        "(median of per-pair ratios)\n"
        f"isolated: the SSE hook adds {isolated['hook_ms']:.3f} ms to a {isolated['step_ms']:.1f} ms training step "
        f"-> estimated ratio {isolated['estimated_ratio']:.4f}"
    )
    return {**result, **isolated}


SUBCOMMANDS = {"cost": cost_main, "graph": graph_main, "recipe": recipe_main}


def main(argv: list[str] | None = None):
    """`benchmark [cost|graph|recipe] OPTIONS`; without a subcommand, `cost` (the per-arm cost of SSE)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:])
    return cost_main(argv)


if __name__ == "__main__":
    main()
