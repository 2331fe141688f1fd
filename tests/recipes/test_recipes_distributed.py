"""The recipes under `accelerate launch` with 2 CPU processes (gloo), and the shipped accelerate config files."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from recipe_helpers import RECIPES, corpus_texts

CONFIGS = RECIPES / "accelerate_configs"
EXPECTED_CONFIGS = {
    "cpu.yaml": "NO",
    "multi_cpu.yaml": "MULTI_GPU",  # torchrun-style launching: the recipes then train on the CPU over gloo
    "single_gpu.yaml": "NO",
    "multi_gpu.yaml": "MULTI_GPU",
    "multi_node.yaml": "MULTI_GPU",
    "fsdp.yaml": "FSDP",
    "deepspeed_zero2.yaml": "DEEPSPEED",
    "deepspeed_zero3.yaml": "DEEPSPEED",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_two_cpu_processes(
    script: str, *arguments: str, config_file: str | None = None, processes: int | None = 2, env: dict | None = None
) -> subprocess.CompletedProcess:
    """`accelerate launch` with 2 processes on the CPU (gloo), whatever accelerators this machine has.

    `accelerate launch --cpu` starts one process unless MPI is configured; torchrun-style launching with
    --multi_gpu starts two, and on a machine with no accelerator the recipes then use the CPU and gloo.
    With `config_file` (a shipped config), it launches the way a user would: that file and `--num_processes
    processes` (none passed when None: the file's own count). `env` adds to the processes' environment.
    """
    if config_file is None:
        how = ["--multi_gpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    else:
        how = ["--config_file", str(CONFIGS / config_file)]
    if processes is not None:
        how += ["--num_processes", str(processes)]
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        *how,
        "--main_process_port",
        str(free_port()),
        str(RECIPES / script),
        *arguments,
    ]
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        **(env or {}),
    }
    # this tree's sse_hf, not whichever one the interpreter has installed
    env["PYTHONPATH"] = os.pathsep.join([str(RECIPES.parent), *filter(None, [os.environ.get("PYTHONPATH")])])
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def check_clean_end(done: subprocess.CompletedProcess) -> str:
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "Traceback" not in output and "destroy_process_group" not in output, output[-4000:]
    return output


def check_both_processes_swapped(output: str, results: dict, p: float) -> None:
    """Each process printed its own counts and swapped at about p; the record holds their sums and the global rate."""
    printed = r"\[process (\d) of 2\] SSE counts on this process, per role \[tokens seen, eligible, swapped\]: (.*)"
    # raw_decode reads the JSON and ignores whatever another process wrote after it on the same line
    counts = {
        int(rank): json.JSONDecoder().raw_decode(found)[0]["input"] for rank, found in re.findall(printed, output)
    }
    assert set(counts) == {0, 1}, output[-4000:]
    assert results["num_processes"] == 2
    rates = [swapped / eligible for _, eligible, swapped in counts.values()]
    assert all(abs(rate - p) < 0.15 for rate in rates), rates
    seen, eligible, swapped = (counts[0][i] + counts[1][i] for i in range(3))
    # the record sums both processes: more than either one's own
    assert results["sse_tokens_eligible"] == eligible > max(own[1] for own in counts.values())
    assert results["sse_tokens_seen"] == seen
    assert results["sse_tokens_swapped"] == swapped
    assert results["sse_swap_rate"] == pytest.approx(swapped / eligible) and abs(results["sse_swap_rate"] - p) < 0.1


def glue_arguments(model_dir: str, files: dict[str, str], out: Path, *extra: str, steps: int = 3) -> list[str]:
    """run_glue.py on the made-up sentiment files: `steps` steps of 8 examples a process, SSE at p = 0.3, then `extra`."""
    return [
        *("--model_name_or_path", model_dir, "--train_file", files["train"], "--validation_file", files["validation"]),
        *("--do_train", "--do_eval", "--max_steps", str(steps), "--per_device_train_batch_size", "8"),
        *("--max_seq_length", "32", "--report_to", "none", "--output_dir", str(out), "--sse_p", "0.3"),
        *("--dataloader_pin_memory", "False", *extra),
    ]


def test_run_glue_on_two_cpu_processes_with_the_shipped_multi_cpu_config(tmp_path, tiny_model_dir, sentiment_files):
    """The documented command, `accelerate launch --config_file multi_cpu.yaml recipes/run_glue.py ...`, trains on 2
    processes (cpu.yaml with --num_processes 2 would start one: accelerate ignores the count for distributed_type NO)."""
    out = tmp_path / "run"
    done = launch_two_cpu_processes(
        "run_glue.py",
        *glue_arguments(
            tiny_model_dir,
            sentiment_files,
            out,
            *("--test_file", sentiment_files["test"], "--do_predict", "--per_device_eval_batch_size", "5"),
            *("--save_strategy", "no"),
            steps=4,
        ),
        config_file="multi_cpu.yaml",
        processes=None,  # the file's own count: 2
    )
    output = check_clean_end(done)
    results = json.loads((out / "all_results.json").read_text())
    check_both_processes_swapped(output, results, 0.3)
    assert "Total train batch size (w. parallel, distributed & accumulation) = 16" in output  # 2 x 8: both trained
    # Gathered once: every validation and test example exactly once, though 24 and 16 do not split evenly in 5s.
    assert results["eval_samples"] == 24 and 0 <= results["eval_accuracy"] <= 1
    assert len((out / "predict_results_local.txt").read_text().splitlines()) == 1 + 16
    assert output.count("Wrote " + str(out / "all_results.json")) == 1


def test_run_glue_with_the_shipped_fsdp_config_on_two_cpu_processes(tmp_path, tiny_model_dir, sentiment_files):
    out = tmp_path / "fsdp"
    done = launch_two_cpu_processes(
        "run_glue.py",
        *glue_arguments(tiny_model_dir, sentiment_files, out, "--save_strategy", "no"),
        config_file="fsdp.yaml",
    )
    output = check_clean_end(done)
    results = json.loads((out / "all_results.json").read_text())
    check_both_processes_swapped(output, results, 0.3)
    assert "Total train batch size (w. parallel, distributed & accumulation) = 16" in output
    assert results["eval_samples"] == 24 and (out / "model.safetensors").is_file()
    assert "accelerate cannot shard on the CPU" in output  # said, not hidden: this is data parallel, not FSDP


def test_run_mlm_on_two_cpu_processes(tmp_path, tiny_model_dir):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(corpus_texts()[:200]) + "\n")
    out = tmp_path / "mlm"
    done = launch_two_cpu_processes(
        "run_mlm.py",
        "--model_name_or_path",
        tiny_model_dir,
        "--train_file",
        str(corpus),
        "--do_train",
        "--do_eval",
        "--max_steps",
        "3",
        "--per_device_train_batch_size",
        "4",
        "--max_seq_length",
        "32",
        "--save_strategy",
        "no",
        "--report_to",
        "none",
        "--output_dir",
        str(out),
        "--sse_p",
        "0.3",
        "--dataloader_pin_memory",
        "False",
    )
    output = check_clean_end(done)
    results = json.loads((out / "all_results.json").read_text())
    check_both_processes_swapped(output, results, 0.3)
    assert results["perplexity"] > 1 and (out / "model.safetensors").is_file()


def test_shipped_accelerate_configs_load_with_accelerate():
    from accelerate.commands.config.config_args import load_config_from_file

    assert {path.name for path in CONFIGS.glob("*.yaml")} >= set(EXPECTED_CONFIGS)
    for name, distributed_type in EXPECTED_CONFIGS.items():
        config = load_config_from_file(str(CONFIGS / name))
        assert config.distributed_type.value == distributed_type, name
        deepspeed = config.deepspeed_config or {}
        if "deepspeed_config_file" in deepspeed:
            ds_file = Path(RECIPES.parent / deepspeed["deepspeed_config_file"])
            stage = json.loads(ds_file.read_text())["zero_optimization"]["stage"]
            assert stage == int(name[-6]), name  # deepspeed_zero2.yaml -> stage 2
    assert load_config_from_file(str(CONFIGS / "cpu.yaml")).use_cpu is True
    assert load_config_from_file(str(CONFIGS / "fsdp.yaml")).fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"


def test_accelerate_launches_cpu_yaml_as_one_process_and_multi_cpu_yaml_as_two():
    """Why multi_cpu.yaml exists: accelerate's launcher starts a distributed_type NO config (cpu.yaml) as one process
    whatever --num_processes says; multi_cpu.yaml goes to torchrun's launcher with its 2 processes. Fails when
    accelerate changes either, so that recipes/README.md and the config comments are revisited."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    def decided(*options: str):
        args, _, _ = _validate_launch_command(launch_command_parser().parse_args([*options, "train.py"]))
        launched_by_torchrun = args.multi_gpu and not args.cpu
        return launched_by_torchrun, args.num_processes

    assert decided("--config_file", str(CONFIGS / "cpu.yaml"), "--num_processes", "2") == (False, 2)  # one process
    assert decided("--config_file", str(CONFIGS / "multi_cpu.yaml")) == (True, 2)
    assert decided("--config_file", str(CONFIGS / "multi_cpu.yaml"), "--num_processes", "3") == (True, 3)


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="deepspeed is not installed")
def test_run_glue_with_the_shipped_zero3_config_builds_the_knn_graph_of_the_whole_table(
    tmp_path, tiny_model_dir, sentiment_files
):
    """DeepSpeed ZeRO-3 on 2 CPU processes: the embedding weight is partitioned (size 0 outside a gather), and
    graph="knn" gathers it, so the graph kept in the checkpoint equals the one built from the unpartitioned model.
    The documented command as it is: the recipes keep DeepSpeed off their gloo-DDP fallback themselves (that fallback
    would meet a model already partitioned by zero.Init), and --ddp_backend gloo makes accelerate count 2 processes."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from sse_hf import SSEConfig, SSEGraph, patch_model

    out = tmp_path / "zero3"
    done = launch_two_cpu_processes(
        "run_glue.py",
        *glue_arguments(
            tiny_model_dir,
            sentiment_files,
            out,
            *("--save_strategy", "steps", "--save_steps", "3", "--sse_graph", "knn", "--sse_graph_k", "3"),
            *("--ddp_backend", "gloo"),
        ),
        config_file="deepspeed_zero3.yaml",
        env={"DS_ACCELERATOR": "cpu"},
    )
    output = check_clean_end(done)
    assert "Detected DeepSpeed ZeRO-3" in output
    assert (out / "checkpoint-3" / "global_step3").is_dir()  # DeepSpeed's own checkpoint: the engine trained
    results = json.loads((out / "all_results.json").read_text())
    check_both_processes_swapped(output, results, 0.3)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    whole = patch_model(model, SSEConfig(p=0.3, graph="knn", graph_k=3), tokenizer=tokenizer).graph
    kept = SSEGraph.load(out / "checkpoint-3" / "sse_graph.safetensors")
    assert torch.equal(kept.offsets, whole.offsets) and torch.equal(kept.neighbors, whole.neighbors)
    assert torch.allclose(kept.cumulative_weights, whole.cumulative_weights)


def test_one_process_started_for_several_says_so_and_deepspeed_on_cpu_asks_for_gloo(monkeypatch, caplog):
    """The environment accelerate's single-process launcher leaves (MASTER_ADDR, no WORLD_SIZE) gets a warning naming
    multi_cpu.yaml; DeepSpeed on a machine with no GPU without --ddp_backend is refused, saying what to add."""
    from recipes.kit import run_setup

    for name in ("WORLD_SIZE", "LOCAL_RANK", "ACCELERATE_USE_DEEPSPEED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    with caplog.at_level("WARNING", logger="recipes.kit.run_setup"):
        assert run_setup.use_cpu_when_launched_without_accelerator() is False
    assert "multi_cpu.yaml" in caplog.text and "ignores --num_processes" in caplog.text
    monkeypatch.delenv("MASTER_ADDR")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    assert run_setup.use_cpu_when_launched_without_accelerator() is False and "ACCELERATE_USE_CPU" not in os.environ
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="--ddp_backend gloo"):
            run_setup.require_deepspeed_backend(None)
    run_setup.require_deepspeed_backend("gloo")
