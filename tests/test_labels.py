"""Label SSE: the kernel against binomial bounds and its reference, and its place in training."""

import random

import pytest
import torch
import transformers
from scipy import stats

from sse_hf import patch_model
from sse_hf.sampling import swap_labels
from sse_hf.sampling_reference import swap_labels_reference
from tiny_models import tiny_bert, word_ids


def test_label_rate_within_five_sigma_and_new_label_always_differs():
    labels = torch.randint(0, 5, (100_000,), generator=torch.Generator().manual_seed(0))
    labels[:1000] = -100
    swap = swap_labels(labels, 0.2, 5, torch.Generator().manual_seed(1))
    n = int(swap.eligible.sum())
    assert n == 99_000
    assert abs(int(swap.swapped.sum()) - 0.2 * n) < 5 * (n * 0.2 * 0.8) ** 0.5
    assert torch.all(swap.ids[swap.swapped] != labels[swap.swapped])
    assert torch.equal(swap.ids[:1000], labels[:1000])
    assert swap.ids.min() >= -100 and swap.ids.max() < 5


def test_new_label_is_uniform_over_the_other_classes():
    labels = torch.full((50_000,), 2)
    swap = swap_labels(labels, 1.0, 5, torch.Generator().manual_seed(2))
    counts = torch.bincount(swap.ids, minlength=5)
    assert counts[2] == 0 and stats.chisquare(counts[[0, 1, 3, 4]].numpy()).pvalue > 1e-3


def test_matches_reference_distribution():
    labels = [0, 1, 2, -100] * 5000
    reference = swap_labels_reference(labels, 0.3, 3, random.Random(0))
    fast = swap_labels(torch.tensor(labels), 0.3, 3, torch.Generator().manual_seed(0)).ids.tolist()
    for result in (reference, fast):
        changed = sum(a != b for a, b in zip(labels, result))
        assert abs(changed - 0.3 * 15000) < 5 * (15000 * 0.21) ** 0.5
        assert all(b == -100 for a, b in zip(labels, result) if a == -100)
    assert swap_labels_reference([1, 2], 0.0, 3, random.Random(0)) == [1, 2]


def test_label_sse_in_training_only_and_stats(tokenizer):
    model = tiny_bert(num_labels=3).train()
    handle = patch_model(model, p=0.0, label_p=0.5, tokenizer=tokenizer)
    seen = []
    model.register_forward_pre_hook(lambda m, a, kw: seen.append(kw["labels"].clone()), with_kwargs=True)
    labels = torch.arange(64) % 3
    model(input_ids=word_ids(rows=64), labels=labels)
    changed = seen[-1] != labels
    assert 0.3 < changed.float().mean() < 0.7 and torch.equal(labels, torch.arange(64) % 3)
    assert handle.stats()["labels"]["tokens_swapped"] == int(changed.sum())
    model.eval()
    with torch.no_grad():
        model(input_ids=word_ids(rows=64), labels=labels)
    assert torch.equal(seen[-1], labels)


def test_label_p_on_regression_or_non_classifier_is_a_clear_error(tokenizer):
    with pytest.raises(ValueError, match="regression model.*STS-B"):
        patch_model(tiny_bert(num_labels=1), label_p=0.1, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="not a sequence- or token-classification model"):
        patch_model(transformers.BertForMaskedLM(tiny_bert().config), label_p=0.1, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="SSEConfig.label_p"):
        patch_model(tiny_bert(), label_p=1.5, tokenizer=tokenizer)


def test_float_labels_are_left_alone_with_one_warning(tokenizer):
    model = tiny_bert(num_labels=2).train()
    patch_model(model, p=0.0, label_p=0.5, tokenizer=tokenizer)
    labels = torch.tensor([[1.0, 0.0]] * 4)
    with pytest.warns(UserWarning, match="floating point"):
        model(input_ids=word_ids(rows=4), labels=labels)
    assert torch.equal(labels, torch.tensor([[1.0, 0.0]] * 4))


def test_token_classification_labels(tokenizer):
    config = tiny_bert().config
    config.num_labels = 4
    model = transformers.BertForTokenClassification(config).train()
    handle = patch_model(model, p=0.0, label_p=1.0, tokenizer=tokenizer)
    labels = torch.randint(0, 4, (8, 12))
    labels[:, 0] = -100
    seen = []
    model.register_forward_pre_hook(lambda m, a, kw: seen.append(kw["labels"]), with_kwargs=True)
    model(input_ids=word_ids(), labels=labels)
    assert torch.all(seen[-1][:, 1:] != labels[:, 1:]) and torch.all(seen[-1][:, 0] == -100)
    assert handle.stats()["labels"]["swap_rate"] == 1.0


def test_label_p_with_a_training_forward_without_labels_warns_once(tokenizer):
    """A custom loss that takes the labels out first (as Trainer's compute_loss_func does) leaves label SSE nothing."""
    model = tiny_bert(num_labels=2).train()
    handle = patch_model(model, p=0.0, label_p=0.5, tokenizer=tokenizer)
    with pytest.warns(UserWarning, match="label_p=0.5 is set, but this training forward pass got no labels"):
        model(input_ids=word_ids(rows=4))
    model.eval()
    model(input_ids=word_ids(rows=4))  # evaluation needs no labels
    assert handle.stats()["labels"]["tokens_seen"] == 0
