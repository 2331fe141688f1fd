"""Finding what SSE hooks in any model: the plain model under its wrappers, its token-id embeddings, the
encoder and decoder stacks that share one, other embedding tables by name, and the classes label SSE draws.
"""

from __future__ import annotations

from torch import nn


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain model under DDP, DataParallel, FSDP, DeepSpeed, torch.compile, PEFT and SentenceTransformer wrappers."""
    seen = set()
    while id(model) not in seen:
        seen.add(id(model))
        if hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):  # torch.compile
            model = model._orig_mod
        elif type(model).__name__ in {
            "DistributedDataParallel",
            "DataParallel",
            "FullyShardedDataParallel",
            "DeepSpeedEngine",
        } and isinstance(getattr(model, "module", None), nn.Module):
            model = model.module
        elif type(model).__module__.startswith("peft.") and hasattr(model, "get_base_model"):
            model = model.get_base_model()
        elif _sentence_transformer_model(model) is not None:
            model = _sentence_transformer_model(model)
    return model


def _sentence_transformer_model(model: nn.Module) -> nn.Module | None:
    """The Transformers model inside a sentence-transformers `SentenceTransformer` (`model[0].auto_model`), else None.

    A SentenceTransformer is an `nn.Sequential` of modules with no `get_input_embeddings()` of its own.
    """
    if (
        not isinstance(model, nn.Sequential)
        or len(model) == 0
        or callable(getattr(model, "get_input_embeddings", None))
    ):
        return None
    inner = getattr(model[0], "auto_model", None)
    return inner if isinstance(inner, nn.Module) else None


def _input_embeddings(module: nn.Module) -> nn.Module | None:
    """`module.get_input_embeddings()`, or None where the model has none or does not implement it."""
    getter = getattr(module, "get_input_embeddings", None)
    if getter is None:
        return None
    try:
        embeddings = getter()
    except (NotImplementedError, AttributeError):
        return None
    return embeddings if isinstance(embeddings, nn.Module) else None


def declared_rows(embedding: nn.Module) -> int | None:
    """The row count an embedding declares (not its weight's shape, which ZeRO-3 partitions to 0)."""
    rows = getattr(embedding, "num_embeddings", None)
    return rows if isinstance(rows, int) and rows > 0 else None


def find_token_embeddings(model: nn.Module, decoder: bool = False) -> dict[str, nn.Module]:
    """The embedding modules that receive token ids, by role: "input", or "encoder" and "decoder".

    Encoder-decoder models in current transformers give the encoder and the decoder their own
    `embed_tokens` module (sharing one weight), so the shared table returned by the model's
    `get_input_embeddings()` may never be called: hook the stacks' own lookups instead.
    """
    config = getattr(model, "config", None)
    get_encoder = getattr(model, "get_encoder", None)
    if getattr(config, "is_encoder_decoder", False) and callable(get_encoder):
        encoder = _input_embeddings(get_encoder()) or getattr(get_encoder(), "embed_tokens", None)
        found = {"encoder": encoder}
        if decoder:
            get_decoder = getattr(model, "get_decoder", None)
            stack = get_decoder() if callable(get_decoder) else None
            found["decoder"] = (
                None if stack is None else _input_embeddings(stack) or getattr(stack, "embed_tokens", None)
            )
    else:
        found = {"input": _input_embeddings(model)}
    missing = [role for role, module in found.items() if module is None]
    if missing:
        raise ValueError(
            f"Cannot find the {' and '.join(missing)} token embedding of {type(model).__name__}: "
            "get_input_embeddings() returned None or is not implemented. SSE needs the embedding module that "
            "receives token ids; pass a model whose get_input_embeddings() returns it (for value-head or reward "
            "wrappers, patch the inner language model)."
        )
    return found


def stacks_sharing_an_embedding(model: nn.Module, embeddings: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """Encoder and decoder stacks, by role, when one embedding module serves both (older transformers' T5).

    Then the hook must tell encoder calls from decoder calls, by which stack's forward is running.
    """
    if "encoder" not in embeddings:
        return {}
    try:
        decoder_embedding = find_token_embeddings(model, decoder=True)["decoder"]
    except ValueError:
        return {}
    if decoder_embedding is not embeddings["encoder"]:
        return {}
    return {"encoder": model.get_encoder(), "decoder": model.get_decoder()}


def num_classes(model: nn.Module, model_config) -> int:
    """How many classes label SSE draws from; a clear error for regression and non-classifiers."""
    name = type(model).__name__
    num_labels = getattr(model_config, "num_labels", None)
    if not ("ForSequenceClassification" in name or "ForTokenClassification" in name):
        raise ValueError(
            f"label_p is set, but {name} is not a sequence- or token-classification model: label SSE swaps class "
            "labels only. Set label_p=0 for this model."
        )
    if getattr(model_config, "problem_type", None) == "regression" or num_labels == 1:
        raise ValueError(
            f"label_p is set, but {name} is a regression model (num_labels={num_labels}): labels are real values, "
            "not classes. Set label_p=0 for regression tasks such as STS-B."
        )
    if getattr(model_config, "problem_type", None) == "multi_label_classification":
        raise ValueError("label_p is set, but the model does multi-label classification; label SSE needs one class.")
    return int(num_labels)
