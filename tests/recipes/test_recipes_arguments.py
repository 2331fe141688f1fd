"""The recipes' arguments: a JSON or YAML file means what the same text means on the command line (switches strictly),
a bad value ends in argparse's usage and one error line naming the option (or the file and its key), a
--max_seq_length with no room for text is refused, and options that do nothing under the others are a warning."""

from __future__ import annotations

import json
import warnings

import pytest
import yaml
from transformers import TrainingArguments

from recipe_helpers import fast_args, read_results
from recipes import run_glue, run_mlm
from recipes.kit import run_setup
from recipes.kit.sse_search import SearchArguments
from sse_hf import SSEArguments

GLUE_ARGUMENTS = (
    run_glue.ModelArguments,
    run_glue.DataTrainingArguments,
    SSEArguments,
    SearchArguments,
    run_setup.OutputArguments,
    TrainingArguments,
)


def _write(path, arguments: dict) -> str:
    """An arguments file on disk, JSON or YAML by its name."""
    path.write_text(json.dumps(arguments) if path.suffix == ".json" else yaml.safe_dump(arguments))
    return str(path)


def _base(tmp_path, tiny_model_dir, sentiment_files) -> dict:
    return {
        "model_name_or_path": tiny_model_dir,
        "train_file": sentiment_files["train"],
        "output_dir": str(tmp_path / "out"),
    }


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
@pytest.mark.parametrize("false", ["false", "False", "0", "no"])
def test_a_switch_written_as_text_in_a_file_parses_strictly(tmp_path, tiny_model_dir, sentiment_files, suffix, false):
    """`bool("false")` is True: "sse": "false" used to turn SSE on, "overwrite_output_dir": "false" to write over a
    run, "trust_remote_code": "false" to trust remote code."""
    switches = ("sse", "do_train", "overwrite_output_dir", "trust_remote_code", "pad_to_max_length", "use_cpu")
    arguments = {**_base(tmp_path, tiny_model_dir, sentiment_files), **dict.fromkeys(switches, false)}
    parsed = run_setup.parse_args(GLUE_ARGUMENTS, [_write(tmp_path / f"args{suffix}", arguments)])
    values = {name: getattr(args, name) for args in parsed for name in switches if hasattr(args, name)}
    assert values == dict.fromkeys(switches, False)
    assert not parsed[2].is_active()


@pytest.mark.parametrize(
    "key, value, error",
    [
        ("sse", "maybe", "sse must be true or false (or yes/no, 1/0), got 'maybe'"),
        ("do_train", 2, "do_train must be true or false (or yes/no, 1/0), got 2"),
        ("max_steps", True, "max_steps must be an integer, got True"),
        ("max_seq_length", 32.5, "max_seq_length must be an integer, got 32.5"),
        ("max_seq_length", "many", "max_seq_length must be an integer, got the text 'many'"),
        ("learning_rate", "fast", "learning_rate must be a number, got the text 'fast'"),
        ("search_held_out", [0.2], "search_held_out must be a number, got [0.2]"),
        ("sse_p", 10, r"sse_p: must be in [0, 1], got 10"),
        ("sse_seed", True, "sse_seed: must be an integer or None, got True"),
        ("sse_pp", 0.1, "'sse_pp' is no argument of this recipe; did you mean sse_p"),
    ],
)
def test_a_bad_value_in_a_file_is_refused_naming_the_file_and_its_key(
    tmp_path, tiny_model_dir, sentiment_files, capsys, key, value, error
):
    path = _write(tmp_path / "args.json", {**_base(tmp_path, tiny_model_dir, sentiment_files), key: value})
    with pytest.raises(SystemExit) as exit_:
        run_setup.parse_args(GLUE_ARGUMENTS, [path])
    assert exit_.value.code == 2
    assert f"error: arguments file {path}: {error}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text, error",
    [("[1, 2]", "must hold an object of argument names and values, got list"), ("{", "is not valid JSON")],
)
def test_a_file_that_is_no_object_of_arguments_is_refused_naming_it(tmp_path, capsys, text, error):
    (tmp_path / "args.json").write_text(text)
    with pytest.raises(SystemExit):
        run_setup.parse_args(GLUE_ARGUMENTS, [str(tmp_path / "args.json")])
    assert f"args.json: {error}" in capsys.readouterr().err


def test_text_values_in_a_file_read_as_on_the_command_line(tmp_path, tiny_model_dir, sentiment_files):
    arguments = {
        **_base(tmp_path, tiny_model_dir, sentiment_files),
        "sse_p": "0.1",
        "max_seq_length": "32",
        "learning_rate": "1e-3",
        "search_sse": '{"p": [0, 0.1]}',
        "search_held_out": "0.3",
        "sse_exclude_token_ids": "[20]",
    }
    model, data, sse, search, _, training = run_setup.parse_args(
        GLUE_ARGUMENTS, [_write(tmp_path / "args.json", arguments)]
    )
    assert (sse.to_config().p, sse.to_config().exclude_token_ids) == (0.1, [20])
    assert (data.max_seq_length, training.learning_rate, search.search_held_out) == (32, 1e-3, 0.3)


