"""recipes/run_mlm.py: pre-training from a config and continued pre-training, with SSE, on small local corpora."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from recipe_helpers import corpus_texts, fast_args, read_results, write_csv
from recipes import run_glue, run_mlm
from sse_hf import SSEConfig, patch_model

TINY_CONFIG = {
    "model_type": "bert",
    "hidden_size": 64,
    "num_hidden_layers": 4,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
    "vocab_size": 30522,
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("corpus")
    texts = corpus_texts()
    (directory / "train.txt").write_text("\n".join(texts[:240]) + "\n")
    (directory / "validation.txt").write_text("\n".join(texts[240:]) + "\n")
    (directory / "config.json").write_text(json.dumps(TINY_CONFIG))
    return {
        "train": str(directory / "train.txt"),
        "validation": str(directory / "validation.txt"),
        "config": str(directory / "config.json"),
    }


def test_pretraining_from_a_json_config_with_overrides_then_fine_tuning(tmp_path, corpus, sentiment_files):
    out = tmp_path / "mlm"
    results = run_mlm.main(
        [
            "--config_name",
            corpus["config"],
            "--config_overrides",
            "hidden_size=32,num_hidden_layers=2",
            "--tokenizer_vocab_size",
            "200",
            "--train_file",
            corpus["train"],
            "--validation_file",
            corpus["validation"],
            "--do_train",
            "--do_eval",
            "--sse_p",
            "0.2",
            *fast_args(out, steps=6),
        ]
    )
    assert results == read_results(out)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "trainer_state.json", "sse_config.json"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"]) == (32, 2, 2)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert config["vocab_size"] == len(tokenizer) <= 200  # the config follows the tokenizer trained on the corpus
    assert results["perplexity"] == pytest.approx(math.exp(results["eval_loss"]))
    assert math.isfinite(results["perplexity"]) and results["primary_metric"] == "perplexity"
    assert results["max_seq_length"] == 32 and results["eval_samples"] > 0
    assert results["sse_enabled"] and results["sse_swap_rate"] == pytest.approx(0.2, abs=0.08)
    assert {"train_loss", "train_samples_per_second", "wall_time_s", "sse_swap_rate_by_role"} <= set(results)
    assert results["num_processes"] == 1 and results["sse_tokens_swapped"] > 0
    assert results["sse_swap_rate"] == results["sse_tokens_swapped"] / results["sse_tokens_eligible"]

    # The pre-trained model and tokenizer fine-tune with run_glue as they are.
    glue = run_glue.main(
        [
            "--model_name_or_path",
            str(out),
            "--train_file",
            sentiment_files["train"],
            "--validation_file",
            sentiment_files["validation"],
            *fast_args(tmp_path / "glue", steps=2),
        ]
    )
    assert 0.0 <= glue["eval_accuracy"] <= 1.0 and glue["sse_swap_rate"] > 0


def test_continued_pretraining_on_a_csv_with_a_held_out_share(tmp_path, tiny_model_dir):
    rows = [{"id": i, "content": text} for i, text in enumerate(corpus_texts()[:200])]
    train = write_csv(tmp_path / "corpus.csv", rows)
    off = run_mlm.main(
        [
            "--model_name_or_path",
            tiny_model_dir,
            "--train_file",
            train,
            "--text_column_name",
            "content",
            "--validation_split_percentage",
            "10",
            "--line_by_line",
            "--sse_p",
            "0",
            *fast_args(tmp_path / "off", steps=3),
        ]
    )
    on = run_mlm.main(
        [
            "--model_name_or_path",
            tiny_model_dir,
            "--train_file",
            train,
            "--text_column_name",
            "content",
            "--validation_split_percentage",
            "10",
            "--line_by_line",
            "--sse_p",
            "0.5",
            *fast_args(tmp_path / "on", steps=3),
        ]
    )
    assert off["eval_samples"] == on["eval_samples"] == 20  # 10% of 200 lines, one example per line
    assert off["sse_swap_rate"] == 0.0 and on["sse_swap_rate"] == pytest.approx(0.5, abs=0.1)
    assert math.isfinite(off["perplexity"]) and math.isfinite(on["perplexity"])


def test_sse_never_swaps_the_mask_token_and_never_touches_labels(tiny_model_dir):
    """The recipe's 80/10/10 collator first, then SSE with p=1 inside the model: every eligible input token is
    swapped, yet [MASK], special tokens and `labels` come through unchanged."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForMaskedLM.from_pretrained(tiny_model_dir).train()
    collator = run_mlm.mlm_collator(tokenizer, mlm_probability=0.5)
    torch.manual_seed(0)
    batch = collator([tokenizer(text, return_special_tokens_mask=True) for text in corpus_texts()[:16]])
    labels_before = batch["labels"].clone()
    assert (batch["input_ids"] == tokenizer.mask_token_id).sum() > 10

    seen = {}
    embedding = model.get_input_embeddings()
    with patch_model(model, SSEConfig(p=1.0, seed=0), tokenizer=tokenizer) as handle:
        # Registered after SSE's own hook (which is prepended), so it sees the swapped ids.
        capture = embedding.register_forward_pre_hook(lambda module, args: seen.setdefault("ids", args[0].clone()))
        model(**batch).loss.backward()
        capture.remove()
        assert handle.tokens_swapped > 0
    original, swapped = batch["input_ids"], seen["ids"]
    protected = torch.tensor([[i in tokenizer.all_special_ids for i in row] for row in original.tolist()])
    assert torch.equal(swapped[protected], original[protected])  # [MASK], [CLS], [SEP], [PAD] untouched
    assert (swapped[~protected] != original[~protected]).all()  # p=1: every other token swapped
    assert torch.equal(batch["labels"], labels_before)


def test_config_overrides_cannot_reshape_a_pretrained_model(tmp_path, tiny_model_dir, corpus):
    with pytest.raises(ValueError, match="--config_overrides.*cannot be used with --model_name_or_path"):
        run_mlm.main(
            [
                "--model_name_or_path",
                tiny_model_dir,
                "--config_overrides",
                "hidden_size=8",
                "--train_file",
                corpus["train"],
                *fast_args(tmp_path / "out"),
            ]
        )


def test_from_scratch_without_a_tokenizer_says_how_to_get_one(tmp_path, corpus):
    with pytest.raises(ValueError, match="--tokenizer_name.*--tokenizer_vocab_size"):
        run_mlm.main(
            ["--config_name", corpus["config"], "--train_file", corpus["train"], *fast_args(tmp_path / "out")]
        )


def test_hub_corpus_offline_suggests_local_files(tmp_path, tiny_model_dir):
    with pytest.raises(ConnectionError, match="wikitext.*--train_file corpus.txt"):
        run_mlm.main(
            [
                "--model_name_or_path",
                tiny_model_dir,
                "--dataset_name",
                "wikitext",
                "--dataset_config_name",
                "wikitext-2-raw-v1",
                *fast_args(tmp_path / "out"),
            ]
        )


@pytest.mark.parametrize(
    "option, value", [("--max_seq_length", "-4"), ("--max_train_samples", "0"), ("--preprocessing_num_workers", "-1")]
)
def test_numeric_data_options_are_validated_naming_the_option(tmp_path, tiny_model_dir, corpus, option, value):
    with pytest.raises(ValueError, match=rf"{option} must be a positive integer, got {value}"):
        run_mlm.main(
            [
                "--model_name_or_path",
                tiny_model_dir,
                "--train_file",
                corpus["train"],
                *fast_args(tmp_path / "out"),
                option,
                value,
            ]
        )
