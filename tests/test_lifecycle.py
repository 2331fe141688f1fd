"""A patched model through copy, pickle, meta device, resize, dtype casts and state_dict: like the plain model."""

import copy
import io
import pickle

import pytest
import torch
from torch import nn

from sse_hf import get_handle, patch_model, unpatch_model
from tiny_models import VOCAB_SIZE, record_lookups, tiny_bert, word_ids


def _hook_count(model):
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules())


def _train_step_ids(model, ids, **kwargs):
    """The ids the input embedding looked up in one training forward."""
    records, hook = record_lookups(model.get_input_embeddings())
    model.train()
    model(input_ids=ids, **kwargs)
    hook.remove()
    return records[-1]


def test_deepcopy_carries_no_patch_and_shares_no_counts(tokenizer):
    model = tiny_bert()
    handle = patch_model(model, p=1.0, label_p=1.0, tokenizer=tokenizer)
    clone = copy.deepcopy(model)
    ids, labels = word_ids(), torch.ones(8, dtype=torch.long)
    seen = {}
    spy = clone.register_forward_pre_hook(lambda m, a, kw: seen.update(labels=kw["labels"].clone()), with_kwargs=True)
    assert torch.equal(_train_step_ids(clone, ids, labels=labels), ids) and torch.equal(seen["labels"], labels)
    assert get_handle(clone) is None and unpatch_model(clone) is False
    assert handle.stats()["input"]["tokens_seen"] == 0 and handle.stats()["labels"]["tokens_seen"] == 0
    spy.remove()
    assert _hook_count(clone) == 0  # the stand-ins removed themselves on their first call
    # the copy can get its own patch, removable on its own, and the original keeps swapping
    own = patch_model(clone, p=1.0, tokenizer=tokenizer)
    handle.remove()
    assert not torch.equal(_train_step_ids(clone, ids), ids) and own.tokens_seen == ids.numel()
    own.remove()
    assert torch.equal(_train_step_ids(clone, ids), ids)


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
def test_pickle_and_torch_save_of_a_patched_model(tokenizer, how):
    model = tiny_bert()
    handle = patch_model(model, p=1.0, tokenizer=tokenizer)
    if how == "pickle":
        loaded = pickle.loads(pickle.dumps(model))
    else:
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        loaded = torch.load(buffer, weights_only=False)
    ids = word_ids()
    assert torch.equal(_train_step_ids(loaded, ids), ids) and get_handle(loaded) is None
    assert _hook_count(loaded) == 0 and handle.tokens_seen == 0
    assert not torch.equal(_train_step_ids(model, ids), ids) and get_handle(model) is handle  # original untouched


def test_meta_device_model_runs_like_the_plain_one_then_swaps_once_materialised(tokenizer):
    reference = tiny_bert()
    outputs = []
    for patched in (False, True):
        with torch.device("meta"):
            model = tiny_bert()
        handle = patch_model(model, p=1.0, tokenizer=tokenizer) if patched else None
        model.train()
        outputs.append(model(input_ids=word_ids().to("meta")).logits.shape)
        if patched:
            assert handle.stats()["input"]["tokens_seen"] == 0
            model.to_empty(device="cpu")
            model.load_state_dict(reference.state_dict(), assign=True)
            for name, buffer in reference.named_buffers():  # non-persistent buffers are not in the state_dict
                model.get_buffer(name).copy_(buffer)
            ids = word_ids()
            assert not torch.equal(_train_step_ids(model, ids), ids) and handle.tokens_seen == ids.numel()
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("new_size", [VOCAB_SIZE + 16, 48])
def test_resize_after_patching_is_a_clear_error_in_training_only(tokenizer, new_size):
    model = tiny_bert()
    patch_model(model, p=0.5, tokenizer=tokenizer)
    model.resize_token_embeddings(new_size)
    ids = word_ids()
    with pytest.raises(RuntimeError, match=r"resize_token_embeddings.*patch_model again"):
        _train_step_ids(model, ids)
    model.eval()
    model(input_ids=ids)  # evaluation does not swap, so it runs as the plain model does
    unpatch_model(model)
    patch_model(model, p=0.5, tokenizer=tokenizer)
    assert _train_step_ids(model, ids).shape == ids.shape


def test_replaced_input_embedding_is_a_clear_error(tokenizer):
    model = tiny_bert()
    patch_model(model, p=0.5, tokenizer=tokenizer)
    model.set_input_embeddings(nn.Embedding(VOCAB_SIZE, 16, padding_idx=0))
    with pytest.raises(RuntimeError, match="input token embedding of BertForSequenceClassification was replaced"):
        _train_step_ids(model, word_ids())


def test_dtype_cast_and_state_dict_load_keep_the_patch(tokenizer):
    model = tiny_bert()
    handle = patch_model(model, p=1.0, tokenizer=tokenizer)
    model.to(torch.float64)
    model.load_state_dict(tiny_bert().to(torch.float64).state_dict())
    ids = word_ids()
    model.train()
    records, _ = record_lookups(model.get_input_embeddings())
    logits = model(input_ids=ids).logits
    assert logits.dtype == torch.float64 and not torch.equal(records[-1], ids)
    model.to("cpu")
    assert handle.tokens_seen == ids.numel() and get_handle(model) is handle


@pytest.mark.parametrize("family", ["t5", "bart", "gpt2"])
def test_resize_after_patching_is_a_clear_error_for_every_family(tokenizer, family):
    """T5 and BART replace their stacks' embedding modules on resize: without the check the hooks would go quiet."""
    from tiny_models import ENCODER_DECODER, build

    model = build(family)
    patch_model(model, p=0.5, decoder_p=0.5 if family in ENCODER_DECODER else None, tokenizer=tokenizer)
    model.resize_token_embeddings(VOCAB_SIZE + 8)
    ids = word_ids()
    inputs = {"input_ids": ids, "labels": ids, **({"decoder_input_ids": ids} if family in ENCODER_DECODER else {})}
    with pytest.raises(RuntimeError, match="patch_model again"):
        model.train()(**inputs)
    unpatch_model(model)
    handle = patch_model(model, p=0.5, decoder_p=0.5 if family in ENCODER_DECODER else None, tokenizer=tokenizer)
    model.train()(**inputs)
    assert handle.tokens_swapped > 0
