"""Reading token graphs from what users have: `{token: neighbours}` mappings, edge-list and JSON files,
scipy sparse matrices, and the model's own input embeddings (each token's k nearest neighbours).

Every user graph but a saved `SSEGraph` and kNN is read into one form, `Edges` (`read_edges` picks the reader),
which `SSEGraph.from_source_edges` builds into a graph once; kNN yields CSR rows directly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from .validation import check_positive_int, is_integer, is_number
from .vocabulary import resolve_vocabulary

logger = logging.getLogger(__name__)

# How many unknown tokens a warning quotes.
_EXAMPLES = 5
# The headers that choose how a .tsv/.txt edge list's first two fields are read (the weight column is optional).
TSV_ID_HEADER = ("source_id", "target_id")
TSV_TOKEN_HEADER = ("source_token", "target_token")
_TSV_ANY_HEADER = ("source", "target")
# A field that reads as an integer id: ASCII digits only (int() would also take "1_000" and non-ASCII digits).
_ID_FIELD = re.compile(r"\s*-?[0-9]+\s*")


class Edges(NamedTuple):
    """Edges read from a user's graph: parallel id and weight tensors, the ids' vocabulary size, `origin`, the
    words that name where they came from ("dict", "file edges.tsv", "scipy") in messages and the graph's metadata,
    and for an edge-list file, `reading`: how its fields were read (as ids or as token strings)."""

    sources: torch.Tensor
    targets: torch.Tensor
    weights: torch.Tensor
    vocab_size: int
    origin: str
    reading: str = ""


def dict_edges(
    mapping: Mapping[Any, Any], *, tokenizer=None, vocab_size: int | None = None, origin: str = "dict"
) -> Edges:
    """The edges of a `{token: neighbours}` mapping (see `SSEGraph.from_dict`)."""
    if not isinstance(mapping, Mapping):
        raise TypeError(f"from_dict expects a mapping from token to neighbours, got {type(mapping).__name__}.")
    sources, targets, weights = [], [], []
    for source, neighbours in mapping.items():
        if isinstance(neighbours, Mapping):
            items = list(neighbours.items())
        elif isinstance(neighbours, (str, bytes)) or not isinstance(neighbours, Iterable):
            raise TypeError(
                f"The neighbours of {source!r} must be a list of tokens or a {{token: weight}} mapping, "
                f"got {type(neighbours).__name__} {neighbours!r}."
            )
        else:
            items = [(target, 1.0) for target in neighbours]
        for target, weight in items:
            sources.append(source)
            targets.append(target)
            weights.append(_as_weight(weight, f"edge {source!r} -> {target!r}"))
    return token_edges(sources, targets, weights, tokenizer, vocab_size, origin)


def edge_file_edges(path: str | os.PathLike, *, tokenizer=None, vocab_size: int | None = None) -> Edges:
    """The edges of a `.tsv`/`.txt`/`.jsonl` edge list (see `SSEGraph.from_edge_file`)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No edge-list file at {path} (SSEConfig.graph). Check the path, or use graph='knn'.")
    if not path.endswith((".jsonl", ".tsv", ".txt")):
        raise ValueError(f"Cannot tell the format of {path}: use a .tsv, .txt or .jsonl edge list.")
    try:
        if path.endswith(".jsonl"):
            sources, targets, weights = _read_jsonl(path)
            reading = "as typed: JSON strings are token strings, JSON integers are token ids"
        else:
            sources, targets, weights, reading = _read_tsv(path, has_tokenizer=tokenizer is not None)
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not a UTF-8 text edge list ({error}). Is it a file of another format?") from None
    logger.info("sse_hf: read the edge list %s %s.", path, reading)
    edges = token_edges(sources, targets, weights, tokenizer, vocab_size, f"file {os.path.basename(path)}")
    return edges._replace(reading=reading)


