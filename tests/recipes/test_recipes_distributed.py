"""The recipes under `accelerate launch` with 2 CPU processes (gloo), and the shipped accelerate config files."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from recipe_helpers import RECIPES, corpus_texts

CONFIGS = RECIPES / "accelerate_configs"
EXPECTED_CONFIGS = {
    "cpu.yaml": "NO",
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
    script: str, *arguments: str, config_file: str | None = None
) -> subprocess.CompletedProcess:
    """`accelerate launch` with 2 processes on the CPU (gloo), whatever accelerators this machine has.

    `accelerate launch --cpu` starts one process unless MPI is configured; torchrun-style launching with
    --multi_gpu starts two, and on a machine with no accelerator the recipes then use the CPU and gloo.
    With `config_file` (a shipped config), it launches the way a user would: that file and --num_processes 2.
    """
    if config_file is None:
        how = ["--multi_gpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    else:
        how = ["--config_file", str(CONFIGS / config_file)]
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        *how,
        "--num_processes",
        "2",
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


def test_run_glue_on_two_cpu_processes(tmp_path, tiny_model_dir, sentiment_files):
    out = tmp_path / "run"
    done = launch_two_cpu_processes(
        "run_glue.py",
        "--model_name_or_path",
        tiny_model_dir,
        "--train_file",
        sentiment_files["train"],
        "--validation_file",
        sentiment_files["validation"],
        "--test_file",
        sentiment_files["test"],
        "--do_train",
        "--do_eval",
        "--do_predict",
        "--max_steps",
        "4",
        "--per_device_train_batch_size",
        "8",
        "--per_device_eval_batch_size",
        "5",
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
    assert "Total train batch size (w. parallel, distributed & accumulation) = 16" in output  # 2 x 8: both trained
    # Gathered once: every validation and test example exactly once, though 24 and 16 do not split evenly in 5s.
    assert results["eval_samples"] == 24 and 0 <= results["eval_accuracy"] <= 1
    assert len((out / "predict_results_local.txt").read_text().splitlines()) == 1 + 16
    assert output.count("Wrote " + str(out / "all_results.json")) == 1


def test_run_glue_with_the_shipped_fsdp_config_on_two_cpu_processes(tmp_path, tiny_model_dir, sentiment_files):
    out = tmp_path / "fsdp"
    done = launch_two_cpu_processes(
        "run_glue.py",
        "--model_name_or_path",
        tiny_model_dir,
        "--train_file",
        sentiment_files["train"],
        "--validation_file",
        sentiment_files["validation"],
        "--do_train",
        "--do_eval",
        "--max_steps",
        "3",
        "--per_device_train_batch_size",
        "8",
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
