"""Candidates come from the tokenizer's real vocabulary, minus special and reserved tokens."""

import pytest
import transformers

from sse_hf.vocabulary import resolve_vocabulary, tokenizer_protected_ids
from tiny_models import CANDIDATE_IDS, PROTECTED_IDS, VOCAB, VOCAB_SIZE


def test_tokenizer_vocabulary_excludes_special_reserved_and_padded_rows(tokenizer):
    config = transformers.BertConfig(vocab_size=VOCAB_SIZE)
    vocabulary = resolve_vocabulary(config, tokenizer, table_size=VOCAB_SIZE)
    assert vocabulary.size == len(VOCAB) == 48  # len(tokenizer), not the padded 64 rows
    assert list(vocabulary.candidates) == CANDIDATE_IDS
    assert vocabulary.protected == frozenset(PROTECTED_IDS)
    assert tokenizer.mask_token_id in vocabulary.protected and tokenizer.pad_token_id in vocabulary.protected


def test_reserved_unused_tokens_are_protected(tokenizer):
    unused = tokenizer.convert_tokens_to_ids(["[unused0]", "[unused1]", "[unused2]"])
    assert set(unused) <= tokenizer_protected_ids(tokenizer)


def test_added_special_tokens_are_protected(tmp_path):
    from tiny_models import tiny_tokenizer

    tok = tiny_tokenizer(tmp_path)
    tok.add_special_tokens({"additional_special_tokens": ["<ent>"]})
    tok.add_tokens(["newword"])
    protected = tokenizer_protected_ids(tok)
    assert tok.convert_tokens_to_ids("<ent>") in protected
    assert tok.convert_tokens_to_ids("newword") not in protected


def test_exclude_token_ids_are_protected(tokenizer):
    vocabulary = resolve_vocabulary(transformers.BertConfig(vocab_size=64), tokenizer, exclude_token_ids=[8, 9])
    assert 8 not in vocabulary.candidates and {8, 9} <= vocabulary.protected


def test_without_tokenizer_falls_back_to_config_and_warns():
    config = transformers.BertConfig(vocab_size=30, pad_token_id=0)
    with pytest.warns(UserWarning, match="no tokenizer given"):
        vocabulary = resolve_vocabulary(config)
    assert vocabulary.size == 30 and 0 not in vocabulary.candidates and len(vocabulary.candidates) == 29


def test_tokenizer_larger_than_the_table_is_a_clear_error(tokenizer):
    with pytest.raises(ValueError, match=r"48 tokens but .* only 40 rows.*resize_token_embeddings"):
        resolve_vocabulary(transformers.BertConfig(vocab_size=40), tokenizer, table_size=40)


def test_empty_candidate_set_is_a_clear_error(tokenizer):
    with pytest.raises(ValueError, match="at least 2 candidate tokens"):
        resolve_vocabulary(transformers.BertConfig(vocab_size=64), tokenizer, exclude_token_ids=range(8, 47))


def test_missing_vocab_size_without_tokenizer_is_a_clear_error():
    config = transformers.PretrainedConfig()
    with pytest.raises(ValueError, match="Pass tokenizer="):
        resolve_vocabulary(config)