def read_edges(graph: Any, *, tokenizer=None, vocab_size: int | None = None) -> Edges:
    """The edges of a `{token: neighbours}` mapping, a `.json` mapping file, a `.tsv`/`.txt`/`.jsonl` edge list or a
    scipy sparse matrix (for a matrix, `vocab_size` checks its shape)."""
    if isinstance(graph, Mapping):
        return dict_edges(graph, tokenizer=tokenizer, vocab_size=vocab_size)
    if isinstance(graph, (str, os.PathLike)):
        if os.fspath(graph).endswith(".json"):
            return json_edges(graph, tokenizer=tokenizer, vocab_size=vocab_size)
        return edge_file_edges(graph, tokenizer=tokenizer, vocab_size=vocab_size)
    if hasattr(graph, "tocoo"):
        return scipy_edges(graph, vocab_size=vocab_size)
    raise TypeError(
        "graph must be an SSEGraph, a file path, a {token: neighbours} mapping, a scipy sparse matrix or "
        f"'knn', got {type(graph).__name__}."
    )


def json_edges(path: str | os.PathLike, *, tokenizer=None, vocab_size: int | None = None) -> Edges:
    """The edges of a `.json` graph file holding a `{token: neighbours}` mapping; errors name the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No graph file at {path} (SSEConfig.graph). Check the path, or use graph='knn'.")
    try:
        with open(path, encoding="utf-8-sig") as handle:  # a byte-order mark (Excel, Notepad) is not text
            mapping = json.load(handle)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{path} is not a valid JSON graph file ({error}). Write it as a JSON object of token -> neighbours, "
            'e.g. {"good": ["great", "fine"]}.'
        ) from None
    if not isinstance(mapping, dict):
        raise ValueError(
            f'{path} must hold a JSON object of token -> neighbours, e.g. {{"good": ["great"]}}; got a '
            f"{type(mapping).__name__}."
        )
    _check_json_readings(path, mapping)
    try:
        return dict_edges(mapping, tokenizer=tokenizer, vocab_size=vocab_size, origin=f"file {os.path.basename(path)}")
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from None


def _check_json_readings(path: str, mapping: dict) -> None:
    """Refuse a JSON graph whose keys (always strings in JSON) would be read as token text beside integer-id values:
    `json.dump` writes an `{id: [ids]}` dict that way, and "1996" would then be the token, not the id 1996."""
    values = [v for neighbours in mapping.values() for v in (neighbours if isinstance(neighbours, list) else [])]
    if any(is_integer(v) for v in values):
        example = next(iter(mapping))
        raise ValueError(
            f"{path}: the keys are token strings (JSON keys always are, e.g. {example!r}) but the values are integer "
            "ids, so the two would be read differently. Use token strings on both sides, or write the graph as an "
            "edge list of ids (.tsv with 'source<TAB>target' lines) or with SSEGraph.from_dict(...).save(path)."
        )


def scipy_edges(matrix: Any, *, vocab_size: int | None = None) -> Edges:
    """The edges of a V x V scipy sparse matrix whose entry (i, j) is the weight of edge i -> j."""
    shape = getattr(matrix, "shape", None)
    if not hasattr(matrix, "tocoo") or shape is None:
        raise TypeError(f"from_scipy expects a scipy.sparse matrix or array, got {type(matrix).__name__}.")
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"The graph matrix must be square (vocab_size x vocab_size), got shape {tuple(shape)}.")
    if vocab_size is not None and shape[0] != vocab_size:
        raise ValueError(
            f"The graph matrix has shape {tuple(shape)} but the vocabulary has {vocab_size} ids: expected "
            f"({vocab_size}, {vocab_size})."
        )
    coo = matrix.tocoo()
    return Edges(
        torch.from_numpy(coo.row.astype("int64")),
        torch.from_numpy(coo.col.astype("int64")),
        torch.from_numpy(coo.data.astype("float64")),
        int(shape[0]),
        "scipy",
    )


def token_edges(sources, targets, weights, tokenizer, vocab_size: int | None, origin: str) -> Edges:
    """Edges between tokens given as strings or ids: strings become ids, unknown ones are dropped with a warning."""
    if vocab_size is None:
        if tokenizer is None:
            raise ValueError(
                "Cannot tell the vocabulary size of the graph: pass tokenizer=... (its len() is used) or "
                "vocab_size=..."
            )
        vocab_size = len(tokenizer)
    lookup = _token_lookup([*sources, *targets], tokenizer)
    unknown = [token for token, token_id in lookup.items() if token_id is None]
    kept_sources, kept_targets, kept_weights = [], [], []
    for s, t, w in zip(sources, targets, weights):
        s_id, t_id = lookup[_key(s)], lookup[_key(t)]
        if s_id is not None and t_id is not None:
            kept_sources.append(s_id)
            kept_targets.append(t_id)
            kept_weights.append(w)
    if not sources:
        raise ValueError(f"The graph ({origin}) holds no edges. Give at least one edge between two different tokens.")
    if not kept_sources:
        raise ValueError(
            f"all {len(sources)} edge(s) of the graph ({origin}) were dropped: their tokens are not in the vocabulary "
            f"of {type(tokenizer).__name__} (e.g. {unknown[0][1]!r}). Was the graph written for another tokenizer?"
        )
    if unknown:
        dropped = len(sources) - len(kept_sources)
        examples = ", ".join(repr(token[1]) for token in unknown[:_EXAMPLES])
        more = f" and {len(unknown) - _EXAMPLES} more" if len(unknown) > _EXAMPLES else ""
        warnings.warn(
            f"sse_hf: {len(unknown)} token(s) of the graph ({origin}) are not in the vocabulary of "
            f"{type(tokenizer).__name__}, so their {dropped} edge(s) were dropped: {examples}{more}.",
            UserWarning,
            stacklevel=4,
        )
    return Edges(
        torch.tensor(kept_sources, dtype=torch.int64),
        torch.tensor(kept_targets, dtype=torch.int64),
        torch.tensor(kept_weights, dtype=torch.float64),
        vocab_size,
        origin,
    )


def knn_rows(
    embeddings: torch.Tensor | nn.Module,
    k: int = 10,
    *,
    tokenizer=None,
    exclude_token_ids: Iterable[int] = (),
    vocab_size: int | None = None,
    weighting: str = "softmax",
    temperature: float = 0.1,
    chunk_size: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
    """The CSR rows (offsets, neighbours, cumulative weights) and metadata of the kNN graph of an embedding table
    (see `SSEGraph.from_embeddings`). A sharded weight is gathered first: every process must call this together."""
    parameter = _embedding_tensor(embeddings)
    if weighting not in ("softmax", "uniform"):
        raise ValueError(f"weighting must be 'softmax' or 'uniform', got {weighting!r}.")
    if weighting == "softmax" and (not is_number(temperature) or not math.isfinite(temperature) or temperature <= 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}.")
    chunk_size = check_positive_int("chunk_size", chunk_size)
    with gathered_weight(parameter) as weight:
        return _knn_rows(
            _checked_weight(weight), k, tokenizer, exclude_token_ids, vocab_size, weighting, temperature, chunk_size
        )


@contextlib.contextmanager
def gathered_weight(weight: torch.Tensor) -> Iterator[torch.Tensor]:
    """The whole of an embedding weight while the block runs: a DeepSpeed ZeRO-3 parameter (size 0 outside a gather)
    is gathered and an FSDP2 DTensor's shards joined, collectives that every process must enter; else the weight."""
    if hasattr(weight, "ds_id"):  # a ZeRO-3 parameter carries its partition's bookkeeping as ds_* attributes
        import deepspeed

        with deepspeed.zero.GatheredParameters([weight], modifier_rank=None):
            yield weight
    elif _is_dtensor(weight):
        yield weight.full_tensor()
    else:
        yield weight


