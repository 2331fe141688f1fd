"""`SSEConfig`: every knob of Stochastic Shared Embeddings, validated at construction."""

from __future__ import annotations

import dataclasses
import json
import os
import textwrap
import typing
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .schedule import SCHEDULES, PSchedule
from .swap_tokens import SWAP_TOKENS, SwapTokens
from .validation import check_fraction, check_positive_int, check_probability, is_integer

CONFIG_NAME = "sse_config.json"
VERSION_KEY = "sse_hf_version"  # saved configs name the sse-hf that wrote them


@dataclass
class SSEConfig:
    """Settings of Stochastic Shared Embeddings (Wu et al., NeurIPS 2019) for one model.

    Use it with `patch_model(model, config)` or `SSECallback(config)`. It is saved as `sse_config.json`
    next to the model weights so that a run can be reproduced from its output directory.
    """

    p: float = field(
        default=0.05,
        metadata={
            "help": "Probability that a word-piece input token is swapped during training (SSE-SE: for a uniformly "
            "drawn other token). 0 disables the swap. The paper uses 0.01 to 0.2; tune it on a split of your own "
            "training data (README, 'Choosing p')."
        },
    )
    decoder_p: float | None = field(
        default=None,
        metadata={
            "help": "Swap probability for the decoder inputs of encoder-decoder models (T5, BART). None leaves the "
            "decoder inputs untouched; labels are never changed."
        },
    )
    graph: str | None = field(
        default=None,
        metadata={
            "help": "SSE-Graph instead of SSE-SE: a graph file (.safetensors from SSEGraph.save, a .tsv/.jsonl edge "
            "list or a .json mapping of token -> neighbours; a .tsv of integers says in its first line whether they "
            "are ids, source_id<TAB>target_id, or token text, source_token<TAB>target_token), or 'knn' to link each "
            "token to its graph_k nearest neighbours in the model's own input embeddings. None (default) uses SSE-SE."
        },
    )
    graph_k: int = field(
        default=10,
        metadata={"help": "Neighbours per token for graph='knn'."},
    )
    label_p: float = field(
        default=0.0,
        metadata={
            "help": "Label SSE for classification: probability that a training label is replaced by a uniformly "
            "drawn different class. 0 disables it. Never applied in evaluation; a regression model is an error."
        },
    )
    table_p: dict[str, float] = field(
        default_factory=dict,
        metadata={
            "help": "Per-table SSE-SE for other categorical embedding tables, by module name (or name suffix), "
            'e.g. {"token_type_embeddings": 0.05}. Replacements are uniform over the table\'s rows.'
        },
    )
    p_schedule: PSchedule = field(
        default="constant",
        metadata={
            "help": f"How every swap probability changes over training: one of {list(SCHEDULES)}: p times a factor "
            "driven by the trainer's step, or for 'adaptive' by the training loss (see adaptive_start)."
        },
    )
    p_warmup_ratio: float = field(
        default=0.0,
        metadata={"help": "Fraction of the total steps over which the p factor rises linearly from 0 to 1."},
    )
    adaptive_start: float = field(
        default=0.5,
        metadata={
            "help": "p_schedule='adaptive': the training loss, as a fraction of its first logged value, below which "
            "p starts to rise from 0. Above it the model under-fits and p stays 0."
        },
    )
    adaptive_full: float = field(
        default=0.1,
        metadata={
            "help": "p_schedule='adaptive': the training loss, as a fraction of its first logged value, at and "
            "below which the full p applies. Must be below adaptive_start."
        },
    )
    exclude_token_ids: list[int] = field(
        default_factory=list,
        metadata={
            "help": "Extra token ids that are never swapped and never drawn as replacements, on top of the "
            "tokenizer's special, padding, mask and reserved tokens."
        },
    )
    swap_tokens: SwapTokens = field(
        default="all",
        metadata={
            "help": f"Which input tokens may be swapped: one of {list(SWAP_TOKENS)}. 'prompt' and 'completion' "
            "split each sequence by its labels (-100 marks the prompt, as TRL's SFTTrainer sets them) or TRL's "
            "completion_mask: e.g. regularise the prompt while the model learns the completion exactly. Causal LMs only."
        },
    )
    seed: int | None = field(
        default=None,
        metadata={
            "help": "Seed of a private random generator for the swaps. None (default) draws from torch's global "
            "generator, which Trainer seeds and restores on resume."
        },
    )

    def __post_init__(self) -> None:
        self.p = check_probability("SSEConfig.p", self.p)
        if self.decoder_p is not None:
            self.decoder_p = check_probability("SSEConfig.decoder_p", self.decoder_p)
        if isinstance(self.graph, os.PathLike):  # a pathlib.Path is a file path like its text; kept as text (JSON)
            if os.fspath(self.graph) == "knn":
                raise ValueError(
                    f"SSEConfig.graph {self.graph!r} is a path, but the text 'knn' asks for the kNN graph: write "
                    "graph='knn' for it, or './knn' for a file of that name."
                )
            self.graph = os.fspath(self.graph)
        if self.graph is not None and (not isinstance(self.graph, str) or not self.graph):
            raise ValueError(f"SSEConfig.graph must be a file path or 'knn', got {self.graph!r}.")
        if isinstance(self.graph, str) and self.graph != "knn" and self.graph.strip().lower() == "knn":
            raise ValueError(f"SSEConfig.graph {self.graph!r}: write 'knn' (lower case) for the kNN graph.")
        self.graph_k = check_positive_int("SSEConfig.graph_k", self.graph_k)
        self.label_p = check_probability("SSEConfig.label_p", self.label_p)
        if not isinstance(self.table_p, dict):
            raise ValueError(
                f'SSEConfig.table_p must map embedding module names to probabilities, e.g. {{"token_type_embeddings": '
                f"0.05}}; got {self.table_p!r}."
            )
        self.table_p = dict(self.table_p)
        for name, value in self.table_p.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"SSEConfig.table_p keys must be embedding module names, got {name!r}.")
            self.table_p[name] = check_probability(f"SSEConfig.table_p[{name!r}]", value)
        if self.p_schedule not in SCHEDULES:
            raise ValueError(f"SSEConfig.p_schedule must be one of {list(SCHEDULES)}, got {self.p_schedule!r}.")
        self.p_warmup_ratio = check_fraction(
            "SSEConfig.p_warmup_ratio", self.p_warmup_ratio, low_open=False, high_open=True, what="a number"
        )
        if self.p_schedule == "linear_warmup" and self.p_warmup_ratio == 0:
            raise ValueError("SSEConfig.p_schedule 'linear_warmup' needs p_warmup_ratio > 0, e.g. 0.1.")
        for name in ("adaptive_start", "adaptive_full"):
            setattr(
                self, name, check_fraction(f"SSEConfig.{name}", getattr(self, name), low_open=True, high_open=False)
            )
        if self.adaptive_full >= self.adaptive_start:
            raise ValueError(
                f"SSEConfig.adaptive_full ({self.adaptive_full}) must be below adaptive_start ({self.adaptive_start}): "
                "p rises as the training loss falls from the one to the other."
            )
        if isinstance(self.exclude_token_ids, (str, bytes)) or not isinstance(self.exclude_token_ids, Iterable):
            raise ValueError(
                f"SSEConfig.exclude_token_ids must be a list of token ids, e.g. [101, 102]; got {self.exclude_token_ids!r}."
            )
        self.exclude_token_ids = list(self.exclude_token_ids)
        for token_id in self.exclude_token_ids:
            if not is_integer(token_id) or token_id < 0:
                raise ValueError(
                    f"SSEConfig.exclude_token_ids must hold non-negative integer token ids, got {token_id!r}."
                )
        self.exclude_token_ids = [int(token_id) for token_id in self.exclude_token_ids]  # numpy ints saved as JSON
        if self.swap_tokens not in SWAP_TOKENS:
            raise ValueError(f"SSEConfig.swap_tokens must be one of {list(SWAP_TOKENS)}, got {self.swap_tokens!r}.")
        if self.seed is not None and not is_integer(self.seed):
            raise ValueError(f"SSEConfig.seed must be an integer or None, got {self.seed!r}.")
        if self.seed is not None:
            self.seed = int(self.seed)

    @property
    def is_active(self) -> bool:
        """True when some swap probability is above 0: the config changes training at all."""
        probabilities = [self.p, self.decoder_p or 0.0, self.label_p, *self.table_p.values()]
        return any(value > 0 for value in probabilities)

    def replace(self, **overrides: Any) -> SSEConfig:
        """Return a validated copy with some fields changed; unknown names are a clear error."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"Unknown SSEConfig field(s) {unknown}. Valid fields: {sorted(known)}.")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    def to_saved_dict(self) -> dict[str, Any]:
        """`to_dict()` stamped with the sse-hf version that writes it (`sse_hf_version`), as saved files are."""
        from . import __version__

        return {**self.to_dict(), VERSION_KEY: __version__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SSEConfig:
        """Build a config from `to_dict()` output; unknown keys are a clear error, except in a dict that sse-hf saved
        (it carries `sse_hf_version`): there keys from a newer sse-hf warn and are dropped, so its files still load."""
        if not isinstance(data, Mapping):
            raise TypeError(f"SSEConfig.from_dict expects a dict of field values (as to_dict() writes), got {data!r}.")
        data = dict(data)
        if VERSION_KEY in data:
            from . import __version__

            written_by = data.pop(VERSION_KEY)
            unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
            if unknown:
                warnings.warn(
                    f"sse_hf: this SSEConfig was saved by sse-hf {written_by}, whose fields {unknown} sse-hf "
                    f"{__version__} does not know: they are dropped (upgrade sse-hf to use them).",
                    UserWarning,
                    stacklevel=2,
                )
                data = {name: value for name, value in data.items() if name not in unknown}
        return cls().replace(**data)

    def save_pretrained(self, save_directory: str | os.PathLike) -> str:
        """Write `sse_config.json` into `save_directory` (created if needed) and return its path."""
        if os.path.isfile(save_directory):
            raise ValueError(f"save_pretrained expects a directory, but {save_directory!s} is a file.")
        os.makedirs(save_directory, exist_ok=True)
        path = os.path.join(save_directory, CONFIG_NAME)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self.to_saved_dict(), handle, indent=2, sort_keys=True)
            handle.write("\n")
        return path

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> SSEConfig:
        """Load `sse_config.json` from a directory written by `save_pretrained` (or the file itself)."""
        path = os.fspath(directory)
        if os.path.isdir(path):
            path = os.path.join(path, CONFIG_NAME)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No {CONFIG_NAME} found at {path}. Save one with SSEConfig.save_pretrained(dir).")
        with open(path, encoding="utf-8") as handle:
            try:
                data = json.load(handle)
            except ValueError as error:
                raise ValueError(
                    f"{path} is not valid JSON ({error}). Rewrite it with SSEConfig.save_pretrained, or fix it by hand."
                ) from error
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a JSON object of SSEConfig fields, got {type(data).__name__}.")
        return cls.from_dict(data)


def _args_section(cls: type) -> str:
    """An `Args:` section from the fields' own help (their single source), as transformers documents its classes."""
    hints = typing.get_type_hints(cls)
    lines = ["", "    Args:"]
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        kind = hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        lines += textwrap.wrap(
            f"{f.name} (`{kind}`, defaults to `{default!r}`): {f.metadata['help']}",
            width=115,
            initial_indent="        ",
            subsequent_indent="            ",
            break_on_hyphens=False,
        )
    return "\n".join(lines) + "\n"


