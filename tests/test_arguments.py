"""SSEArguments: each option read the same from a command line, a dict (a JSON or YAML file) and a search's printout;
a bad value is an error naming the option typed; options that do nothing under the others are a warning."""

import json
import shlex
import warnings

import pytest
from transformers import HfArgumentParser

from sse_hf import SSEArguments, SSEConfig
from sse_hf.arguments import SSEArgumentError


def _parse(*argv: str):
    (arguments,) = HfArgumentParser(SSEArguments).parse_args_into_dataclasses(args=list(argv))
    return arguments


@pytest.mark.parametrize(
    "option, value, reason",
    [
        ("--sse_p", "10", r"must be in \[0, 1\], got 10"),
        ("--sse_p", "abc", "must be a number, got 'abc'"),
        ("--sse_decoder_p", "2", r"must be in \[0, 1\]"),
        ("--sse_graph", "KNN", "write 'knn'"),
        ("--sse_graph_k", "0", "must be a positive integer"),
        ("--sse_graph_k", "4.5", "must be an integer, got '4.5'"),
        ("--sse_label_p", "-1", r"must be in \[0, 1\]"),
        ("--sse_table_p", '{"token_type_embeddings": 2}', r"\['token_type_embeddings'\] must be in \[0, 1\]"),
        ("--sse_p_warmup_ratio", "1", r"must be a number in \[0, 1\)"),
        ("--sse_adaptive_start", "0", r"must be a fraction in \(0, 1\]"),
        ("--sse_adaptive_full", "0.6", r"must be below --sse_adaptive_start \(0.5\)"),
        ("--sse_exclude_token_ids", "-1", "non-negative integer token ids"),
        ("--sse_seed", "1.5", "must be an integer, got '1.5'"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_option_typed(option, value, reason):
    """Not `SSEConfig.graph_k` nor a generic `--sse_<field>`: the option itself, as argparse would name it."""
    with pytest.raises(SSEArgumentError, match=reason) as error:
        _parse(option, value)
    assert error.value.option == option and str(error.value).startswith(f"argument {option}: ")
    assert "SSEConfig" not in str(error.value) and "<field>" not in str(error.value)
    with pytest.raises(ValueError, match=r"SSEConfig\."):  # from Python the config's own field is named
        SSEConfig.from_dict(
            {option.removeprefix("--sse_"): json.loads(value) if value[0] in "-{0123456789" else value}
        )


def test_a_joint_error_names_the_option_that_needs_another():
    with pytest.raises(SSEArgumentError, match=r"'linear_warmup' needs --sse_p_warmup_ratio > 0") as error:
        _parse("--sse_p_schedule", "linear_warmup")
    assert error.value.option == "--sse_p_schedule"
    assert _parse("--sse_p_schedule", "linear_warmup", "--sse_p_warmup_ratio", "0.1").to_config().p_warmup_ratio == 0.1


@pytest.mark.parametrize(
    "words, ids",
    [
        (["[20]"], [20]),
        (["[20,", "30]"], [20, 30]),  # `--sse_exclude_token_ids [20, 30]` pasted unquoted
        (["[20, 30]"], [20, 30]),
        (["[20,30]"], [20, 30]),
        (["20", "30"], [20, 30]),
        (["[]"], []),
    ],
)
def test_a_list_parses_one_by_one_or_as_the_json_a_search_prints(words, ids):
    assert _parse("--sse_exclude_token_ids", *words).to_config().exclude_token_ids == ids


def test_every_value_a_search_prints_parses_back_to_the_same_config():
    """`chosen_options` writes `--sse_<field> <json.dumps(value)>`: pasted into a shell, it must give the same config
    (a dict needs shell quotes, as it holds spaces; a string's JSON quotes are the shell's)."""
    chosen = SSEConfig(
        p=0.1,
        decoder_p=None,
        graph="knn",
        graph_k=4,
        table_p={"token_type_embeddings": 0.05},
        p_schedule="cosine",
        p_warmup_ratio=0.1,
        exclude_token_ids=[20, 30],
        seed=None,
    )
    printed = " ".join(
        f"--sse_{name} {shlex.quote(json.dumps(value)) if isinstance(value, dict) else json.dumps(value)}"
        for name, value in chosen.to_dict().items()
    )
    assert "--sse_exclude_token_ids [20, 30]" in printed and "--sse_seed null" in printed
    assert _parse(*shlex.split(printed)).to_config() == chosen


@pytest.mark.parametrize("text", ["false", "False", "0", "no", 0, False])
def test_the_sse_switch_from_a_file_is_read_strictly(text):
    """`bool("false")` is True: a JSON file's "false" used to turn SSE on."""
    (arguments,) = HfArgumentParser(SSEArguments).parse_dict({"sse": text})
    assert arguments.sse is False and not arguments.is_active() and arguments.callbacks() == []


@pytest.mark.parametrize("text", ["maybe", "", 2, 0.5, None, [False]])
def test_a_switch_that_is_neither_true_nor_false_is_refused(text):
    with pytest.raises(SSEArgumentError, match=r"^argument --sse: must be true or false") as error:
        HfArgumentParser(SSEArguments).parse_dict({"sse": text})
    assert error.value.option == "--sse"


def test_text_values_from_a_file_read_as_on_the_command_line():
    (arguments,) = HfArgumentParser(SSEArguments).parse_dict(
        {"sse_p": "0.1", "sse_seed": "3", "sse_exclude_token_ids": "[5, 6]", "sse_decoder_p": "null"}
    )
    assert arguments.to_config() == SSEConfig(p=0.1, seed=3, exclude_token_ids=[5, 6], decoder_p=None)
    assert arguments.sse_p == 0.1 and arguments.sse_seed == 3  # the attributes hold the values, not their text


@pytest.mark.parametrize(
    "argv, named",
    [
        (
            ["--sse", "False", "--sse_p", "0.1", "--sse_seed", "3"],
            ["--sse_p 0.1 (SSE is off: --sse False)", "--sse_seed 3"],
        ),
        (["--sse_graph_k", "5"], ["--sse_graph_k 5 (it is the neighbour count of --sse_graph 'knn' only)"]),
        (["--sse_p_warmup_ratio", "0.1"], ["--sse_p_warmup_ratio 0.1 (--sse_p_schedule 'constant' has no warm-up)"]),
        (["--sse_adaptive_start", "0.4"], ["--sse_adaptive_start 0.4 (it acts under --sse_p_schedule 'adaptive'"]),
        (["--sse_p", "0", "--sse_seed", "3"], ["--sse_seed 3 (every swap probability"]),
        (["--sse_p", "0", "--sse_label_p", "0.1", "--sse_graph", "knn"], ['--sse_graph "knn" (it acts on word-piece']),
    ],
)
def test_options_that_do_nothing_under_the_others_are_a_warning_naming_them(argv, named):
    with pytest.warns(UserWarning, match="These SSE options do nothing under the others given") as caught:
        _parse(*argv)
    message = str(caught[0].message)
    assert all(part in message for part in named), message


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--sse_p", "0.1", "--sse_seed", "3"],
        ["--sse_graph", "knn", "--sse_graph_k", "5"],
        ["--sse_p_schedule", "cosine", "--sse_p_warmup_ratio", "0.1"],
        ["--sse_p_schedule", "adaptive", "--sse_adaptive_start", "0.4"],
        ["--sse", "False"],
    ],
)
def test_options_that_act_raise_no_warning(argv):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _parse(*argv)
