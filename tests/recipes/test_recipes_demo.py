"""recipes/demo.py: the offline end-to-end run of both arms, and its table."""

from __future__ import annotations

import pytest

from recipes import demo


def test_demo_runs_baseline_and_sse_and_prints_the_table(tmp_path, capsys, recwarn):
    results = demo.main(["--output_dir", str(tmp_path / "demo"), "--epochs", "0.1", "--sse_p", "0.1"])
    assert not [w for w in recwarn if "do nothing" in str(w.message)]  # a newcomer's first run warns of nothing
    assert list(results) == ["baseline", "sse p=0.1"]
    assert results["baseline"]["sse_swap_rate"] == 0.0 and results["sse p=0.1"]["sse_swap_rate"] > 0
    printed = capsys.readouterr().out
    assert "| baseline |" in printed and "| sse p=0.1 |" in printed and "demo wall time" in printed
    assert (tmp_path / "demo" / "sse" / "all_results.json").is_file()


@pytest.mark.parametrize("option, value", [("--sse_p", "0"), ("--sse_p", "2"), ("--epochs", "0"), ("--epochs", "-1")])
def test_demo_numeric_options_are_validated_naming_the_option(capsys, option, value):
    with pytest.raises(SystemExit):
        demo.main([option, value])
    assert f"{option} must be" in capsys.readouterr().err
