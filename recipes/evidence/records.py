"""Compact run records: where the studies keep them, how one is written without machine paths, how they are read.

A record is a folder `<arm>/seed-<n>/` holding `all_results.json` and the loss log of `trainer_state.json`.
The records are committed under `docs/study/`; the runs themselves go to the git-ignored `outputs/`.
"""

from __future__ import annotations

import json
import os

from recipes.evidence import compare

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS_STUDY = os.path.join(REPO_ROOT, "docs", "study")  # committed: records and reports
OUTPUTS = os.path.join(REPO_ROOT, "outputs")  # scratch: splits, models and full run folders (git-ignored)


def portable(results: dict) -> dict:
    """The results with no path of this machine: the shipped checkpoint by its name, files inside the
    repository relative to its root, other absolute paths by their last part."""
    shown = {}
    for key, value in results.items():
        if isinstance(value, str) and os.path.isabs(value):
            path = os.path.normpath(value)
            if key == "model_name_or_path" and os.path.basename(path) == "model" and "minilm" in path.lower():
                value = "all-MiniLM-L6-v2"
            elif path.startswith(os.path.normpath(REPO_ROOT) + os.sep):
                value = os.path.relpath(path, REPO_ROOT)
            else:
                value = os.path.basename(path)
        shown[key] = value
    return shown


def save_record(target: str, results: dict, run_dir: str) -> None:
    """Keep a run's compact record: its results (without machine paths) and the loss log of its trainer_state.json."""
    os.makedirs(target, exist_ok=True)
    with open(os.path.join(target, "all_results.json"), "w", encoding="utf-8") as handle:
        json.dump(portable(results), handle, indent=2, sort_keys=True)
    with open(os.path.join(run_dir, "trainer_state.json"), encoding="utf-8") as handle:
        history = json.load(handle)["log_history"]
    with open(os.path.join(target, "trainer_state.json"), "w", encoding="utf-8") as handle:
        json.dump({"log_history": history}, handle)


def is_recorded(target: str) -> bool:
    """True when the record folder `target` already holds a finished run (the studies skip it)."""
    return os.path.isfile(os.path.join(target, "all_results.json"))


def by_arm_and_seed(folder: str) -> dict[str, dict[int, dict]]:
    """arm -> seed -> results of every record under `folder`."""
    runs: dict[str, dict[int, dict]] = {}
    for run in compare.load_runs([folder]):
        runs.setdefault(run["arm"], {})[run["results"]["seed"]] = run["results"]
    return runs
