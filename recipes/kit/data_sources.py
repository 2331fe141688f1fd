"""Loading a recipe's raw data: local csv/json/jsonl/txt files, or a Hub data set by name, with errors that say what to do."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping

import datasets
from datasets import DatasetDict

from recipes.kit.cli import RecipeError

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


def check_delimited_file(path: str, option: str, delimiter: str) -> None:
    """Raise a clear error naming the file and line where a csv/tsv has no header, no rows, or ragged rows.

    pandas would otherwise read an extra field as the row index and fill a missing one with NaN, silently.
    """
    with open(path, newline="", encoding="utf-8") as handle:
        rows = ((number, row) for number, row in enumerate(csv.reader(handle, delimiter=delimiter), 1) if row)
        try:
            number, header = next(rows, (0, None))
            if header is None:
                raise ValueError(f"{option} {path!r} is empty: it needs a header line naming the columns, then rows.")
            data_rows = 0
            for number, row in rows:
                data_rows += 1
                if len(row) != len(header):
                    raise ValueError(
                        f"{option} {path!r} line {number} has {len(row)} field(s) but the header has {len(header)} "
                        f"({', '.join(header)}). Quote fields that contain {delimiter!r} and fill every column."
                    )
        except (UnicodeDecodeError, csv.Error) as error:
            raise ValueError(
                f"{option} {path!r} could not be read ({error}). Save it as UTF-8 {delimiter!r}-separated text."
            ) from error
    if not data_rows:
        raise ValueError(f"{option} {path!r} has a header ({', '.join(header)}) but no data rows. Add rows to it.")


def _has_content(path: str) -> bool:
    """True if the file holds anything but whitespace (read in chunks, stopping at the first)."""
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            if chunk.strip():
                return True
    return False


def _root_cause(error: BaseException) -> BaseException:
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    return error


def load_local_files(
    files: Mapping[str, tuple[str, str]], allowed: tuple[str, ...], cache_dir: str | None = None
) -> DatasetDict:
    """Load local files into a DatasetDict, one split per entry of `files` (split -> (path, option name)).

    Each split gets the builder of its own extension, so a csv train file and a jsonl validation file mix.
    """
    splits = {}
    for split, (path, option) in files.items():
        extension = check_local_file(path, option, allowed)
        if not _has_content(path):
            raise ValueError(f"{option} {path!r} is empty (or only whitespace): it holds no examples.")
        kwargs = {}
        if BUILDERS[extension] == "csv":
            kwargs["delimiter"] = "\t" if extension == "tsv" else ","
            check_delimited_file(path, option, kwargs["delimiter"])
            # Only an empty cell is missing: a text that reads "NaN", "NA" or "null" stays that text.
            kwargs.update(keep_default_na=False, na_values=[""])
        try:
            loaded = datasets.load_dataset(
                BUILDERS[extension], data_files={split: path}, cache_dir=cache_dir, **kwargs
            )
        except Exception as error:  # noqa: BLE001  (datasets wraps the reader's error; name the file instead)
            cause = _root_cause(error)
            raise ValueError(
                f"{option} {path!r} could not be read as {extension}: {type(cause).__name__}: {cause}. "
                f"Check that it is valid {extension} (json: one object per line or a list of objects)."
            ) from error
        if len(loaded[split]) == 0:
            raise ValueError(f"{option} {path!r} holds no examples. Add rows to it.")
        splits[split] = loaded[split]
    return DatasetDict(splits)


class HubDataUnavailableError(RecipeError, ConnectionError):
    """A Hub data set that cannot be loaded (offline, unreachable or misnamed); the message names local files."""


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
        raise HubDataUnavailableError(
            f"Could not load the Hub data set {where}: {error}. {state} Use local files instead: {local_hint} "
            "Or run once with network access so that the data set is cached."
        ) from error
