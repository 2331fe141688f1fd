"""The GLUE study's design: its tasks, arms, training size, run arguments, and where its records are kept.

`study_glue.py` runs this design and `study_glue_report.py` reports on it; both read it from here.
"""

from __future__ import annotations

import os

from recipes.evidence.records import DOCS_STUDY, OUTPUTS, by_arm_and_seed
from recipes.evidence.run_flags import RUN_FLAGS

STUDY_DIR = os.path.join(OUTPUTS, "study-glue")  # scratch: splits and run folders (git-ignored)
RECORDS_DIR = os.path.join(DOCS_STUDY, "glue", "runs")  # committed ledger
TASKS = ("rte", "mrpc", "stsb", "cola")
TRAIN_SIZE = 300
CHOICE_SIZE = 200
# The GLUE metric of each task, as run_glue names it, and the metric a choice is made on.
PRIMARY = {"rte": "accuracy", "mrpc": "f1", "stsb": "pearson", "cola": "matthews_correlation"}
MAX_LENGTH = {"rte": 128, "mrpc": 128, "stsb": 128, "cola": 64}

# Fixed before the study's runs, transferred from the IMDB study's training-loss pilot (lr 1e-4 fits 250
# examples by epoch 4-5 with this checkpoint); the baseline's training loss in the records confirms the fit.
COMMON_ARGS = [
    "--per_device_train_batch_size",
    "16",
    "--learning_rate",
    "1e-4",
    "--num_train_epochs",
    "5",
    "--warmup_steps",
    "0.1",
    "--weight_decay",
    "0.01",
    *RUN_FLAGS,
]
# In the order the study runs them: the reference arms and the library's default first.
ARMS = {
    "baseline": ["--sse", "False"],
    "sse-se-p0.1": ["--sse_p", "0.1"],
    "sse-se-p0.2-adaptive": ["--sse_p", "0.2", "--sse_p_schedule", "adaptive"],
    "neftune-5": ["--sse", "False", "--neftune_noise_alpha", "5"],
    "sse-se-p0.2": ["--sse_p", "0.2"],
    "sse-se-p0.05": ["--sse_p", "0.05"],
    "sse-se-p0.2-warmup": ["--sse_p", "0.2", "--sse_p_schedule", "linear_warmup", "--sse_p_warmup_ratio", "0.5"],
}
SSE_ARMS = tuple(arm for arm in ARMS if arm.startswith("sse-"))


def load(records: str, task: str) -> dict[str, dict[int, dict]]:
    """arm -> seed -> results of one task's records."""
    return by_arm_and_seed(os.path.join(records, task))
