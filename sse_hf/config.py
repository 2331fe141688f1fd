"""`SSEConfig`: every knob of Stochastic Shared Embeddings, validated at construction."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

CONFIG_NAME = "sse_config.json"


def _check_probability(name: str, value: Any) -> None:
    """Raise a ValueError naming `name` unless `value` is a real number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"SSEConfig.{name} must be a number in [0, 1], got {value!r} ({type(value).__name__}).")
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"SSEConfig.{name} must be in [0, 1], got {value!r}. Typical values are 0.01 to 0.2.")


@dataclass
class SSEConfig:
    """Settings of Stochastic Shared Embeddings (Wu et al., NeurIPS 2019) for one model.

    Use it with `patch_model(model, config)` or `SSECallback(config)`. It is saved as `sse_config.json`
    next to the model weights so that a run can be reproduced from its output directory.
    """

    p: float = field(
        default=0.1,
        metadata={
            "help": "Probability that a word-piece input token is swapped during training (SSE-SE: for a uniformly "
            "drawn other token). 0 disables the swap. The paper uses small values, 0.01 to 0.2."
        },
    )
    decoder_p: float | None = field(
        default=None,
        metadata={
            "help": "Swap probability for the decoder inputs of encoder-decoder models (T5, BART). None leaves the "
            "decoder inputs untouched; labels are never changed."
        },
    )
    exclude_token_ids: list[int] = field(
        default_factory=list,
        metadata={
            "help": "Extra token ids that are never swapped and never drawn as replacements, on top of the "
            "tokenizer's special, padding, mask and reserved tokens."
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
        _check_probability("p", self.p)
        if self.decoder_p is not None:
            _check_probability("decoder_p", self.decoder_p)
        self.exclude_token_ids = list(self.exclude_token_ids)
        for token_id in self.exclude_token_ids:
            if isinstance(token_id, bool) or not isinstance(token_id, int) or token_id < 0:
                raise ValueError(
                    f"SSEConfig.exclude_token_ids must hold non-negative integer token ids, got {token_id!r}."
                )
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ValueError(f"SSEConfig.seed must be an integer or None, got {self.seed!r}.")

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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SSEConfig:
        """Build a config from `to_dict()` output; unknown keys are a clear error."""
        return cls().replace(**data)

    def save_pretrained(self, save_directory: str | os.PathLike) -> str:
        """Write `sse_config.json` into `save_directory` (created if needed) and return its path."""
        if os.path.isfile(save_directory):
            raise ValueError(f"save_pretrained expects a directory, but {save_directory!s} is a file.")
        os.makedirs(save_directory, exist_ok=True)
        path = os.path.join(save_directory, CONFIG_NAME)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self.to_dict(), handle, indent=2, sort_keys=True)
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
            return cls.from_dict(json.load(handle))
