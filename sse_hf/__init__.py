"""sse-hf: Stochastic Shared Embeddings (Wu et al., NeurIPS 2019) for Hugging Face Transformers.

The names here are what a user calls; the sampling functions (`sse_hf.sampling`), their oracles
(`sse_hf.sampling_reference`) and the schedules (`sse_hf.schedule`) stay one module down.
"""

from .arguments import SSEArguments
from .callback import SSECallback
from .config import SSEConfig
from .discovery import unwrap_model
from .graph import SSEGraph
from .handle import SSEHandle, get_handle
from .patch import AlreadyPatchedError, patch_model, unpatch_model
from .search import best_sse_config, sse_hp_space

__version__ = "0.1.0"

__all__ = [
    "AlreadyPatchedError",
    "SSEArguments",
    "SSECallback",
    "SSEConfig",
    "SSEGraph",
    "SSEHandle",
    "best_sse_config",
    "get_handle",
    "patch_model",
    "sse_hp_space",
    "unpatch_model",
    "unwrap_model",
]
