"""Reading the classic `glue_data/<TASK>/` folders of original GLUE TSV files into the Hub's column schema.

GLUE's own download script wrote one folder per task (`CoLA/`, `MRPC/`, `STS-B/`, ...) with `train.tsv`,
`dev.tsv` and `test.tsv` in each task's original layout: CoLA without a header, MRPC with a byte-order
mark and `#1 String` columns, STS-B with ten columns ending in `score`. Quotes are text, not quoting.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass

from datasets import Dataset, DatasetDict


@dataclass(frozen=True)
class GlueLayout:
    """Where a task's files are and which original column becomes which Hub column."""

    folder: str
    columns: dict[str, str]  # original header name -> Hub column (the label's Hub name is "label")
    label_type: type  # int for class ids written as digits, float for scores, str for names
    headerless: tuple[int, int] | None = None  # CoLA train/dev: (sentence column, label column) by position
    eval_files: tuple[tuple[str, str], ...] = (("eval", "dev.tsv"),)
    test_files: tuple[tuple[str, str], ...] = (("predict", "test.tsv"),)


LAYOUTS = {
    "cola": GlueLayout("CoLA", {"sentence": "sentence"}, int, headerless=(3, 1)),
    "sst2": GlueLayout("SST-2", {"sentence": "sentence", "label": "label"}, int),
    "mrpc": GlueLayout("MRPC", {"#1 String": "sentence1", "#2 String": "sentence2", "Quality": "label"}, int),
    "qqp": GlueLayout("QQP", {"question1": "question1", "question2": "question2", "is_duplicate": "label"}, int),
    "stsb": GlueLayout("STS-B", {"sentence1": "sentence1", "sentence2": "sentence2", "score": "label"}, float),
    "mnli": GlueLayout(
        "MNLI",
        {"sentence1": "premise", "sentence2": "hypothesis", "gold_label": "label"},
        str,
        eval_files=(("eval", "dev_matched.tsv"), ("eval_mm", "dev_mismatched.tsv")),
        test_files=(("predict", "test_matched.tsv"), ("predict_mm", "test_mismatched.tsv")),
    ),
    "qnli": GlueLayout("QNLI", {"question": "question", "sentence": "sentence", "label": "label"}, str),
    "rte": GlueLayout("RTE", {"sentence1": "sentence1", "sentence2": "sentence2", "label": "label"}, str),
    "wnli": GlueLayout("WNLI", {"sentence1": "sentence1", "sentence2": "sentence2", "label": "label"}, int),
}


def task_folder(glue_dir: str, task: str) -> str:
    """The task's folder: `glue_dir` itself (e.g. glue_data/RTE) or its `<TASK>` subfolder (glue_data)."""
    if task not in LAYOUTS:
        raise ValueError(f"--glue_dir reads the original GLUE tasks ({', '.join(LAYOUTS)}); {task!r} is not one.")
    layout = LAYOUTS[task]
    for candidate in (os.path.join(glue_dir, layout.folder), glue_dir):
        if os.path.isfile(os.path.join(candidate, "train.tsv")) or os.path.isfile(
            os.path.join(candidate, layout.eval_files[0][1])
        ):
            return candidate
    raise FileNotFoundError(
        f"--glue_dir {glue_dir!r} holds no GLUE {task} files: expected {layout.folder}/train.tsv (and "
        f"{layout.eval_files[0][1]}) inside it, or train.tsv directly in it. Point it at glue_data or "
        f"glue_data/{layout.folder}."
    )


KINDS = {int: "a class id (0, 1, ...)", float: "a number", str: "text"}


def _convert(value: str, label_type: type, path: str, line: int):
    try:
        return label_type(value)
    except ValueError:
        raise ValueError(
            f"{path}, line {line}: the label {value!r} is not {KINDS[label_type]}. Is this the original GLUE file "
            "of the task you named with --task_name?"
        ) from None


def read_glue_tsv(path: str, layout: GlueLayout) -> Dataset:
    """One original GLUE TSV as a Dataset with Hub columns (label column only where the file has labels)."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows:
        raise ValueError(f"{path} is empty: expected the original GLUE TSV of this task.")
    header = rows[0]
    if layout.headerless and not set(layout.columns) <= set(header):  # CoLA train/dev: no header
        sentence_at, label_at = layout.headerless
        data: dict[str, list] = {"sentence": [], "label": []}
        for line, row in enumerate(rows, start=1):
            if len(row) <= max(sentence_at, label_at):
                raise ValueError(f"{path}, line {line}: expected 4 tab-separated fields, found {len(row)}.")
            data["sentence"].append(row[sentence_at])
            data["label"].append(_convert(row[label_at], layout.label_type, path, line))
        return Dataset.from_dict(data)
    texts = {name: hub for name, hub in layout.columns.items() if hub != "label"}
    missing = [name for name in texts if name not in header]
    if missing:
        raise ValueError(
            f"{path} lacks the column(s) {missing} of the original GLUE file (its header is {header}). Is it the "
            "right task's file?"
        )
    label_name = next((name for name, hub in layout.columns.items() if hub == "label"), None)
    wanted = {**texts, **({label_name: "label"} if label_name in header else {})}
    positions = {hub: header.index(name) for name, hub in wanted.items()}
    data = {hub: [] for hub in positions}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) < len(header):
            raise ValueError(f"{path}, line {line}: expected {len(header)} tab-separated fields, found {len(row)}.")
        for hub, at in positions.items():
            value = row[at]
            data[hub].append(_convert(value, layout.label_type, path, line) if hub == "label" else value)
    return Dataset.from_dict(data)


def load_glue_folder(glue_dir: str, task: str, roles: set[str]) -> tuple[DatasetDict, dict[str, str]]:
    """The splits of `task` found in its GLUE folder, by role (train, eval, eval_mm, predict, predict_mm), among
    those asked for, and where each came from."""
    folder = task_folder(glue_dir, task)
    layout = LAYOUTS[task]
    files = {"train": "train.tsv", **dict(layout.eval_files), **dict(layout.test_files)}
    splits, sources = {}, {}
    for role, name in files.items():
        path = os.path.join(folder, name)
        if role.split("_")[0] in roles and os.path.isfile(path):
            splits[role] = read_glue_tsv(path, layout)
            sources[role] = f"--glue_dir {path}"
    return DatasetDict(splits), sources
