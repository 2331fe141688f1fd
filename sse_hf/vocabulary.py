"""Which token ids SSE may swap (candidates) and which it must never touch (protected)."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

from .validation import is_integer

# Reserved placeholder tokens that carry no trained meaning: BERT's [unused12], <unused3>,
# T5's <extra_id_7> sentinels, fairseq's madeupword0001 fillers.
RESERVED_TOKEN_PATTERN = re.compile(r"^(\[unused\d+\]|<unused\d+>|<extra_id_\d+>|madeupword\d+)$")

# Config attributes that name special ids, used when no tokenizer is given.
CONFIG_SPECIAL_ID_ATTRIBUTES = (
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "sep_token_id",
    "cls_token_id",
    "mask_token_id",
    "unk_token_id",
    "decoder_start_token_id",
)


@dataclass(frozen=True)
class Vocabulary:
    """The ids SSE draws replacements from, and the ids it never replaces."""

    size: int
    candidates: tuple[int, ...]
    protected: frozenset[int]
    source: str


def _flatten_ids(value: object) -> Iterable[int]:
    if is_integer(value):
        yield int(value)
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            yield from _flatten_ids(item)


def is_tokenizer(obj: object) -> bool:
    """True for objects that work as a tokenizer here: they map ids to tokens and have a length."""
    return obj is not None and callable(getattr(obj, "convert_ids_to_tokens", None)) and hasattr(obj, "__len__")


def as_tokenizer(value: object, option: str, strict: bool = True):
    """The tokenizer `value` stands for: itself, or the `.tokenizer` of a multimodal processor (Llava's and co.).

    None stays None. Anything else (a path string, an image processor) is a TypeError naming `option`, or None
    when not `strict` (Trainer's `processing_class` may be an image processor with no tokenizer).
    """
    if value is None or is_tokenizer(value):
        return value
    inner = getattr(value, "tokenizer", None)
    if is_tokenizer(inner):
        return inner
    if not strict:
        return None
    shown = repr(value) if isinstance(value, (str, bytes, os.PathLike)) else type(value).__name__
    raise TypeError(
        f"{option} must be a tokenizer object (or a processor with a .tokenizer), got {shown}. Load it first, e.g. "
        "AutoTokenizer.from_pretrained(path), and pass the tokenizer."
    )


def tokenizer_protected_ids(tokenizer) -> set[int]:
    """Special, padding, mask, special added and reserved-placeholder ids of a tokenizer."""
    protected = set(getattr(tokenizer, "all_special_ids", []) or [])
    for token_id, added in (getattr(tokenizer, "added_tokens_decoder", {}) or {}).items():
        if getattr(added, "special", False):
            protected.add(int(token_id))
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    protected.update(i for i, token in enumerate(tokens) if token is not None and RESERVED_TOKEN_PATTERN.match(token))
    return protected


def config_protected_ids(model_config) -> set[int]:
    """Special ids that a model config names (pad, bos, eos, sep, cls, mask, unk, decoder start)."""
    protected: set[int] = set()
    for attribute in CONFIG_SPECIAL_ID_ATTRIBUTES:
        protected.update(_flatten_ids(getattr(model_config, attribute, None)))
    return protected


def _far_smaller(tokens: int, rows: int) -> bool:
    """A tokenizer far smaller than the table: more than 10% and 1024 rows short, past what padding for speed adds."""
    return rows - tokens > max(1024, rows // 10)


def resolve_vocabulary(
    model_config, tokenizer=None, table_size: int | None = None, exclude_token_ids: Iterable[int] = ()
) -> Vocabulary:
    """Candidates and protected ids for SSE-SE on word-piece inputs.

    The vocabulary size comes from the tokenizer (`len(tokenizer)`), else from the config, never
    from the embedding weight (padded for speed, or partitioned to 0 rows under ZeRO-3).
    `table_size` is the embedding's declared row count, used only to check the tokenizer fits.
    """
    if tokenizer is not None:
        size = len(tokenizer)
        protected = tokenizer_protected_ids(tokenizer)
        source = f"tokenizer {type(tokenizer).__name__} ({size} tokens)"
        if table_size is not None and size > table_size:
            raise ValueError(
                f"The tokenizer has {size} tokens but the model's input embedding table has only {table_size} rows: "
                f"ids past {table_size - 1} would index outside it. Call model.resize_token_embeddings(len(tokenizer)) "
                "first, or pass the tokenizer this model was trained with."
            )
        if table_size is not None and _far_smaller(size, table_size):
            warnings.warn(
                f"sse_hf: the tokenizer has {size} tokens but the model's input embedding table has {table_size} rows: "
                "is it another model's tokenizer? SSE draws replacements from the tokenizer's ids only, and reads "
                "special tokens from it. Pass the tokenizer this model was trained with "
                "(AutoTokenizer.from_pretrained on the model's own name or folder).",
                UserWarning,
                stacklevel=3,
            )
    else:
        size = getattr(model_config, "vocab_size", None)
        if not isinstance(size, int) or size <= 0:
            raise ValueError(
                "Cannot tell the vocabulary size: no tokenizer was given and the model config has no positive "
                "vocab_size. Pass tokenizer=... to patch_model / SSECallback."
            )
        protected = config_protected_ids(model_config)
        source = f"config.vocab_size ({size} ids)"
        warnings.warn(
            f"sse_hf: no tokenizer given, so SSE draws replacements from all {size} ids of config.vocab_size minus "
            f"the config's special ids {sorted(protected)}. Reserved or unused tokens cannot be told apart this way: "
            "pass tokenizer=... to exclude them.",
            UserWarning,
            stacklevel=3,
        )
    outside = sorted(int(i) for i in exclude_token_ids if int(i) >= size)
    if outside:
        raise ValueError(
            f"SSEConfig.exclude_token_ids holds id(s) {outside[:10]} past the vocabulary of the {source}: they cannot "
            "occur, so nothing you meant is excluded. Take the ids from the tokenizer this model uses."
        )
    protected.update(int(i) for i in exclude_token_ids)
    candidates = tuple(i for i in range(size) if i not in protected)
    if len(candidates) < 2:
        raise ValueError(
            f"SSE needs at least 2 candidate tokens to swap between, but the {source} leaves {len(candidates)} once "
            f"{len(protected)} special, reserved and excluded ids are removed. Check exclude_token_ids and the tokenizer."
        )
    return Vocabulary(size=size, candidates=candidates, protected=frozenset(protected), source=source)