SSEConfig.__doc__ += _args_section(SSEConfig)


def config_field_types() -> dict[str, Any]:
    """SSEConfig's fields by name, with their types."""
    hints = typing.get_type_hints(SSEConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(SSEConfig) if f.init}


def field_from_text(name: str, value: Any) -> Any:
    """The value of SSEConfig field `name` given as text: JSON text for a dict or list field (command lines and
    search spaces hold strings and scalars only); any other value as it is, for SSEConfig to validate."""
    if typing.get_origin(config_field_types()[name]) in (dict, list) and isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"sse_{name}={value!r} is not valid JSON text ({error}). Give it as JSON, e.g. "
                f"--sse_table_p '{{\"token_type_embeddings\": 0.05}}'."
            ) from error
    return value


def idle_fields(config: SSEConfig) -> dict[str, str]:
    """The fields set away from their defaults that change nothing under the config's other fields, each with why:
    for a warning where a user gave them (a value that silently does nothing is a setting the user believes in)."""
    defaults = SSEConfig()
    changed = {name for name in config_field_types() if getattr(config, name) != getattr(defaults, name)}
    word_pieces = config.p > 0 or bool(config.decoder_p)
    reasons: dict[str, str] = {}
    if not config.is_active:  # the most general reason first: setdefault keeps it
        others = ("graph", "graph_k", "p_schedule", "p_warmup_ratio", "adaptive_start", "adaptive_full")
        for name in (*others, "exclude_token_ids", "swap_tokens", "seed"):
            reasons[name] = "every swap probability (SSEConfig.p, decoder_p, label_p, table_p) is 0"
    if config.p == 0:
        reasons.setdefault("swap_tokens", "it picks which inputs SSEConfig.p swaps, and SSEConfig.p is 0")
    if not word_pieces:
        for name in ("graph", "graph_k", "exclude_token_ids"):
            reasons.setdefault(name, "it acts on word-piece swaps, and SSEConfig.p is 0 (decoder_p unset)")
    if config.graph != "knn":
        reasons.setdefault("graph_k", "it is the neighbour count of SSEConfig.graph 'knn' only")
    if config.p_schedule != "adaptive":
        for name in ("adaptive_start", "adaptive_full"):
            reasons.setdefault(name, f"it acts under SSEConfig.p_schedule 'adaptive' only, not {config.p_schedule!r}")
    if config.p_schedule in ("constant", "adaptive"):
        reasons.setdefault("p_warmup_ratio", f"SSEConfig.p_schedule {config.p_schedule!r} has no warm-up")
    return {name: reason for name, reason in reasons.items() if name in changed}
