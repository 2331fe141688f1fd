"""sse-hf: Stochastic Shared Embeddings (Wu et al., NeurIPS 2019) for Hugging Face Transformers."""

from .callback import SSECallback
from .config import SSEConfig
from .graph import SSEGraph, swap_graph, swap_graph_reference
from .patch import AlreadyPatchedError, SSEHandle, get_handle, patch_model, unpatch_model, unwrap_model
from .sampling import (
    candidate_positions,
    swap_labels,
    swap_labels_reference,
    swap_uniform,
    swap_uniform_reference,
)
from .schedule import SCHEDULES, adaptive_factor, schedule_factor

__version__ = "0.1.0"

__all__ = [
    "SCHEDULES",
    "AlreadyPatchedError",
    "SSECallback",
    "SSEConfig",
    "SSEGraph",
    "SSEHandle",
    "adaptive_factor",
    "candidate_positions",
    "get_handle",
    "patch_model",
    "schedule_factor",
    "swap_graph",
    "swap_graph_reference",
    "swap_labels",
    "swap_labels_reference",
    "swap_uniform",
    "swap_uniform_reference",
    "unpatch_model",
    "unwrap_model",
]
