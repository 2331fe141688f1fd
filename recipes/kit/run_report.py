"""What a recipe reports at the end: SSE swap counts gathered from every process, and `all_results.json`."""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Any

from accelerate import PartialState
from accelerate.utils import gather_object

logger = logging.getLogger(__name__)

RESULTS_NAME = "all_results.json"


def local_sse_counts(callback) -> dict[str, Any]:
    """This process's SSE counts over all of training (resumed runs included); zeros when SSE was off."""
    seen, eligible, swapped = callback.totals if callback is not None else (0, 0, 0)
    return {
        "process_index": PartialState().process_index,
        "tokens_seen": int(seen),
        "tokens_eligible": int(eligible),
        "tokens_swapped": int(swapped),
        "swap_rate": swapped / eligible if eligible else 0.0,
    }


def gather_sse_counts(callback) -> dict[str, Any]:
    """Every process's counts (a collective call: all processes must reach it), and the overall realised rate.

    Each process also prints its own rate, so a distributed run shows that SSE swapped on every one.
    """
    state = PartialState()
    mine = local_sse_counts(callback)
    print(
        f"[process {state.process_index}/{state.num_processes}] SSE realised swap rate {mine['swap_rate']:.4f} "
        f"({mine['tokens_swapped']} of {mine['tokens_eligible']} eligible tokens)",
        flush=True,
    )
    per_process = sorted(gather_object([mine]), key=lambda counts: counts["process_index"])
    eligible = sum(counts["tokens_eligible"] for counts in per_process)
    swapped = sum(counts["tokens_swapped"] for counts in per_process)
    return {
        "sse_swap_rate": swapped / eligible if eligible else 0.0,
        "sse_tokens_seen": sum(counts["tokens_seen"] for counts in per_process),
        "sse_tokens_eligible": eligible,
        "sse_tokens_swapped": swapped,
        "sse_swap_rate_per_process": [counts["swap_rate"] for counts in per_process],
        "num_processes": state.num_processes,
        # per role (word pieces, labels, other tables) on the main process: label SSE's realised rate is here
        "sse_stats_main_process": callback.stats() if callback is not None else {},
    }


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _json_safe(value.item())
    return value


def write_all_results(output_dir: str, results: dict[str, Any]) -> str | None:
    """Merge `results` into `output_dir/all_results.json` on the main process (NaN is written as null)."""
    if not PartialState().is_main_process:
        return None
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, RESULTS_NAME)
    merged: dict[str, Any] = {}
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as handle:
                merged = json.load(handle)
        except (OSError, json.JSONDecodeError):
            merged = {}
    merged.update(_json_safe(results))
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(merged, handle, indent=2, sort_keys=True)
        handle.write("\n")
    logger.info("Wrote %s", path)
    return path
