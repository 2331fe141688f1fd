"""swap_tokens: which positions may be swapped, read from labels (-100 = prompt) or TRL's completion_mask."""

from __future__ import annotations

import pytest
import torch

from sse_hf import SSEConfig, patch_model
from sse_hf.swap_tokens import scope_mask
from tiny_models import build, record_lookups, tiny_bert, word_ids


def test_scope_mask_reads_labels_aligned_with_inputs_and_prefers_completion_mask():
    labels = torch.tensor([[-100, -100, 7, 8], [-100, 9, 10, -100]])
    assert scope_mask("all", {"labels": labels}) is None
    assert scope_mask("completion", {"labels": labels}).tolist() == [
        [False, False, True, True],
        [False, True, True, False],
    ]
    assert scope_mask("prompt", {"labels": labels}).tolist() == [
        [True, True, False, False],
        [True, False, False, True],
    ]
    completion_mask = torch.tensor([[0, 1, 1, 1], [0, 0, 0, 1]])
    assert scope_mask("completion", {"labels": labels, "completion_mask": completion_mask}).tolist() == [
        [False, True, True, True],
        [False, False, False, True],
    ]


def test_swap_tokens_is_validated():
    with pytest.raises(ValueError, match="swap_tokens must be one of"):
        SSEConfig(swap_tokens="answer")


@pytest.mark.parametrize("swap_tokens", ["prompt", "completion"])
def test_causal_lm_swaps_only_the_allowed_positions(swap_tokens):
    model = build("llama")
    ids = word_ids(rows=16, cols=12)
    labels = ids.clone()
    labels[:, :6] = -100  # the prompt
    records, _ = record_lookups(model.get_input_embeddings())
    with patch_model(model, p=0.5, swap_tokens=swap_tokens) as handle:
        model.train()
        model(input_ids=ids, labels=labels).loss.backward()
    swapped = records[-1] != ids
    allowed = labels == -100 if swap_tokens == "prompt" else labels != -100
    assert swapped[allowed].any() and not swapped[~allowed].any()
    assert handle.tokens_swapped == int(swapped.sum())
    assert handle.tokens_eligible <= int(allowed.sum())


def test_missing_labels_are_a_clear_error_in_training_but_not_in_eval():
    model = build("llama")
    ids = word_ids()
    with patch_model(model, p=0.5, swap_tokens="prompt"):
        model.train()
        with pytest.raises(ValueError, match="swap_tokens='prompt' needs per-token `labels`"):
            model(input_ids=ids)
        model.eval()
        model(input_ids=ids)  # no swap in evaluation, so nothing is needed


def test_labels_not_aligned_with_inputs_are_a_clear_error():
    model = tiny_bert()
    with patch_model(model, p=0.5, swap_tokens="completion"):
        model.train()
        with pytest.raises(ValueError, match="shape \\(8,\\) and the input ids \\(8, 12\\)"):
            model(input_ids=word_ids(), labels=torch.zeros(8, dtype=torch.long))


def test_encoder_decoder_refuses_prompt_or_completion_scope():
    with pytest.raises(ValueError, match="encoder-decoder whose labels are decoder targets"):
        patch_model(build("t5"), p=0.1, swap_tokens="prompt")


@pytest.mark.parametrize("swap_tokens", ["prompt", "completion"])
def test_labels_that_mark_no_prompt_say_so(swap_tokens):
    """TRL's completion_only_loss=False: labels with no -100 and no completion_mask cannot mark the prompt."""
    model = build("llama").train()
    ids = word_ids()
    with patch_model(model, p=0.5, swap_tokens=swap_tokens):
        with pytest.warns(UserWarning, match=f"swap_tokens='{swap_tokens}'.*no -100.*cannot tell the prompt"):
            model(input_ids=ids, labels=ids)


def test_the_prompt_check_reads_the_labels_on_the_first_training_step_only():
    """Labels that mark the prompt on the first step: no warning, and later steps are not read again (no host sync
    per step), so a later step whose labels mark no prompt passes silently."""
    import warnings

    model = build("llama").train()
    ids = word_ids()
    marked = ids.clone()
    marked[:, :3] = -100
    with patch_model(model, p=0.5, swap_tokens="prompt"), warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model(input_ids=ids, labels=marked)
        model(input_ids=ids, labels=ids)
