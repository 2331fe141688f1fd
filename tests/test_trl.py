"""SSE inside TRL's SFTTrainer on a tiny in-process Llama: swap_tokens all / prompt / completion, with and without packing."""

from __future__ import annotations

import pytest
import torch

from sse_hf import SSECallback, get_handle
from tiny_models import WORDS, build

trl = pytest.importorskip("trl")


def sft_data():
    from datasets import Dataset

    prompts = [" ".join(WORDS[i : i + 5]) for i in range(24)]
    completions = [" ".join(WORDS[i + 5 : i + 9]) for i in range(24)]
    return Dataset.from_dict({"prompt": prompts, "completion": completions})


def train_and_record(tokenizer, tmp_path, swap_tokens: str, packing: bool, **extra):
    """Run SFTTrainer with SSE; return (original ids, labels, ids the embedding looked up) of every training step."""
    tokenizer.eos_token = "[SEP]"
    model = build("llama")
    steps, starts = [], []
    # Recorders: the model's inputs as the collator made them, and the ids the embedding really looked up.

    def record_inputs(module, args, kwargs):
        if module.training:
            steps.append([kwargs["input_ids"].clone(), kwargs["labels"].clone()])
            starts.append(_sequence_starts(kwargs))

    model.register_forward_pre_hook(record_inputs, with_kwargs=True)
    model.get_input_embeddings().register_forward_hook(
        lambda module, args, out: steps[-1].append(args[0].clone()) if module.training else None
    )
    args = trl.SFTConfig(
        output_dir=str(tmp_path / swap_tokens),
        max_steps=3,
        per_device_train_batch_size=4,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        max_length=32,
        packing=packing,
        dataloader_pin_memory=False,
        **extra,
    )
    callback = SSECallback(p=0.3, swap_tokens=swap_tokens, seed=0)
    trainer = trl.SFTTrainer(
        model=model, args=args, train_dataset=sft_data(), processing_class=tokenizer, callbacks=[callback]
    )
    with callback:
        trainer.train()
    assert get_handle(model) is None
    assert all(len(step) == 3 for step in steps) and len(steps) == 3
    ids = torch.cat([step[0].flatten() for step in steps])
    labels = torch.cat([step[1].flatten() for step in steps])
    looked_up = torch.cat([step[2].flatten() for step in steps])
    if packing:  # several sequences share a row
        assert max(starts) > 1, starts
    return ids, labels, looked_up, callback, trainer


def _sequence_starts(kwargs) -> int:
    """How many sequences the first row holds (position_ids restart at 0 for each one)."""
    positions = kwargs.get("position_ids")
    return 1 if positions is None else int((positions[0] == 0).sum())


@pytest.mark.parametrize("packing", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("swap_tokens", ["all", "prompt", "completion"])
def test_sft_trainer_swaps_only_where_swap_tokens_allows(tokenizer, tmp_path, swap_tokens, packing):
    ids, labels, looked_up, callback, trainer = train_and_record(tokenizer, tmp_path, swap_tokens, packing)
    swapped = looked_up != ids
    prompt = labels == -100
    assert prompt.any() and (~prompt).any()  # SFTTrainer masked the prompt in the labels
    if swap_tokens == "prompt":
        assert swapped[prompt].any() and not swapped[~prompt].any()
    elif swap_tokens == "completion":
        assert swapped[~prompt].any() and not swapped[prompt].any()
    else:
        assert swapped[prompt].any() and swapped[~prompt].any()
    # The counts are of the allowed tokens only, so the realised rate stays near p; logs carry it.
    assert callback.totals[2] == int(swapped.sum()) and 0.1 < callback.swap_rate < 0.5
    assert any("sse/swap_rate" in entry for entry in trainer.state.log_history)


def test_sft_trainer_with_neftune_and_prompt_only_sse(tokenizer, tmp_path):
    ids, labels, looked_up, callback, _ = train_and_record(
        tokenizer, tmp_path, "prompt", False, neftune_noise_alpha=5.0
    )
    swapped = looked_up != ids
    assert swapped[labels == -100].any() and not swapped[labels != -100].any()
