"""What a new user meets first on the recipes' command line: the --help layout, a missing model path, and Hub names
offline or a missing folder, which end in one line with the hint instead of a traceback."""

from __future__ import annotations

import runpy
import sys

import pytest

from recipe_helpers import RECIPES
from recipes import run_glue, run_mlm


def test_help_puts_the_sse_options_under_their_own_heading_first(capsys):
    with pytest.raises(SystemExit):
        run_glue.main(["--help"])
    text = capsys.readouterr().out
    sse, general = text.index("\nStochastic Shared Embeddings (SSE) options:"), text.index("\noptions:")
    assert sse < text.index("\n  --sse_p SSE_P") < general < text.index("\n  --learning_rate LEARNING_RATE")
    no_sse = text[text.index("  --no_sse") :].split("\n  --")[0]
    assert "Turn off --sse (the same as --sse False)" in no_sse and "Apply Stochastic" not in no_sse


def test_help_lists_the_search_options_in_the_sse_group(capsys):
    with pytest.raises(SystemExit):
        run_glue.main(["--help"])
    text = capsys.readouterr().out
    sse, general = text.index("\nStochastic Shared Embeddings (SSE) options:"), text.index("\noptions:")
    assert text.count("Stochastic Shared Embeddings (SSE) options:") == 1
    assert sse < text.index("\n  --sse_seed SSE_SEED") < text.index("\n  --search_sse SEARCH_SSE") < general
    assert sse < text.index("\n  --search_held_out SEARCH_HELD_OUT") < text.index("\n  --search_backend") < general


@pytest.mark.parametrize("script", ["run_glue.py", "run_mlm.py"])
@pytest.mark.parametrize(
    "argv, error",
    [
        (["--sse_p", "10"], "error: argument --sse_p: must be in [0, 1], got 10.0. Typical values are 0.01 to 0.2."),
        (["--sse_graph_k", "4.5"], "error: argument --sse_graph_k: must be an integer, got '4.5'."),
        (["--sse", "maybe"], "error: argument --sse: Truthy value expected: got maybe"),
    ],
)
def test_a_bad_sse_option_is_argparses_usage_and_one_error_line(script, argv, error, tmp_path, monkeypatch, capsys):
    """Exit status 2 and no traceback, as for any other option argparse refuses; the option named as typed."""
    common = ["--model_name_or_path", "model", "--train_file", "x.txt", "--output_dir", str(tmp_path)]
    assert _run_as_script(RECIPES / script, [*common, *argv], monkeypatch) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"usage: {script} [--option value ...]"), lines
    assert lines[1] == f"{script}: {error}" or lines[1].startswith(f"{script}: {error}"), lines


@pytest.mark.parametrize("main", [run_glue.main, run_mlm.main], ids=["run_glue", "run_mlm"])
@pytest.mark.parametrize("path", ["./no-such-model", "/no/such/model", "no/such/model/"])
def test_a_missing_local_model_path_says_it_does_not_exist(main, path, tmp_path):
    with pytest.raises(FileNotFoundError, match=f"--model_name_or_path '{path}': no such file or directory"):
        main(["--model_name_or_path", path, "--train_file", "x.csv", "--output_dir", str(tmp_path)])


def _run_as_script(path, argv, monkeypatch) -> str:
    """Run a recipe file as `python path argv...` would (its `__main__` block), in-process; its SystemExit code."""
    monkeypatch.setattr(sys, "argv", [str(path), *argv])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(path), run_name="__main__")
    return exit_.value.code


@pytest.mark.parametrize(
    "script, argv, hint",
    [
        ("run_glue.py", ["--task_name", "rte"], "Use local files instead: --train_file train.csv --validation_file"),
        (
            "run_mlm.py",
            ["--dataset_name", "wikitext", "--dataset_config_name", "wikitext-2-raw-v1"],
            "Use local files instead: --train_file corpus.txt",
        ),
    ],
    ids=["run_glue-task", "run_mlm-dataset"],
)
def test_a_hub_name_offline_ends_in_one_line_with_the_hint(script, argv, hint, tiny_model_dir, tmp_path, monkeypatch):
    argv = ["--model_name_or_path", tiny_model_dir, *argv, "--output_dir", str(tmp_path / "out")]
    message = _run_as_script(RECIPES / script, argv, monkeypatch)
    assert isinstance(message, str) and "\n" not in message, message  # a message, not a traceback
    assert message.startswith("error: Could not load the Hub data set") and "Offline mode is on" in message
    assert hint in message


def test_compare_collect_with_a_missing_folder_ends_in_one_line(tmp_path, monkeypatch):
    missing = tmp_path / "no-such-runs"
    message = _run_as_script(
        RECIPES / "evidence" / "compare.py",
        ["collect", str(missing), "--output_dir", str(tmp_path / "report")],
        monkeypatch,
    )
    assert message == (
        f"error: {str(missing)!r} is not a directory. Pass run directories (a run's --output_dir, "
        "which holds all_results.json) or folders above them."
    )
