"""SSEConfig: validation, overrides and the sse_config.json round trip."""

import json
import math

import pytest

from sse_hf import SSEConfig


def test_defaults_and_help_metadata():
    config = SSEConfig()
    assert config.p == 0.05 and config.decoder_p is None and config.exclude_token_ids == [] and config.seed is None
    import dataclasses

    assert all(field.metadata.get("help") for field in dataclasses.fields(SSEConfig))


@pytest.mark.parametrize("bad", [-0.01, 1.01, math.nan, math.inf, "0.1", None, True])
def test_p_outside_unit_interval_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=r"SSEConfig\.p"):
        SSEConfig(p=bad)


@pytest.mark.parametrize("good", [0, 0.0, 0.5, 1, 1.0])
def test_p_bounds_are_accepted(good):
    assert SSEConfig(p=good).p == good


def test_decoder_p_is_validated():
    with pytest.raises(ValueError, match="decoder_p"):
        SSEConfig(decoder_p=2.0)


@pytest.mark.parametrize("bad", [[-1], ["3"], [1.5]])
def test_exclude_token_ids_are_validated(bad):
    with pytest.raises(ValueError, match="exclude_token_ids"):
        SSEConfig(exclude_token_ids=bad)


def test_seed_is_validated():
    with pytest.raises(ValueError, match="seed"):
        SSEConfig(seed="7")


def test_replace_validates_and_rejects_unknown_fields():
    config = SSEConfig(p=0.2)
    assert config.replace(p=0.3).p == 0.3 and config.p == 0.2
    with pytest.raises(TypeError, match=r"Unknown SSEConfig field\(s\) \['q'\]"):
        config.replace(q=0.1)
    with pytest.raises(ValueError, match="SSEConfig.p"):
        config.replace(p=-1)


def test_save_and_load_round_trip(tmp_path):
    config = SSEConfig(p=0.05, decoder_p=0.01, exclude_token_ids=[9, 3], seed=11)
    path = config.save_pretrained(tmp_path / "run")
    assert path.endswith("sse_config.json")
    assert json.loads((tmp_path / "run" / "sse_config.json").read_text())["p"] == 0.05
    assert SSEConfig.from_pretrained(tmp_path / "run") == config
    assert SSEConfig.from_pretrained(path) == config


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="sse_config.json"):
        SSEConfig.from_pretrained(tmp_path)
    (tmp_path / "sse_config.json").write_text(json.dumps({"p": 0.1, "bogus": 1}))
    with pytest.raises(TypeError, match="bogus"):
        SSEConfig.from_pretrained(tmp_path)
    (tmp_path / "sse_config.json").write_text(json.dumps({"p": 7}))
    with pytest.raises(ValueError, match=r"SSEConfig\.p"):
        SSEConfig.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="is a file"):
        SSEConfig().save_pretrained(tmp_path / "sse_config.json")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"exclude_token_ids": None}, "exclude_token_ids must be a list of token ids"),
        ({"exclude_token_ids": 5}, "exclude_token_ids must be a list of token ids"),
        ({"exclude_token_ids": "1,2"}, r"exclude_token_ids must be a list of token ids.*'1,2'"),
        ({"graph": "KNN"}, "write 'knn'"),
    ],
)
def test_more_bad_fields_are_clear_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        SSEConfig(**overrides)


def test_numpy_integers_are_accepted_and_saved_as_json_ints(tmp_path):
    import numpy as np

    config = SSEConfig(seed=np.int64(3), exclude_token_ids=np.array([9, 10]))
    assert config.seed == 3 and type(config.seed) is int and config.exclude_token_ids == [9, 10]
    assert SSEConfig.from_pretrained(config.save_pretrained(tmp_path)) == config


@pytest.mark.parametrize("text", ["{bad json", "", "[1, 2]"])
def test_unreadable_saved_config_is_a_clear_error_naming_the_file(tmp_path, text):
    (tmp_path / "sse_config.json").write_text(text)
    with pytest.raises(ValueError, match=r"sse_config\.json (is not valid JSON|must hold a JSON object)"):
        SSEConfig.from_pretrained(tmp_path)
    with pytest.raises(TypeError, match="from_dict expects a dict"):
        SSEConfig.from_dict([("p", 0.1)])


def test_excluded_ids_past_the_vocabulary_are_a_clear_error(tokenizer):
    from sse_hf import patch_model
    from tiny_models import tiny_bert

    with pytest.raises(ValueError, match=r"exclude_token_ids holds id\(s\) \[1000\] past the vocabulary"):
        patch_model(tiny_bert(), exclude_token_ids=[9, 1000], tokenizer=tokenizer)


def test_huge_and_negative_seeds_train(tokenizer):
    from sse_hf import patch_model
    from tiny_models import tiny_bert, word_ids

    for seed in (-1, 2**70):
        model = tiny_bert().train()
        patch_model(model, p=0.5, seed=seed, tokenizer=tokenizer)
        model(input_ids=word_ids())


@pytest.mark.parametrize(
    "overrides, active",
    [
        ({}, True),
        ({"p": 0}, False),
        ({"p": 0, "label_p": 0.1}, True),
        ({"p": 0, "decoder_p": 0.2}, True),
        ({"p": 0, "decoder_p": 0.0}, False),
        ({"p": 0, "table_p": {"token_type_embeddings": 0.05}}, True),
        ({"p": 0, "table_p": {"token_type_embeddings": 0.0}}, False),
    ],
)
def test_is_active_says_whether_the_config_swaps_anything(overrides, active):
    assert SSEConfig(**overrides).is_active is active