def _knn_rows(
    weight: torch.Tensor,
    k: int,
    tokenizer,
    exclude_token_ids: Iterable[int],
    vocab_size: int | None,
    weighting: str,
    temperature: float,
    chunk_size: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
    """`knn_rows` of a whole (gathered) weight."""
    rows = weight.shape[0]
    if vocab_size is None:
        vocab_size = len(tokenizer) if tokenizer is not None else rows
    vocab_size = check_positive_int("vocab_size", vocab_size)
    if vocab_size > rows:
        raise ValueError(
            f"vocab_size is {vocab_size} but the embedding table has only {rows} rows: ids past {rows - 1} have "
            "no embedding. Resize the model's embeddings or pass the matching tokenizer."
        )
    excluded = {int(i) for i in exclude_token_ids}
    if tokenizer is not None:
        excluded |= resolve_vocabulary(None, tokenizer).protected
    if any(i < 0 for i in excluded):
        raise ValueError(f"exclude_token_ids must be non-negative ids, got {min(excluded)}.")
    keep = torch.ones(vocab_size, dtype=torch.bool)
    inside = [i for i in excluded if i < vocab_size]  # ids past the vocabulary are excluded anyway
    if inside:
        keep[torch.tensor(inside, dtype=torch.long)] = False
    candidates = keep.nonzero().squeeze(1)
    count = candidates.numel()
    if not is_integer(k) or not 1 <= k < count:
        raise ValueError(
            f"k must be an integer with 1 <= k < {count} (the number of candidate tokens: {vocab_size} ids minus "
            f"{vocab_size - count} special, reserved or excluded ones), got {k!r}."
        )
    with torch.no_grad():
        # Computed where the weight lives (a GPU builds a large vocabulary in seconds); the result is on the CPU.
        dtype = torch.float64 if weight.dtype == torch.float64 else torch.float32
        table = weight.detach()[:vocab_size]
        if not bool(torch.isfinite(table).all()):
            raise ValueError("The embedding table holds NaN or infinite values; cannot compute cosine similarities.")
        normed = torch.nn.functional.normalize(table[candidates.to(table.device)].to(dtype), dim=1)
        neighbor_positions = torch.empty(count, k, dtype=torch.int64)
        similarities = torch.empty(count, k, dtype=dtype)
        buffer = torch.empty(min(chunk_size, count), count, dtype=dtype, device=normed.device)
        for start in range(0, count, chunk_size):
            stop = min(start + chunk_size, count)
            scores = buffer[: stop - start]
            torch.mm(normed[start:stop], normed.T, out=scores)
            diagonal = torch.arange(stop - start, device=scores.device)
            scores[diagonal, diagonal + start] = -math.inf  # never itself
            values, indices = scores.topk(k, dim=1)
            similarities[start:stop] = values.cpu()
            neighbor_positions[start:stop] = indices.cpu()
        del buffer, normed
    if weighting == "softmax":
        probabilities = torch.softmax(similarities.to(torch.float64) / temperature, dim=1)
    else:
        probabilities = torch.full((count, k), 1.0 / k, dtype=torch.float64)
    offsets = torch.zeros(vocab_size + 1, dtype=torch.int64)
    degrees = torch.zeros(vocab_size, dtype=torch.int64)
    degrees[candidates] = k
    offsets[1:] = torch.cumsum(degrees, 0)
    metadata = {
        "source": "knn",
        "vocab_size": vocab_size,
        "k": k,
        "weighting": weighting,
        "temperature": float(temperature) if weighting == "softmax" else None,
        "excluded_ids": vocab_size - count,
        "embedding_shape": list(weight.shape),
    }
    cumulative = torch.cumsum(probabilities, dim=1).clamp_(max=1.0)
    cumulative[:, -1] = 1.0
    return offsets, candidates[neighbor_positions].reshape(-1), cumulative.reshape(-1), metadata


# ----- readers and conversions ----------------------------------------------------------------
def _as_weight(value: Any, where: str) -> float:
    if not is_number(value):
        raise ValueError(f"The weight of {where} must be a number, got {value!r}.")
    return float(value)


def _key(token: Any) -> tuple[str, Any]:
    """A hashable key that keeps the id 12 and the token string "12" apart."""
    if isinstance(token, str):
        return ("token", token)
    if not is_integer(token):
        raise ValueError(f"Graph tokens must be token strings or integer ids, got {token!r} ({type(token).__name__}).")
    return ("id", int(token))


def _token_lookup(tokens: Sequence[Any], tokenizer) -> dict[tuple[str, Any], int | None]:
    """Map each distinct token (string or id) to its id; None for strings the tokenizer does not know."""
    keys = list(dict.fromkeys(_key(token) for token in tokens))
    lookup: dict[tuple[str, Any], int | None] = {key: key[1] for key in keys if key[0] == "id"}
    strings = [key[1] for key in keys if key[0] == "token"]
    if strings:
        if tokenizer is None:
            raise ValueError(
                f"The graph names tokens as strings (e.g. {strings[0]!r}); converting them needs a tokenizer: pass "
                "tokenizer=..., or give integer ids and vocab_size=..."
            )
        ids = tokenizer.convert_tokens_to_ids(strings)
        unk_id, unk_token = getattr(tokenizer, "unk_token_id", None), getattr(tokenizer, "unk_token", None)
        for token, token_id in zip(strings, ids):
            known = token_id is not None and (token_id != unk_id or unk_id is None or token == unk_token)
            lookup[("token", token)] = int(token_id) if known else None
    return lookup


def _read_tsv(path: str, has_tokenizer: bool) -> tuple[list, list, list[float], str]:
    """The edges of a tab-separated edge list, and how its fields were read (for the log).

    A header `source_id<TAB>target_id` reads the fields as integer ids, `source_token<TAB>target_token` as token
    strings. Without either, fields are token strings when a tokenizer is given and ids when not; a file whose every
    field is an integer is then refused under a tokenizer (2000 the id or "2000" the token?), never guessed."""
    rows, header = _tsv_rows(path)
    fields = [field for _, ends, _ in rows for field in ends]
    if header == TSV_ID_HEADER:
        as_ids, reading = True, f"as integer token ids (its header {_header_text(TSV_ID_HEADER)} says so)"
    elif header == TSV_TOKEN_HEADER:
        if not has_tokenizer:
            raise ValueError(
                f"{path}: its header {_header_text(TSV_TOKEN_HEADER)} says the fields are token strings; converting "
                "them to ids needs a tokenizer: pass tokenizer=..."
            )
        as_ids, reading = False, f"as token strings (its header {_header_text(TSV_TOKEN_HEADER)} says so)"
    elif not has_tokenizer:
        as_ids, reading = True, "as integer token ids (no tokenizer was given)"
    elif fields and all(_ID_FIELD.fullmatch(field) for field in fields):
        raise ValueError(
            f"{path}: every source and target is an integer (e.g. {fields[0]!r}), so with a tokenizer it is unclear "
            f"whether {fields[0].strip()} is the token id {fields[0].strip()} or the token text {fields[0]!r}. Say "
            f"which with the file's first line: {_header_text(TSV_ID_HEADER)} for ids, or "
            f"{_header_text(TSV_TOKEN_HEADER)} for token strings (a weight column may follow either)."
        )
    else:
        as_ids, reading = False, "as token strings (a tokenizer was given; not every field is an integer)"
    sources, targets, weights = [], [], []
    for number, ends, weight in rows:
        if as_ids:
            for field in ends:
                if not _ID_FIELD.fullmatch(field):
                    how = "pass tokenizer=..."
                    if header == TSV_ID_HEADER:
                        how = f"make the header {_header_text(TSV_TOKEN_HEADER)} and {how}"
                    raise ValueError(
                        f"{path}, line {number}: {field!r} is not an integer token id, and the file is read {reading}. "
                        f"To read token strings, {how}"
                    )
            ends = [int(field) for field in ends]
        sources.append(ends[0])
        targets.append(ends[1])
        weights.append(weight)
    return sources, targets, weights, reading


def _tsv_rows(path: str) -> tuple[list[tuple[int, list[str], float]], tuple[str, str] | None]:
    """The (line number, [source, target], weight) rows of a tab-separated edge list, and its header if it has one."""
    rows, header, first = [], None, True
    with open(path, encoding="utf-8-sig") as handle:  # a byte-order mark (Excel, Notepad) is not text
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\r\n")
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split("\t")
            if first:
                first = False
                named = tuple(f.strip().lower() for f in fields[:2])
                if named in (TSV_ID_HEADER, TSV_TOKEN_HEADER, _TSV_ANY_HEADER):
                    header = named
                    continue
            if len(fields) not in (2, 3):
                raise ValueError(
                    f"{path}, line {number}: expected 'source<TAB>target' or 'source<TAB>target<TAB>weight', "
                    f"got {len(fields)} tab-separated field(s): {line!r}."
                )
            try:
                weight = float(fields[2]) if len(fields) == 3 else 1.0
            except ValueError:
                raise ValueError(f"{path}, line {number}: the weight {fields[2]!r} is not a number.") from None
            rows.append((number, fields[:2], weight))
    return rows, header


def _header_text(names: tuple[str, str]) -> str:
    return repr("\t".join(names))


def _read_jsonl(path: str) -> tuple[list, list, list[float]]:
    sources, targets, weights = [], [], []
    with open(path, encoding="utf-8-sig") as handle:  # a byte-order mark (Excel, Notepad) is not text
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {number}: not valid JSON ({error.msg}).") from None
            if not isinstance(record, dict) or "source" not in record or "target" not in record:
                raise ValueError(
                    f'{path}, line {number}: expected an object {{"source": ..., "target": ..., "weight": ...}}, '
                    f"got {line.strip()!r}."
                )
            sources.append(record["source"])
            targets.append(record["target"])
            weights.append(_as_weight(record.get("weight", 1.0), f"{path}, line {number}"))
    return sources, targets, weights


def _embedding_tensor(embeddings: torch.Tensor | nn.Module) -> torch.Tensor:
    """The input-embedding weight of an embedding matrix, an embedding module or a model (sharded or not)."""
    if isinstance(embeddings, nn.Module):
        module = embeddings
        getter = getattr(module, "get_input_embeddings", None)
        if callable(getter):
            module = getter()
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor):
            raise ValueError(
                f"Cannot find an input-embedding weight on {type(embeddings).__name__}: pass the weight tensor itself."
            )
        embeddings = weight
    if not isinstance(embeddings, torch.Tensor):
        raise TypeError(f"Expected an embedding weight tensor or a model, got {type(embeddings).__name__}.")
    return embeddings


def _checked_weight(embeddings: torch.Tensor) -> torch.Tensor:
    """The [rows, dim] floating-point weight, or an error saying what it is instead."""
    if embeddings.ndim != 2 or embeddings.shape[0] < 2 or embeddings.shape[1] < 1:
        raise ValueError(
            f"The input-embedding weight must be the full matrix [vocab_size, dim], got shape "
            f"{tuple(embeddings.shape)}. sse_hf gathers DeepSpeed ZeRO-3 and FSDP2 weights itself; a weight sharded "
            "another way (FSDP1) is not: build the graph beforehand with SSEGraph.from_embeddings(...).save(path) "
            "and set graph=path."
        )
    if embeddings.is_complex() or not embeddings.is_floating_point():
        raise ValueError(f"The embedding weight must be floating point, got {embeddings.dtype}.")
    return embeddings


def _is_dtensor(tensor: torch.Tensor) -> bool:
    """Whether `tensor` is a torch.distributed DTensor (FSDP2 makes its parameters ones)."""
    if not torch.distributed.is_available():
        return False
    from torch.distributed.tensor import DTensor

    return isinstance(tensor, DTensor)
