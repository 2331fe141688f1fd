"""Reference oracles of `sse_hf.sampling`: slow, obviously correct Python loops the tests compare against.

Not used in training. Each takes plain lists and a `random.Random`, and returns lists.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from .graph import SSEGraph


def swap_uniform_reference(
    input_ids: Sequence[Sequence[int]], p: float, candidates: Sequence[int], rng: random.Random
) -> list[list[int]]:
    """SSE-SE, one token at a time."""
    candidate_set = set(candidates)
    swapped_rows = []
    for row in input_ids:
        new_row = []
        for token in row:
            if token in candidate_set and rng.random() < p:
                token = rng.choice([other for other in candidates if other != token])
            new_row.append(token)
        swapped_rows.append(new_row)
    return swapped_rows


def swap_labels_reference(labels: Sequence[int], p: float, num_classes: int, rng: random.Random) -> list[int]:
    """Label SSE, one label at a time."""
    result = []
    for label in labels:
        if 0 <= label < num_classes and rng.random() < p:
            label = rng.choice([other for other in range(num_classes) if other != label])
        result.append(label)
    return result


def swap_graph_reference(
    input_ids: Sequence[Sequence[int]],
    p: float,
    graph: SSEGraph | Mapping[int, Mapping[int, float]],
    rng: random.Random,
) -> list[list[int]]:
    """SSE-Graph, one token at a time.

    `graph` is an `SSEGraph` or `{token id: {neighbour id: weight}}` (weights need not be normalised).
    """
    adjacency = graph.to_dict() if isinstance(graph, SSEGraph) else graph
    swapped_rows = []
    for row in input_ids:
        new_row = []
        for token in row:
            neighbours = {other: w for other, w in adjacency.get(token, {}).items() if other != token and w > 0}
            if neighbours and rng.random() < p:
                token = rng.choices(list(neighbours), weights=list(neighbours.values()))[0]
            new_row.append(token)
        swapped_rows.append(new_row)
    return swapped_rows
