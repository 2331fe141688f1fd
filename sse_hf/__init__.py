"""sse-hf: Stochastic Shared Embeddings (Wu et al., NeurIPS 2019) for Hugging Face Transformers."""

from .arguments import SSEArguments
from .callback import SSECallback
from .config import SSEConfig
from .discovery import unwrap_model
from .graph import SSEGraph
from .handle import SSEHandle, get_handle
from .kernels import candidate_positions, swap_graph, swap_labels, swap_uniform
from .patch import AlreadyPatchedError, patch_model, unpatch_model
from .schedule import SCHEDULES, adaptive_factor, schedule_factor
from .search import best_sse_config, sse_hp_space

__version__ = "0.1.0"

__all__ = [
    "SCHEDULES",
    "AlreadyPatchedError",
    "SSEArguments",
    "SSECallback",
    "SSEConfig",
    "SSEGraph",
    "SSEHandle",
    "adaptive_factor",
    "best_sse_config",
    "candidate_positions",
    "get_handle",
    "patch_model",
    "schedule_factor",
    "sse_hp_space",
    "swap_graph",
    "swap_labels",
    "swap_uniform",
    "unpatch_model",
    "unwrap_model",
]
