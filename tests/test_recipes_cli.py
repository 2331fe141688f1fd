"""What a new user meets first on the recipes' command line: the --help layout and a missing model path."""

from __future__ import annotations

import pytest

from recipes import run_glue
from recipes import run_mlm


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
