"""Build a small randomly initialised BERT and its WordPiece tokenizer from a text sample, saved to a directory.

For the demo, the throughput A/B and the tests: it needs no download, and `run_glue.py` / `run_mlm.py` load it
with `--model_name_or_path DIR` like any pretrained model.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from transformers import BertConfig, BertForMaskedLM, set_seed

from recipes.kit.wordpiece import train_wordpiece_tokenizer


def build_tiny_bert(
    output_dir: str,
    texts: Iterable[str],
    vocab_size: int = 500,
    hidden_size: int = 32,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 2,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 128,
    seed: int = 0,
) -> str:
    """Save a random-init `BertForMaskedLM` and a tokenizer trained on `texts` into `output_dir`; return it."""
    tokenizer = train_wordpiece_tokenizer(texts, vocab_size=vocab_size, model_max_length=max_position_embeddings)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        intermediate_size=intermediate_size or 4 * hidden_size,
        max_position_embeddings=max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
    )
    set_seed(seed)
    model = BertForMaskedLM(config)
    os.makedirs(output_dir, exist_ok=True)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir
