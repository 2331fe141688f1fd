"""A patched model under torch.compile(fullgraph=True) trains with no graph break from the swap, in every family."""

import pytest
import torch

from sse_hf import patch_model
from tiny_models import ENCODER_DECODER, FAMILIES, build, word_ids


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


def test_a_private_seed_under_fullgraph_compile_is_a_clear_error_and_works_without_fullgraph(tokenizer):
    """Dynamo cannot pass a torch.Generator to torch.rand: seed= and fullgraph=True cannot go together (documented)."""
    model = build("bert").train()
    handle = patch_model(model, p=0.5, seed=3, tokenizer=tokenizer)
    labels = torch.zeros(4, dtype=torch.long)
    torch._dynamo.reset()
    with pytest.raises(Exception, match=r"SSEConfig\.seed draws the swaps from a private torch\.Generator.*seed=None"):
        torch.compile(model, fullgraph=True, backend="eager")(input_ids=word_ids(rows=4), labels=labels)
    torch._dynamo.reset()
    torch.compile(model, backend="eager")(input_ids=word_ids(rows=4), labels=labels).loss.backward()
    assert handle.tokens_swapped > 0
    handle.remove()
    torch._dynamo.reset()


@pytest.mark.parametrize("graph", [False, True], ids=["sse-se", "sse-graph"])
def test_dynamic_shapes_compile_as_the_plain_model_does(graph, tokenizer):
    """torch.compile(dynamic=True) traces symbolic batch shapes: the draws must not pass `generator=None`, which
    dynamo refuses there ("SymIntArrayRef expected to contain only concrete integers")."""
    model = build("bert").train()
    vocab = len(tokenizer)
    edges = {i: [(i + 1) % vocab, (i + 2) % vocab] for i in range(5, vocab)}
    handle = patch_model(model, p=0.5, label_p=0.5, tokenizer=tokenizer, graph=edges if graph else None)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, dynamic=True, backend="eager")
    for rows, cols in ((4, 12), (6, 9)):
        compiled(input_ids=word_ids(rows=rows, cols=cols), labels=torch.zeros(rows, dtype=torch.long)).loss.backward()
    assert handle.tokens_swapped > 0
    handle.remove()
    torch._dynamo.reset()
