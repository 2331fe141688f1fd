"""recipes.kit.training: one SSE config per run, the callback only when SSE swaps something, the run's record."""

import json

from recipes.kit.run_setup import parse_args
from recipes.kit.sse_args import SSEArguments
from recipes.kit.training import finish, sse_for_run
from sse_hf import SSECallback


def _sse(*argv):
    (args,) = parse_args([SSEArguments], list(argv))
    return sse_for_run(args, tokenizer=None)


def test_the_callback_and_the_record_come_from_one_config():
    callback, record = _sse("--sse_p", "0.2", "--sse_p_schedule", "adaptive")
    assert isinstance(callback, SSECallback) and callback.config.p == 0.2 and callback.config.p_schedule == "adaptive"
    assert record["sse_enabled"] is True and record["sse_p"] == 0.2 and record["sse_p_schedule"] == "adaptive"


def test_no_callback_when_sse_is_off_or_swaps_nothing():
    for argv in (["--sse", "False"], ["--sse_p", "0"], ["--no_sse"]):
        callback, record = _sse(*argv)
        assert callback is None and record["sse_enabled"] is False, argv
    callback, record = _sse("--sse_p", "0", "--sse_label_p", "0.1")  # label SSE alone still swaps
    assert callback is not None and record["sse_enabled"] is True


def test_finish_adds_the_wall_time_and_writes_all_results(tmp_path):
    results = finish(str(tmp_path), {"task": "local"}, started=0.0)
    assert results["wall_time_s"] > 0
    assert json.loads((tmp_path / "all_results.json").read_text()) == results
