"""sse-hf: Stochastic Shared Embeddings (Wu et al., NeurIPS 2019) for Hugging Face Transformers."""

from .callback import SSECallback
from .config import SSEConfig
from .patch import AlreadyPatchedError, SSEHandle, get_handle, patch_model, unpatch_model, unwrap_model
from .sampling import candidate_positions, swap_uniform, swap_uniform_reference

__version__ = "0.1.0"

__all__ = [
    "AlreadyPatchedError",
    "SSECallback",
    "SSEConfig",
    "SSEHandle",
    "candidate_positions",
    "get_handle",
    "patch_model",
    "swap_uniform",
    "swap_uniform_reference",
    "unpatch_model",
    "unwrap_model",
]
