"""What SSE costs in training: step-time ratios against no regulariser, swap throughput and peak memory.

Overhead: one model, trained in rounds; a round takes one step with no regulariser and one with each arm
(SSE-SE, SSE-Graph, label SSE, NEFTune as transformers implements it) in a random order; attaching and
detaching are not timed; the figure is the median over rounds ("pairs") of arm/baseline step time, so slow
drifts of the machine cancel out. Throughput: `swap_uniform` (SSE-SE) and `swap_graph` (SSE-Graph, 10
neighbours per token) on one CPU thread over a BERT-sized vocabulary (bench_swap), for 32x128 and 8x512 batches.

    python -m recipes.evidence.bench_cost                      # BERT-base shape, batch 16x128, 20 pairs per arm
    python -m recipes.evidence.bench_cost --arms sse-se --pairs 20 --json out.json --markdown out.md
    python -m recipes.evidence.bench_cost --memory             # also peak memory per arm (a fresh process each)
    python -m recipes.evidence.bench_cost --device cuda --bf16 --sync_check   # on a GPU
    python -m recipes.evidence.bench_cost --tiny               # seconds-long smoke run
    python -m recipes.evidence.bench_cost --compile --skip_eager --skip_throughput --pairs 10   # both arms compiled
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable

import torch
import transformers

from recipes.evidence.bench_swap import BERT_BASE, BERT_RESERVED, random_graph, swap_throughput, throughput_table
from recipes.evidence.timing import isolated_hook_cost, median_interval, peak_rss_mib, run_in_fresh_process
from sse_hf import SSEConfig, SSEGraph, patch_model

TINY = {**BERT_BASE, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
CLS_ID, SEP_ID = 101, 102  # BERT-base's [CLS] and [SEP]


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


def build_model_and_batch(model_shape: dict, batch_size: int, seq_length: int, device: str = "cpu"):
    """A BERT classifier from config, AdamW, and one fixed batch of real-looking ids on `device`."""
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(transformers.BertConfig(**model_shape)).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(BERT_RESERVED, model_shape["vocab_size"], (batch_size, seq_length))
    ids[:, 0], ids[:, -1] = CLS_ID, SEP_ID
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
    seq_length: int,
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
    model, optimizer, batch = build_model_and_batch(model_shape, batch_size, seq_length, device)

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
    model_shape: dict,
    batch_size: int,
    seq_length: int,
    pairs: int,
    warmup: int = 3,
    device: str = "cpu",
    bf16: bool = False,
    backend: str = "inductor",
) -> dict[str, float]:
    """Median step-time ratio of SSE-SE p=0.1 over no SSE, both under `torch.compile` (inductor), A/B interleaved.

    Hooks cannot be attached and detached per step here (that recompiles), so there are two identical models:
    one patched before compiling, one plain. Each round steps both in a fresh random order; the warm-up steps
    (compilation included) are not timed.
    """
    plain, plain_optimizer, batch = build_model_and_batch(model_shape, batch_size, seq_length, device)
    patched, patched_optimizer, _ = build_model_and_batch(model_shape, batch_size, seq_length, device)
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


def peak_memory(arm: str | None, model_shape: dict, batch_size: int, seq_length: int, steps: int = 3) -> float:
    """Peak resident memory (MiB) of a fresh process that trains `steps` steps with one arm (None: baseline)."""
    command = [
        "--memory_probe",
        arm or "none",
        "--batch_size",
        str(batch_size),
        "--seq_length",
        str(seq_length),
        "--memory_steps",
        str(steps),
        "--num_hidden_layers",
        str(model_shape["num_hidden_layers"]),
    ]
    if model_shape["hidden_size"] == TINY["hidden_size"]:
        command.append("--tiny")
    output = run_in_fresh_process("recipes.evidence.bench_cost", command)
    return float(output.strip().splitlines()[-1])


def _memory_probe(arm: str, model_shape: dict, batch_size: int, seq_length: int, steps: int) -> None:
    model, optimizer, batch = build_model_and_batch(model_shape, batch_size, seq_length)
    if arm != "none":
        all_arms(model_shape["vocab_size"])[arm]()(model)
    for _ in range(steps):
        _training_step(model, optimizer, batch)
    print(peak_rss_mib())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", nargs="+", default=list(ARM_LABELS), choices=list(ARM_LABELS))
    parser.add_argument("--pairs", type=int, default=20, help="rounds, each one A/B pair per arm (median reported)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--seq_length", type=int, default=128, help="tokens per example")
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
    parser.add_argument("--memory_probe", help=argparse.SUPPRESS)  # in the fresh process of peak_memory
    parser.add_argument("--memory_steps", type=int, default=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    shape = TINY if args.tiny else BERT_BASE
    if args.num_hidden_layers:
        shape = {**shape, "num_hidden_layers": args.num_hidden_layers}
    if args.memory_probe:
        _memory_probe(args.memory_probe, shape, args.batch_size, args.seq_length, args.memory_steps)
        return {}
    layers, hidden, vocab = shape["num_hidden_layers"], shape["hidden_size"], shape["vocab_size"]
    bert_base = f"bert-base shape ({layers} layers, hidden {hidden}, vocab {vocab})"
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
        "model": "tiny" if args.tiny else bert_base,
        "batch": f"{args.batch_size}x{args.seq_length}",
    }
    if not args.skip_throughput:
        repeats, calls = (1, 5) if args.tiny else (5, 40)
        results["swap_mtokens_per_s_one_thread"] = swap_throughput(random_graph(), repeats=repeats, calls=calls)
    if not args.skip_eager:
        results["step_overhead"] = step_overhead(
            arms,
            shape,
            args.batch_size,
            args.seq_length,
            args.pairs,
            device=args.device,
            bf16=args.bf16,
            sync_check=args.sync_check,
        )
    if args.compile:
        results["compiled_step_overhead"] = compiled_step_overhead(
            shape, args.batch_size, args.seq_length, args.pairs, device=args.device, bf16=args.bf16
        )
    if args.sync_check:
        results["sync_check"] = "passed: no host-device sync in any arm's forward pass"
    if args.memory:
        results["peak_memory_mib"] = {"no regulariser": peak_memory(None, shape, args.batch_size, args.seq_length)}
        for name in args.arms:
            results["peak_memory_mib"][ARM_LABELS[name]] = peak_memory(name, shape, args.batch_size, args.seq_length)
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
        lines += [*throughput_table(results["swap_mtokens_per_s_one_thread"]), ""]
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
            f"{results['batch']}, {row['pairs']} pairs: step {row['arm_step_s']:.3f} s against "
            f"{row['base_step_s']:.3f} s, "
            f"ratio {row['ratio_median']:.4f} (min {row['ratio_min']:.3f}, max {row['ratio_max']:.3f}).",
        ]
    if "sync_check" in results:
        lines += ["", f"Sync check: {results['sync_check']}."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
