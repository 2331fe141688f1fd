"""Which code a study worker runs, and the guard that stops it when that code changes under it.

A worker is a long-lived process: it keeps the modules it imported first. If the tree it runs from moves to
another commit meanwhile, a record that names the tree's commit names code that did not run. So the version a
worker records is the one read when it started, and before each job it checks that the tree still is that
version; studies run from a frozen worktree (`git worktree add --detach ../<name> <commit>`).
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read_code_version(root: str = ROOT) -> dict[str, str]:
    """The tree's commit now (with `+dirty` when tracked files differ from it), and the library's version."""
    import torch
    import transformers

    import sse_hf

    try:
        commit = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit, dirty = "unknown", ""
    return {
        "commit": commit.strip() + ("+dirty" if dirty else ""),
        "sse_hf": sse_hf.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


@functools.cache
def code_version() -> dict[str, str]:
    """The code this process started with: read once, at the first call (a worker makes it before its first
    job), and recorded in every record the process writes."""
    return read_code_version()


def check_unchanged(started: dict[str, str] | None = None, root: str = ROOT) -> None:
    """Stop a worker whose tree no longer is the commit it started from."""
    started = started if started is not None else code_version()
    now = read_code_version(root)
    if now["commit"] != started["commit"]:
        raise RuntimeError(
            f"The code under this study worker changed from commit {started['commit']} to {now['commit']} while "
            f"it ran ({root}). A running worker keeps the modules it imported first, so its records would name "
            "code that did not run. Start study workers in a frozen worktree: git worktree add --detach "
            "../<name> <commit>, then run them there."
        )