def test_a_yaml_number_pyyaml_reads_as_text_is_the_number(tmp_path, tiny_model_dir, sentiment_files):
    """PyYAML (YAML 1.1) reads `1e-3` as the text '1e-3': it used to reach TrainingArguments as text and crash."""
    path = tmp_path / "args.yaml"
    path.write_text(
        yaml.safe_dump(_base(tmp_path, tiny_model_dir, sentiment_files)) + "learning_rate: 1e-3\nsse_p: 1e-1\n"
    )
    parsed = run_setup.parse_args(GLUE_ARGUMENTS, [str(path)])
    assert parsed[-1].learning_rate == 1e-3 and parsed[2].to_config().p == 0.1


def test_sse_false_in_a_json_file_trains_the_plain_baseline(tmp_path, tiny_model_dir, sentiment_files):
    arguments = {
        **_base(tmp_path, tiny_model_dir, sentiment_files),
        "sse": "false",
        "do_train": True,
        "max_steps": 2,
        "per_device_train_batch_size": 8,
        "max_seq_length": 32,
        "report_to": "none",
        "save_strategy": "no",
    }
    results = run_glue.main([_write(tmp_path / "args.json", arguments)])
    assert results["sse_enabled"] is False and results["sse_tokens_seen"] == 0


@pytest.mark.parametrize(
    "columns, length, shortest",
    [(None, "1", 3), (None, "2", 3), ("sentence1,sentence2", "2", 5), ("sentence1,sentence2", "4", 5)],
)
def test_run_glue_refuses_a_max_seq_length_with_no_room_for_text(tmp_path, tiny_model_dir, columns, length, shortest):
    """BERT adds [CLS] and [SEP] (3 for a pair): below that, truncation gave up and trained on whole inputs."""
    rows = [{"sentence1": "the movie was good", "sentence2": "the plot was dull", "label": i % 2} for i in range(8)]
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(row) + "\n" for row in rows))
    argv = ["--model_name_or_path", tiny_model_dir, "--train_file", str(train), "--do_train"]
    argv += ["--text_column_names", columns or "sentence1"]
    with pytest.raises(ValueError, match=rf"--max_seq_length {length} leaves no room for text: .* {shortest} is the"):
        run_glue.main([*argv, *fast_args(tmp_path / "out", steps=1), "--max_seq_length", length])


def test_run_glue_trains_at_the_shortest_max_seq_length(tmp_path, tiny_model_dir, sentiment_files):
    argv = ["--model_name_or_path", tiny_model_dir, "--train_file", sentiment_files["train"], "--do_train"]
    results = run_glue.main([*argv, *fast_args(tmp_path / "out", steps=1), "--max_seq_length", "3"])
    assert results["train_samples"] == 64


def test_run_mlm_line_by_line_refuses_a_max_seq_length_with_no_room_for_text(tmp_path, tiny_model_dir):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the movie was good and the plot was fun\n" * 20)
    argv = ["--model_name_or_path", tiny_model_dir, "--train_file", str(corpus), "--line_by_line", "--do_train"]
    with pytest.raises(ValueError, match=r"--max_seq_length 1 leaves no room for text: .* 2 special tokens"):
        run_mlm.main([*argv, *fast_args(tmp_path / "out", steps=1), "--max_seq_length", "1"])


@pytest.mark.parametrize(
    "extra, warned",
    [
        (["--pad_to_max_length"], "--pad_to_max_length does nothing: without --line_by_line"),
        (["--tokenizer_vocab_size", "100"], "--tokenizer_vocab_size does nothing: a tokenizer is loaded"),
    ],
)
def test_run_mlm_warns_about_options_that_do_nothing(tmp_path, tiny_model_dir, extra, warned):
    argv = ["--model_name_or_path", tiny_model_dir, "--train_file", "corpus.txt", "--output_dir", str(tmp_path)]
    with pytest.warns(UserWarning, match=warned):
        run_setup.parse_args(
            (run_mlm.ModelArguments, run_mlm.DataTrainingArguments, SSEArguments, TrainingArguments), [*argv, *extra]
        )


def test_run_glue_warns_when_sse_is_off_but_sse_options_are_given(tmp_path, tiny_model_dir, sentiment_files):
    argv = ["--model_name_or_path", tiny_model_dir, "--train_file", sentiment_files["train"], "--do_train"]
    with pytest.warns(UserWarning, match=r"--sse_p 0.2 \(SSE is off: --sse False\)"):
        results = run_glue.main([*argv, *fast_args(tmp_path / "out", steps=1), "--sse", "False", "--sse_p", "0.2"])
    assert read_results(tmp_path / "out")["sse_enabled"] is False and results["sse_tokens_seen"] == 0


def test_a_plain_run_raises_no_argument_warning(tmp_path, tiny_model_dir, sentiment_files):
    argv = ["--model_name_or_path", tiny_model_dir, "--train_file", sentiment_files["train"], "--do_train"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        run_setup.parse_args(GLUE_ARGUMENTS, [*argv, *fast_args(tmp_path / "out"), "--sse_p", "0.1"])
