"""`patch_model` and `unpatch_model`: SSE on a model's word-piece inputs in one call, and off again.

`patch_model` is the patch-time policy: it finds the embedding module(s) that receive token ids (the encoder's
and, when asked, the decoder's), builds their samplers from the model's vocabulary (SSE-SE) or a graph
(SSE-Graph, `prepare_graph`), and returns the attached `SSEHandle`. Nothing on the model changes but the hooks
themselves: no parameter, buffer or attribute is added, so `state_dict()` and saved checkpoints stay plain.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import warnings
from collections.abc import Iterable
from typing import Any

from torch import nn

from . import graph_sources
from .config import SSEConfig
from .discovery import declared_rows, find_token_embeddings, num_classes, stacks_sharing_an_embedding, unwrap_model
from .graph import SSEGraph
from .handle import SSEHandle, get_handle
from .lookups import Lookup
from .samplers import GraphSampler, UniformSampler
from .vocabulary import Vocabulary, as_tokenizer, resolve_vocabulary

__all__ = ["AlreadyPatchedError", "patch_model", "prepare_graph", "unpatch_model"]


class AlreadyPatchedError(RuntimeError):
    """Raised when `patch_model` meets a model that already has SSE attached."""


# Names users reach for that SSEConfig spells otherwise: the hint of an unknown keyword argument.
FIELD_ALIASES = {
    "prob": "p",
    "probability": "p",
    "swap_p": "p",
    "swap_prob": "p",
    "swap_probability": "p",
    "rate": "p",
    "k": "graph_k",
    "knn_k": "graph_k",
    "schedule": "p_schedule",
    "warmup_ratio": "p_warmup_ratio",
    "label_prob": "label_p",
    "exclude_ids": "exclude_token_ids",
}


def check_override_names(overrides: dict[str, Any], call: str) -> None:
    """Keyword overrides that are no SSEConfig field: a TypeError naming the field meant (`prob` -> `p`)."""
    known = [field.name for field in dataclasses.fields(SSEConfig)]
    for name in overrides:
        if name in known:
            continue
        stripped = name[4:] if name.startswith("sse_") else None  # the --sse_<field> spelling
        guess = FIELD_ALIASES.get(name) or (stripped if stripped in known else None)
        guess = guess or next(iter(difflib.get_close_matches(name, known, n=1)), None)
        hint = f" Did you mean {guess}=?" if guess else ""
        raise TypeError(f"Unknown SSEConfig field {name}= passed to {call}.{hint} Valid fields: {', '.join(known)}.")


def config_type_error(config: Any, call: str) -> TypeError:
    """The error for a `config` argument that is no SSEConfig; a tokenizer there was meant for `tokenizer=`."""
    if as_tokenizer(config, call, strict=False) is not None:
        return TypeError(
            f"{call} got a tokenizer ({type(config).__name__}) where its config goes: pass it by name, "
            f"{call}(..., tokenizer=tok), and an SSEConfig (or nothing, for the defaults) as config."
        )
    return TypeError(f"config must be an SSEConfig, got {type(config).__name__}. Build one with SSEConfig(p=...).")


def patch_model(
    model: nn.Module,
    config: SSEConfig | None = None,
    *,
    tokenizer=None,
    graph: SSEGraph | Any = None,
    replace: bool = False,
    **overrides: Any,
) -> SSEHandle:
    """Apply SSE to the word-piece inputs of `model` and return the handle that undoes it.

    Works on encoders, decoders and encoder-decoders, under DDP/FSDP/DeepSpeed/accelerate wrappers
    and PEFT. The swap runs only in training steps: while the module is in training mode *and*
    grad mode is on, so evaluation, `predict` and `generate` (all under no_grad) see the original ids.
    Keyword overrides change single fields: `patch_model(m, p=0.05)`. For SSE-Graph pass `graph=` an
    `SSEGraph`, a {token: neighbours} mapping or a scipy matrix (else `config.graph` names a file or "knn").
    """
    if isinstance(model, (str, os.PathLike)):
        raise TypeError(
            f"patch_model expects a torch.nn.Module (the model itself), got the name or path {os.fspath(model)!r}: "
            f"load the model first, e.g. model = AutoModelForSequenceClassification.from_pretrained("
            f"{os.fspath(model)!r}), then patch_model(model, ...)."
        )
    if not isinstance(model, nn.Module):
        raise TypeError(f"patch_model expects a torch.nn.Module, got {type(model).__name__}.")
    if config is None:
        config = SSEConfig()
    elif not isinstance(config, SSEConfig):
        raise config_type_error(config, "patch_model")
    check_override_names(overrides, "patch_model")
    if overrides:
        config = config.replace(**overrides)
    tokenizer = as_tokenizer(tokenizer, "patch_model(tokenizer=)")

    base = unwrap_model(model)
    existing = get_handle(base)
    if existing is not None and not replace:
        raise AlreadyPatchedError(
            f"{type(base).__name__} already has SSE attached ({existing!r}). Call handle.remove() or "
            "unpatch_model(model) first, or pass replace=True to swap in the new settings."
        )

    embeddings = find_token_embeddings(base, decoder=config.decoder_p is not None)
    if config.decoder_p is not None and "decoder" not in embeddings:
        raise ValueError(
            f"SSEConfig.decoder_p={config.decoder_p} swaps the decoder inputs of encoder-decoder models (T5, BART), "
            f"but {type(base).__name__} has no decoder stack, so it would be ignored. Leave decoder_p=None and set p."
        )
    if config.swap_tokens != "all" and "input" not in embeddings:
        raise ValueError(
            f"SSEConfig.swap_tokens={config.swap_tokens!r} splits causal-LM inputs by their labels, but "
            f"{type(base).__name__} is an encoder-decoder whose labels are decoder targets, not aligned with its "
            "inputs. Use swap_tokens='all' (and decoder_p for the decoder inputs)."
        )
    stacks = stacks_sharing_an_embedding(base, embeddings)
    model_config = getattr(base, "config", None)
    if model_config is not None and hasattr(model_config, "get_text_config"):
        model_config = model_config.get_text_config()
    declared = [rows for rows in map(declared_rows, embeddings.values()) if rows is not None]
    vocabulary = resolve_vocabulary(
        model_config,
        tokenizer,
        table_size=min(declared) if declared else None,
        exclude_token_ids=config.exclude_token_ids,
    )
    table_size = max([vocabulary.size, *declared, getattr(model_config, "vocab_size", 0) or 0])
    source = graph if graph is not None else config.graph
    if source is not None:
        knn = isinstance(source, str) and source == "knn"
        sampler = GraphSampler(
            prepare_graph(
                source,
                table_size=table_size,
                vocabulary=vocabulary,
                tokenizer=tokenizer,
                model=base,
                **({"k": config.graph_k} if knn else {}),
            )
        )
    else:
        sampler = UniformSampler(vocabulary.candidates, table_size)

    lookups = [
        Lookup(role, module, sampler, config.decoder_p if role == "decoder" else config.p, stack=stacks.get(role))
        for role, module in embeddings.items()
    ]
    lookups += _table_lookups(base, config.table_p, embeddings)
    labels = num_classes(base, model_config) if config.label_p > 0 else None
    handle = SSEHandle(base, config, vocabulary, lookups, num_labels=labels, wrapper=model)

    if existing is not None:
        existing.remove()
    handle.attach()  # registers the handle, so get_handle(model) finds it
    return handle


def _table_lookups(model: nn.Module, table_p: dict[str, float], word_pieces: dict[str, nn.Module]) -> list[Lookup]:
    """Lookups for the other categorical tables named in `table_p` (by module name or dotted suffix)."""
    lookups = []
    embedding_names = [name for name, module in model.named_modules() if isinstance(module, nn.Embedding)]
    taken = {id(module) for module in word_pieces.values()}
    for key, p in table_p.items():
        matches = [name for name in embedding_names if name == key or name.endswith("." + key)]
        if len(matches) != 1:
            problem = "no" if not matches else f"{len(matches)} ({matches})"
            raise ValueError(
                f"table_p names {key!r}, but {type(model).__name__} has {problem} embedding module with that name. "
                f"Use a unique name or dotted suffix from: {embedding_names}."
            )
        module = model.get_submodule(matches[0])
        if id(module) in taken:
            raise ValueError(
                f"table_p names {matches[0]!r}, the word-piece embedding: set its probability with p instead."
            )
        taken.add(id(module))
        rows = module.num_embeddings
        protected = {module.padding_idx} if module.padding_idx is not None else set()
        candidates = [i for i in range(rows) if i not in protected]
        if len(candidates) < 2:
            raise ValueError(f"table_p: {matches[0]!r} has {rows} row(s); SSE needs at least 2 to swap between.")
        lookups.append(Lookup(matches[0], module, UniformSampler(candidates, rows), p))
    return lookups


def prepare_graph(
    graph: Any,
    *,
    table_size: int,
    tokenizer=None,
    vocabulary: Vocabulary | None = None,
    model: nn.Module | None = None,
    exclude_token_ids: Iterable[int] = (),
    **knn_options: Any,
) -> SSEGraph:
    """Turn what a user passed into the graph a hook samples from, once per patch.

    `graph` is an `SSEGraph`, a file path (`SSEGraph.from_file`: a saved `.safetensors` graph, a
    `.tsv`/`.txt`/`.jsonl` edge list, a `.json` mapping), a mapping (`from_dict`), a scipy sparse
    matrix (`from_scipy`) or `"knn"` (`from_embeddings(model, **knn_options)`). The result never
    touches the vocabulary's protected ids (special, reserved and `exclude_token_ids`; edges at them are
    removed, with a warning for user graphs) and covers `table_size` ids (the embedding's rows).
    `vocabulary` is the one `patch_model` resolved; without it, it is resolved from `tokenizer`.
    """
    if vocabulary is None:
        vocabulary = _standalone_vocabulary(tokenizer, table_size, exclude_token_ids)
    excluded, vocab_size = vocabulary.protected, vocabulary.size
    if isinstance(graph, str) and graph == "knn":
        if model is None:
            raise ValueError('graph="knn" builds the graph from the model\'s input embeddings: pass model=...')
        graph = SSEGraph.from_embeddings(model, exclude_token_ids=excluded, vocab_size=vocab_size, **knn_options)
    elif knn_options:
        raise TypeError(f"{sorted(knn_options)} only apply to graph='knn'.")
    elif isinstance(graph, (str, os.PathLike)) and os.fspath(graph).endswith(".safetensors"):
        graph = SSEGraph.load(graph)
        graph = graph if tokenizer else graph.resized(vocab_size)
    elif not isinstance(graph, SSEGraph):
        # One trip: whatever the user has is read into edges, and the edges are built into a graph once. A file's
        # token strings are counted by the tokenizer; a scipy matrix's shape is its own vocabulary.
        own_size = hasattr(graph, "tocoo") or (tokenizer is not None and isinstance(graph, (str, os.PathLike)))
        edges = graph_sources.read_edges(graph, tokenizer=tokenizer, vocab_size=None if own_size else vocab_size)
        graph = SSEGraph.from_source_edges(edges)
    before = graph.num_edges
    graph = graph.excluding(excluded)
    if graph.num_edges < before:
        warnings.warn(
            f"sse_hf: removed {before - graph.num_edges} of the graph's {before} edges that start or end at special, "
            "reserved or excluded tokens: SSE never swaps those tokens nor swaps tokens into them.",
            UserWarning,
            stacklevel=2,
        )
    before = graph.num_edges
    try:
        graph = graph.excluding(range(vocab_size, graph.vocab_size))
    except ValueError:
        raise ValueError(
            f"Every edge of the graph starts or ends at ids {vocab_size} and above, past the vocabulary "
            f"({vocabulary.source}), so SSE-Graph would never swap. Was the graph built for another tokenizer?"
        ) from None
    if graph.num_edges < before:
        warnings.warn(
            f"sse_hf: removed {before - graph.num_edges} of the graph's {before} edges that start or end at ids "
            f"{vocab_size} and above, past the vocabulary ({vocabulary.source}): those embedding rows are never "
            "looked up (padding rows of the table), so SSE must not swap tokens into them.",
            UserWarning,
            stacklevel=2,
        )
    return graph.resized(table_size)  # pads for a padded table; refuses edges at ids the table lacks


def _standalone_vocabulary(tokenizer, table_size: int, exclude_token_ids: Iterable[int]) -> Vocabulary:
    """The vocabulary `prepare_graph` protects when called on its own: the tokenizer's, else the table's ids."""
    if tokenizer is not None:
        return resolve_vocabulary(None, tokenizer, exclude_token_ids=exclude_token_ids)
    protected = frozenset(int(i) for i in exclude_token_ids)
    candidates = tuple(i for i in range(table_size) if i not in protected)
    return Vocabulary(table_size, candidates, protected, f"table of {table_size} rows")


def unpatch_model(model: nn.Module) -> bool:
    """Remove whatever sse_hf attached to `model`. Returns True if something was removed."""
    handle = get_handle(model)
    if handle is None:
        return False
    handle.remove()
    return True
