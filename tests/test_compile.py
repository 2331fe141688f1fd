"""A patched model under torch.compile(fullgraph=True) trains with no graph break from the swap, in every family."""

import pytest
import torch
from tiny_models import ENCODER_DECODER, FAMILIES, build, word_ids

from sse_hf import patch_model


def _loss(model, family, ids):
    if family in ENCODER_DECODER:
        return model(input_ids=ids, labels=word_ids(rows=ids.shape[0], cols=6, seed=1)).loss
    if family in {"gpt2", "llama"}:
        return model(input_ids=ids, labels=ids).loss
    return model(input_ids=ids, labels=torch.zeros(ids.shape[0], dtype=torch.long)).loss


def _train_compiled(model, family) -> None:
    """AdamW steps through `torch.compile(model, fullgraph=True)`: any graph break raises, and so does a
    recompilation after the first two steps (transformers itself recompiles once, setting config.problem_type)."""
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="eager")  # dynamo's tracing is what breaks graphs
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for step in range(4):
        with torch._dynamo.config.patch(error_on_recompile=step >= 2):
            _loss(compiled, family, word_ids(rows=4)).backward()
        optimizer.step()
        optimizer.zero_grad()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_patched_model_compiles_with_fullgraph_and_swaps(family, tokenizer):
    model = build(family)
    handle = patch_model(model, p=0.5, tokenizer=tokenizer, decoder_p=0.5 if family in ENCODER_DECODER else None)
    try:
        _train_compiled(model, family)
    except Exception as error:  # noqa: BLE001  (tell an SSE break from the family's own)
        handle.remove()
        try:
            _train_compiled(build(family), family)
        except Exception:  # noqa: BLE001
            pytest.skip(f"{family} breaks the graph without SSE too: {type(error).__name__}")
        raise
    assert handle.tokens_swapped > 0 and 0.2 < handle.swap_rate < 0.8
    handle.remove()
    torch._dynamo.reset()
