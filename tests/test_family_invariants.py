"""Life-cycle invariants over every model family (peft's PeftCommonTester pattern): one check each, every family.

A patched model leaves no trace once removed (state_dict, hooks, attributes), its copies are plain models, a seed
fixes the swaps, and evaluation and no-grad forwards are those of the plain model. Only the public API is used.
"""

import contextlib
import copy
import pickle

import pytest
import torch

from sse_hf import get_handle, patch_model, unpatch_model
from tiny_models import ENCODER_DECODER, FAMILIES, build, record_lookups, word_ids

CLASSIFIERS = {
    family for family, (model_class, _) in FAMILIES.items() if "SequenceClassification" in model_class.__name__
}
ROWS = 8


@pytest.fixture(params=sorted(FAMILIES))
def family(request):
    return request.param


def _options(family, seed=None):
    """Every table the family has: inputs always, decoder inputs of encoder-decoders, labels of classifiers."""
    options = {"p": 0.5, "seed": seed}
    if family in ENCODER_DECODER:
        options["decoder_p"] = 0.5
    if family in CLASSIFIERS:
        options["label_p"] = 0.5
    return options


def _inputs(family):
    ids = word_ids(rows=ROWS)
    if family in ENCODER_DECODER:
        return {"input_ids": ids, "labels": word_ids(rows=ROWS, cols=6, seed=1)}
    if family in CLASSIFIERS:
        return {"input_ids": ids, "labels": torch.arange(ROWS) % 2}
    return {"input_ids": ids, "labels": ids}


def _input_lookup(model, family):
    """The module that looks up the (encoder's) input ids: encoder-decoders' stacks call their own embed_tokens."""
    return model.get_encoder().embed_tokens if family in ENCODER_DECODER else model.get_input_embeddings()


def _run(model, family, *, train, seed=0):
    """Loss and logits of one forward, dropout seeded; the model is left in the mode asked for."""
    model.train(train)
    torch.manual_seed(seed)
    out = model(**_inputs(family))
    return out.loss.detach(), out.logits.detach()


def _assert_same_outputs(actual, expected):
    for a, e in zip(actual, expected, strict=True):
        assert torch.equal(a, e)


def _hooks(model):
    """Every hook a module or torch holds, and every module's attribute names: what a patch may not leave behind."""
    from torch.nn.modules import module as torch_module

    per_module = {
        name: {
            kind: dict(getattr(m, kind))
            for kind in ("_forward_pre_hooks", "_forward_hooks", "_backward_pre_hooks", "_backward_hooks")
        }
        | {"attributes": set(vars(m))}
        for name, m in model.named_modules()
    }
    global_hooks = {
        kind: dict(getattr(torch_module, kind)) for kind in ("_global_forward_pre_hooks", "_global_forward_hooks")
    }
    return per_module, global_hooks


def _state(model):
    return {key: (value.dtype, value.clone()) for key, value in model.state_dict().items()}


def _assert_same_state(actual, expected):
    assert actual.keys() == expected.keys()
    for key, (dtype, value) in expected.items():
        assert actual[key][0] == dtype and torch.equal(actual[key][1], value), key


def test_state_dict_and_hooks_are_untouched_by_patch_train_and_remove(family, tokenizer):
    model = build(family)
    state, hooks = _state(model), _hooks(model)
    handle = patch_model(model, tokenizer=tokenizer, **_options(family))
    _run(model, family, train=True)
    assert handle.tokens_swapped > 0
    _assert_same_state(_state(model), state)  # nothing stored on the model, even while patched
    handle.remove()
    assert get_handle(model) is None and unpatch_model(model) is False
    _assert_same_state(_state(model), state)
    assert _hooks(model) == hooks


def test_unpatch_model_leaves_no_hook_either(family, tokenizer):
    model = build(family)
    hooks = _hooks(model)
    patch_model(model, tokenizer=tokenizer, **_options(family))
    _run(model, family, train=True)
    assert unpatch_model(model) is True
    assert _hooks(model) == hooks


def test_copies_of_a_patched_model_are_plain_models(family, tokenizer):
    model = build(family)
    plain = copy.deepcopy(model)
    plain_outputs = _run(plain, family, train=True)
    handle = patch_model(model, tokenizer=tokenizer, **{**_options(family), "p": 1.0})
    copies = {"deepcopy": copy.deepcopy(model)}
    try:
        pickle.dumps(plain)
    except Exception:  # a family whose plain model does not pickle owes nothing here
        pass
    else:
        copies["pickle"] = pickle.loads(pickle.dumps(model))
    for how, clone in copies.items():
        records, hook = record_lookups(_input_lookup(clone, family))
        _assert_same_outputs(_run(clone, family, train=True), plain_outputs)
        hook.remove()
        assert torch.equal(records[0], _inputs(family)["input_ids"]), how
        assert get_handle(clone) is None and unpatch_model(clone) is False, how
        assert _hooks(clone) == _hooks(plain), how  # the copied stand-ins removed themselves on their first call
    assert handle.tokens_seen == 0
    _run(model, family, train=True)  # the original still swaps
    assert handle.tokens_swapped > 0


def test_a_seed_fixes_the_swapped_ids_and_the_loss(family, tokenizer):
    model = build(family)
    lookup = _input_lookup(model, family)
    ids = _inputs(family)["input_ids"]

    def seeded_run(seed):
        handle = patch_model(model, tokenizer=tokenizer, **_options(family, seed=seed))
        records, hook = record_lookups(lookup)
        loss, _ = _run(model, family, train=True)
        hook.remove()
        stats = handle.stats()
        handle.remove()
        return records[0], loss, stats

    first, second, other = seeded_run(3), seeded_run(3), seeded_run(4)
    assert not torch.equal(first[0], ids)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1]) and first[2] == second[2]
    assert not torch.equal(first[0], other[0])


@pytest.mark.parametrize("mode", ["eval", "no_grad in train mode"])
def test_eval_and_no_grad_forwards_are_the_plain_models(family, tokenizer, mode):
    model = build(family)
    train = mode != "eval"
    context = torch.no_grad if train else contextlib.nullcontext
    with context():
        plain = _run(model, family, train=train)
    handle = patch_model(model, tokenizer=tokenizer, **{**_options(family), "p": 1.0})
    with context():
        _assert_same_outputs(_run(model, family, train=train), plain)
    assert handle.tokens_seen == 0