def test_enumerated_fields_are_literals_whose_choices_help_lists_and_the_parser_enforces(capsys):
    import typing

    from transformers import HfArgumentParser

    from sse_hf import SSEArguments
    from sse_hf.config import config_field_types

    types = config_field_types()
    assert typing.get_args(types["p_schedule"]) == ("constant", "linear_warmup", "linear_decay", "cosine", "adaptive")
    assert typing.get_args(types["swap_tokens"]) == ("all", "prompt", "completion")
    parser = HfArgumentParser(SSEArguments)
    help_text = parser.format_help()
    assert "--sse_p_schedule {constant,linear_warmup,linear_decay,cosine,adaptive}" in help_text
    assert "--sse_swap_tokens {all,prompt,completion}" in help_text
    (arguments,) = parser.parse_args_into_dataclasses(["--sse_p_schedule", "cosine", "--sse_swap_tokens", "prompt"])
    assert arguments.to_config().p_schedule == "cosine" and arguments.to_config().swap_tokens == "prompt"
    with pytest.raises(SystemExit):
        parser.parse_args_into_dataclasses(["--sse_p_schedule", "cosine_decay"])
    assert "invalid choice: 'cosine_decay'" in capsys.readouterr().err


def test_a_path_is_accepted_wherever_a_file_path_is(tmp_path, graph_tokenizer):
    """pathlib.Path for every file path of the public API: SSEConfig.graph (kept as text, so it saves as JSON),
    SSECallback, patch_model, SSEGraph's save, load and readers, and the config's own save and load."""
    from pathlib import Path

    from graph_helpers import VOCAB
    from sse_hf import SSECallback, SSEGraph, patch_model
    from tiny_models import tiny_bert

    edges = tmp_path / "edges.tsv"
    edges.write_text("good\tgreat\ngreat\tfine\n", encoding="utf-8")
    config = SSEConfig(graph=edges)
    assert config.graph == str(edges) and json.loads(json.dumps(config.to_dict()))["graph"] == str(edges)
    assert SSEConfig.from_pretrained(Path(config.save_pretrained(tmp_path / "run"))) == config
    assert SSECallback(graph=edges, tokenizer=graph_tokenizer).config.graph == str(edges)
    graph = SSEGraph.from_file(edges, tokenizer=graph_tokenizer)
    assert SSEGraph.from_edge_file(edges, tokenizer=graph_tokenizer).num_edges == graph.num_edges
    saved = tmp_path / "graph.safetensors"
    graph.save(saved)
    assert SSEGraph.load(saved).num_edges == graph.num_edges
    for source in (edges, saved):
        model = tiny_bert(vocab_size=len(VOCAB))
        patch_model(model, SSEConfig(p=0.5, graph=source), tokenizer=graph_tokenizer).remove()
    with pytest.raises(ValueError, match=r"SSEConfig.graph PosixPath\('knn'\) is a path, but the text 'knn'"):
        SSEConfig(graph=Path("knn"))


@pytest.mark.parametrize(
    "overrides, idle",
    [
        ({}, set()),
        ({"graph_k": 5}, {"graph_k"}),
        ({"graph": "knn", "graph_k": 5}, set()),
        ({"p_warmup_ratio": 0.1}, {"p_warmup_ratio"}),
        ({"p_schedule": "cosine", "p_warmup_ratio": 0.1}, set()),
        ({"adaptive_start": 0.4}, {"adaptive_start"}),
        ({"p_schedule": "adaptive", "adaptive_start": 0.4}, set()),
        ({"p": 0, "seed": 3, "p_schedule": "cosine"}, {"seed", "p_schedule"}),
        ({"p": 0, "label_p": 0.1, "graph": "knn", "swap_tokens": "prompt"}, {"graph", "swap_tokens"}),
        ({"p": 0, "decoder_p": 0.1, "exclude_token_ids": [5]}, set()),
    ],
)
def test_idle_fields_are_the_ones_set_that_change_nothing_under_the_others(overrides, idle):
    from sse_hf.config import idle_fields

    assert set(idle_fields(SSEConfig(**overrides))) == idle


def test_the_docstring_documents_every_field_with_its_help_type_and_default():
    """`help(SSEConfig)` has an Args section, built from the fields' own help: one source for the docs and the CLI."""
    import dataclasses
    import re

    args = SSEConfig.__doc__.split("    Args:\n", 1)[1]
    flat = " ".join(args.split())
    for f in dataclasses.fields(SSEConfig):
        assert re.search(rf"(^| ){f.name} \(`[^`]+`, defaults to `", flat), f.name
        assert " ".join(f.metadata["help"].split()) in flat, f.name
    assert "p_schedule (`Literal['constant'," in flat and "table_p (`dict[str, float]`, defaults to `{}`)" in flat


def test_saved_configs_carry_the_version_and_a_newer_versions_fields_warn_and_are_dropped(tmp_path):
    """A checkpoint written by a newer sse-hf still loads here (peft stamps its version the same way); a hand-written
    dict with an unknown name stays an error, since nothing says it came from another version."""
    import json

    import pytest

    import sse_hf

    path = SSEConfig(p=0.1).save_pretrained(tmp_path)
    saved = json.loads(open(path).read())
    assert saved["sse_hf_version"] == sse_hf.__version__ and SSEConfig.from_pretrained(tmp_path) == SSEConfig(p=0.1)
    saved.update(sse_hf_version="9.0.0", p_dropout_schedule="cosine")
    with open(path, "w") as handle:
        json.dump(saved, handle)
    with pytest.warns(UserWarning, match=r"saved by sse-hf 9\.0\.0, whose fields \['p_dropout_schedule'\]"):
        assert SSEConfig.from_pretrained(tmp_path) == SSEConfig(p=0.1)
    with pytest.raises(TypeError, match=r"Unknown SSEConfig field\(s\) \['p_dropout_schedule'\]"):
        SSEConfig.from_dict({"p": 0.1, "p_dropout_schedule": "cosine"})
