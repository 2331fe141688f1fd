"""One definition of an integer and a number across sse_hf: numpy scalars are accepted everywhere, bools nowhere."""

import numpy as np
import pytest
import torch

from sse_hf import SSEConfig, SSEGraph, sse_hp_space
from sse_hf.validation import check_positive_int, check_probability, is_integer, is_number


def test_integers_and_numbers_are_defined_once():
    assert is_integer(3) and is_integer(np.int64(3)) and is_integer(np.uint8(3))
    assert not is_integer(True) and not is_integer(3.0) and not is_integer(np.float32(3))
    assert is_number(0.5) and is_number(np.float32(0.5)) and is_number(np.int16(1))
    assert not is_number(False) and not is_number("0.5") and not is_number(None)
    assert check_positive_int("k", np.int32(4)) == 4 and type(check_positive_int("k", np.int32(4))) is int
    assert check_probability("p", np.float32(0.25)) == 0.25 and type(check_probability("p", np.float32(0.25))) is float
    for bad in (True, 0, -1, 2.0):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            check_positive_int("k", bad)
    for bad in (True, float("nan"), 1.5, "0.1"):
        with pytest.raises(ValueError, match="p must be"):
            check_probability("p", bad)


def test_numpy_scalars_are_accepted_in_every_module(tmp_path):
    config = SSEConfig(
        p=np.float32(0.25),
        label_p=np.float64(0.1),
        graph_k=np.int64(3),
        table_p={"t": np.float32(0.5)},
        p_schedule="cosine",
        p_warmup_ratio=np.float32(0.5),
        adaptive_start=np.float32(0.5),
        adaptive_full=np.float64(0.25),
    )
    assert type(config.p) is float and type(config.graph_k) is int and type(config.table_p["t"]) is float
    assert type(config.p_warmup_ratio) is float and type(config.adaptive_start) is float
    assert SSEConfig.from_pretrained(config.save_pretrained(tmp_path)) == config  # numpy scalars would not save
    graph = SSEGraph.from_edges([0, 1], [1, 2], vocab_size=np.int64(4))
    assert graph.vocab_size == 4 and graph.resized(np.int32(5)).vocab_size == 5
    assert SSEGraph.from_dict({np.int64(0): {np.int32(1): np.float32(2.0)}}, vocab_size=3).to_dict() == {0: {1: 1.0}}
    assert SSEGraph.from_embeddings(torch.randn(6, 4), k=np.int64(2)).metadata["k"] == 2
    assert callable(sse_hp_space(p=(np.float32(0.0), np.float64(0.1))))


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: SSEConfig(p=True), r"SSEConfig\.p must be a number"),
        (lambda: SSEConfig(graph_k=True), r"SSEConfig\.graph_k must be a positive integer"),
        (lambda: SSEConfig(p_warmup_ratio=False), r"SSEConfig\.p_warmup_ratio must be a number in \[0, 1\)"),
        (lambda: SSEConfig(adaptive_start=True), r"SSEConfig\.adaptive_start must be a fraction in \(0, 1\]"),
        (lambda: SSEConfig(seed=True), r"SSEConfig\.seed must be an integer"),
        (lambda: SSEConfig(exclude_token_ids=[True]), "exclude_token_ids must hold non-negative integer"),
        (lambda: SSEGraph.from_edges([0], [1], vocab_size=True), "vocab_size must be a positive integer"),
        (lambda: SSEGraph.from_dict({0: {1: True}}, vocab_size=3), "must be a number"),
        (lambda: SSEGraph.from_dict({True: [1]}, vocab_size=3), "token strings or integer ids"),
        (lambda: SSEGraph.from_embeddings(torch.randn(6, 4), k=True), "k must be an integer"),
        (lambda: SSEGraph.from_embeddings(torch.randn(6, 4), k=2, temperature=True), "temperature must be"),
        (lambda: sse_hp_space(p=(False, 0.1)), r"a range is a \(low, high\) tuple of numbers"),
    ],
)
def test_bools_are_refused_everywhere(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_a_switch_is_a_bool_0_or_1_or_the_command_lines_text_never_any_truthy_value():
    """`bool("false")` is True: a switch read from a JSON or YAML file must be parsed, not tested for truth."""
    from sse_hf.validation import check_switch

    for text in ("false", "False", "FALSE", "0", "no", "n", "f", " false ", 0, False, np.int64(0)):
        assert check_switch("sse", text) is False, text
    for text in ("true", "True", "1", "yes", "y", "t", 1, True):
        assert check_switch("sse", text) is True, text
    for bad in ("maybe", "", "off", 2, -1, 0.0, 0.5, None, [False], {}):
        with pytest.raises(ValueError, match=r"^sse must be true or false \(or yes/no, 1/0\), got"):
            check_switch("sse", bad)
