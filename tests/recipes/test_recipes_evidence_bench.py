"""recipes/evidence/bench_*.py: every benchmark tool runs end to end and reports every arm (no timing is asserted)."""

import json

import pytest

from recipes.evidence import bench_cost, bench_graph, bench_recipe
from recipes.evidence.bench_swap import BERT_RESERVED, random_graph, swap_throughput


def test_benchmark_smoke_run_reports_every_arm(tmp_path):
    out = tmp_path / "bench.json"
    results = bench_cost.main(
        [
            "--tiny",
            "--pairs",
            "1",
            "--batch_size",
            "2",
            "--seq_length",
            "16",
            "--json",
            str(out),
            "--markdown",
            str(tmp_path / "bench.md"),
        ]
    )
    assert set(results["step_overhead"]) == set(bench_cost.ARM_LABELS.values())
    assert all(row["ratio_median"] > 0 and row["pairs"] == 1 for row in results["step_overhead"].values())
    assert set(results["swap_mtokens_per_s_one_thread"]) == {"32x128", "8x512"}
    assert json.loads(out.read_text())["batch"] == "2x16"
    assert "NEFTune" in (tmp_path / "bench.md").read_text()


def test_arms_attach_and_detach_cleanly():
    model, _, batch = bench_cost.build_model_and_batch(bench_cost.TINY, 2, 8)
    for name, factory in bench_cost.all_arms(bench_cost.TINY["vocab_size"]).items():
        detach = factory()(model)
        detach()
        hooks = sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules())
        assert hooks == 0, name
        assert not hasattr(model.get_input_embeddings(), "neftune_noise_alpha")


def test_compiled_overhead_runs_both_models_compiled():
    row = bench_cost.compiled_step_overhead(bench_cost.TINY, 2, 8, pairs=1, warmup=1, backend="eager")
    assert row["pairs"] == 1 and row["ratio_median"] > 0 and row["base_step_s"] > 0


def test_throughput_ab_reports_a_ratio(capsys):
    result = bench_recipe.main(
        ["--pairs", "1", "--max_steps", "2", "--hidden_size", "32", "--seq_length", "16", "--batch_size", "4"]
    )
    assert result["ratio_of_medians"] > 0 and result["median_off"] > 0 and result["median_on"] > 0
    assert 0 < result["estimated_ratio"] <= 1 and result["step_ms"] > 0
    assert "ratio on/off" in capsys.readouterr().out


def test_the_swap_throughput_of_both_sampling_functions_is_measured_one_way():
    graph = random_graph(vocab_size=BERT_RESERVED + 500, k=3)
    rates = swap_throughput(graph, repeats=1, calls=2, shapes=((4, 16), (2, 8)))
    assert set(rates) == {"4x16", "2x8"}
    assert all(set(row) == {"sse-se", "sse-graph"} and min(row.values()) > 0 for row in rates.values())


def test_the_graph_tool_builds_in_a_fresh_process_and_reports_the_build(capsys, tmp_path):
    """The kNN worker (what `bench_graph` runs in each fresh process) on the real all-MiniLM-L6-v2 table when it
    is installed; the BERT-sized random table takes minutes on two cores, so it is not built here."""
    from recipes.evidence.checkpoint import optional_checkpoint_dir

    model = optional_checkpoint_dir()
    if model is None:
        pytest.skip("the all-MiniLM-L6-v2 checkpoint package is not installed")
    save = tmp_path / "knn.safetensors"
    runs = bench_graph.time_build(model, k=3, chunk_size=4096, repeats=1, save=str(save))
    assert len(runs) == 1 and runs[0]["edges"] > 0 and runs[0]["seconds"] > 0 and save.is_file()
    bench_graph.report_build("kNN graph", runs)
    assert "kNN graph: table" in capsys.readouterr().out


def test_the_median_interval_is_the_binomial_order_statistics_and_every_pair_is_kept():
    import math

    from recipes.evidence.timing import median_interval

    # n = 20: P(6th <= median <= 15th) = 1 - 2 P(B <= 5) = 0.9586, the narrowest pair at >= 95%
    assert median_interval([float(v) for v in range(1, 21)]) == (6.0, 15.0)
    assert median_interval([3.0, 1.0, 2.0, 5.0, 4.0, 6.0]) == (1.0, 6.0)  # n = 6: only the extremes reach 95%
    assert all(math.isnan(v) for v in median_interval([1.0, 2.0, 3.0]))
    results = bench_cost.main(
        ["--tiny", "--pairs", "6", "--batch_size", "2", "--seq_length", "8", "--skip_throughput"]
    )
    row = results["step_overhead"]["SSE-SE p=0.1"]
    assert len(row["ratios"]) == 6  # every pair's ratio is kept (5 decimals)
    assert row["ratio_median_ci95"] == pytest.approx([min(row["ratios"]), max(row["ratios"])], abs=1e-5)
