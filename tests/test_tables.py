"""Per-table SSE: other categorical tables (token types) and separate encoder/decoder p."""

import pytest
import torch

from sse_hf import SSEConfig, patch_model
from tiny_models import build, record_lookups, tiny_bert, word_ids


def test_token_type_table_is_swapped_with_its_own_p(tokenizer):
    model = tiny_bert(type_vocab_size=4).train()
    handle = patch_model(model, p=0.0, table_p={"token_type_embeddings": 1.0}, tokenizer=tokenizer)
    table = model.bert.embeddings.token_type_embeddings
    records, _ = record_lookups(table)
    word_records, _ = record_lookups(model.get_input_embeddings())
    ids = word_ids()
    types = torch.zeros_like(ids)
    model(input_ids=ids, token_type_ids=types)
    assert torch.all(records[-1] != 0) and records[-1].max() < 4
    assert torch.equal(word_records[-1], ids)
    stats = handle.stats()
    assert stats["bert.embeddings.token_type_embeddings"]["swap_rate"] == 1.0 and stats["input"]["tokens_swapped"] == 0
    model.eval()
    model(input_ids=ids, token_type_ids=types)
    assert torch.equal(records[-1], types)


def test_table_p_errors_name_the_problem(tokenizer):
    with pytest.raises(ValueError, match=r"no embedding module with that name.*token_type_embeddings"):
        patch_model(tiny_bert(), table_p={"segment_embeddings": 0.1}, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="word-piece embedding"):
        patch_model(tiny_bert(), table_p={"word_embeddings": 0.1}, tokenizer=tokenizer)
    with pytest.raises(ValueError, match=r"table_p\['x'\]"):
        SSEConfig(table_p={"x": 2.0})
    with pytest.raises(ValueError, match="at least 2"):
        patch_model(tiny_bert(type_vocab_size=1), table_p={"token_type_embeddings": 0.1}, tokenizer=tokenizer)


def test_encoder_and_decoder_use_separate_p(tokenizer):
    model = build("bart").train()
    handle = patch_model(model, p=0.0, decoder_p=1.0, tokenizer=tokenizer)
    ids = word_ids(rows=16)
    model(input_ids=ids, labels=word_ids(rows=16, seed=1))
    stats = handle.stats()
    assert stats["encoder"]["tokens_swapped"] == 0 and stats["decoder"]["swap_rate"] == 1.0
    assert handle.effective_p_by_role() == {"encoder": 0.0, "decoder": 1.0}
