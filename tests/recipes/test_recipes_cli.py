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
