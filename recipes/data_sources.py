"""Loading a recipe's raw data: local csv/json/jsonl/txt files, or a Hub data set by name, with errors that say what to do."""

from __future__ import annotations

import os
from collections.abc import Mapping

import datasets
from datasets import DatasetDict

# File extension -> datasets builder.
BUILDERS = {"csv": "csv", "tsv": "csv", "json": "json", "jsonl": "json", "txt": "text"}


def file_extension(path: str) -> str:
    return os.path.splitext(path)[1].lstrip(".").lower()


def check_local_file(path: str, option: str, allowed: tuple[str, ...]) -> str:
    """Raise a clear error unless `path` exists and has one of the `allowed` extensions; return the extension."""
    extension = file_extension(path)
    if extension not in allowed:
        raise ValueError(f"{option} {path!r} must be a {', '.join(allowed)} file (got extension {extension!r}).")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{option} {path!r} does not exist. Check the path (relative to {os.getcwd()}).")
    return extension


def load_local_files(
    files: Mapping[str, tuple[str, str]], allowed: tuple[str, ...], cache_dir: str | None = None
) -> DatasetDict:
    """Load local files into a DatasetDict, one split per entry of `files` (split -> (path, option name)).

    Each split gets the builder of its own extension, so a csv train file and a jsonl validation file mix.
    """
    splits = {}
    for split, (path, option) in files.items():
        extension = check_local_file(path, option, allowed)
        kwargs = {"delimiter": "\t"} if extension == "tsv" else {}
        loaded = datasets.load_dataset(BUILDERS[extension], data_files={split: path}, cache_dir=cache_dir, **kwargs)
        splits[split] = loaded[split]
    return DatasetDict(splits)


def hub_is_offline() -> bool:
    """True when the user told the Hub libraries to stay offline (HF_HUB_OFFLINE or HF_DATASETS_OFFLINE)."""
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("HF_DATASETS_OFFLINE", ""))
    return any(flag.strip().lower() in {"1", "true", "yes", "on"} for flag in flags) or bool(
        getattr(datasets.config, "HF_HUB_OFFLINE", False)
    )


def load_hub_dataset(
    name: str, config_name: str | None = None, cache_dir: str | None = None, local_hint: str = ""
) -> DatasetDict:
    """`datasets.load_dataset(name, config_name)`; when the Hub cannot be reached, say how to use local files instead."""
    try:
        return datasets.load_dataset(name, config_name, cache_dir=cache_dir)
    except (ConnectionError, OSError, datasets.exceptions.DatasetNotFoundError) as error:
        where = f"{name!r}" + (f" (config {config_name!r})" if config_name else "")
        state = (
            "Offline mode is on (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) and the data set is not in the local cache."
            if hub_is_offline()
            else "The Hub could not be reached, or the name is wrong."
        )
        raise ConnectionError(
            f"Could not load the Hub data set {where}: {error}. {state} Use local files instead: {local_hint} "
            "Or run once with network access so that the data set is cached."
        ) from error
