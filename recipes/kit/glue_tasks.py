"""The GLUE tasks and IMDB: where their data lives, which columns hold text and label, and how they are scored.

Also the rules for local files without a task: which columns are the text, and how labels become ids.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from datasets import ClassLabel, Dataset, Value


@dataclass(frozen=True)
class TaskSpec:
    """One text-classification task: its Hub location and schema, its GLUE metric, its evaluation splits."""

    name: str
    hub_name: str
    hub_config: str | None
    text_columns: tuple[str, ...]
    label_names: tuple[str, ...] | None  # None: regression
    metrics: tuple[str, ...]
    eval_splits: Mapping[str, str] = field(default_factory=lambda: {"eval": "validation"})  # role -> Hub split
    test_splits: Mapping[str, str] = field(default_factory=lambda: {"predict": "test"})

    @property
    def is_regression(self) -> bool:
        return self.label_names is None

    @property
    def num_labels(self) -> int:
        return 1 if self.label_names is None else len(self.label_names)

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]


GLUE = "nyu-mll/glue"
TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        TaskSpec("cola", GLUE, "cola", ("sentence",), ("unacceptable", "acceptable"), ("matthews_correlation",)),
        TaskSpec("sst2", GLUE, "sst2", ("sentence",), ("negative", "positive"), ("accuracy",)),
        TaskSpec(
            "mrpc", GLUE, "mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), ("f1", "accuracy")
        ),
        TaskSpec("qqp", GLUE, "qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), ("f1", "accuracy")),
        TaskSpec("stsb", GLUE, "stsb", ("sentence1", "sentence2"), None, ("pearson", "spearmanr")),
        TaskSpec(
            "mnli",
            GLUE,
            "mnli",
            ("premise", "hypothesis"),
            ("entailment", "neutral", "contradiction"),
            ("accuracy",),
            eval_splits={"eval": "validation_matched", "eval_mm": "validation_mismatched"},
            test_splits={"predict": "test_matched", "predict_mm": "test_mismatched"},
        ),
        TaskSpec("qnli", GLUE, "qnli", ("question", "sentence"), ("entailment", "not_entailment"), ("accuracy",)),
        TaskSpec("rte", GLUE, "rte", ("sentence1", "sentence2"), ("entailment", "not_entailment"), ("accuracy",)),
        TaskSpec("wnli", GLUE, "wnli", ("sentence1", "sentence2"), ("not_entailment", "entailment"), ("accuracy",)),
        TaskSpec(
            "imdb",
            "stanfordnlp/imdb",
            None,
            ("text",),
            ("neg", "pos"),
            ("accuracy",),
            eval_splits={"eval": "test"},  # IMDB has no validation split; the paper reports test accuracy
            test_splits={},
        ),
    ]
}
GLUE_TASKS = tuple(name for name, spec in TASKS.items() if spec.hub_name == GLUE)
_ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli", "glue": "", "": ""}

# Column pairs that name a sentence-pair task, in the order they are tried on local files.
KNOWN_PAIRS = (
    ("sentence1", "sentence2"),
    ("premise", "hypothesis"),
    ("question1", "question2"),
    ("question", "sentence"),
)
KNOWN_SINGLES = ("sentence", "text", "review", "content")
IGNORED_COLUMNS = ("idx", "id", "guid", "index")


def get_task(name: str) -> TaskSpec:
    """The spec of a task by name (case-insensitive; sst-2 and sts-b spellings accepted). Unknown: lists the valid ones."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in TASKS:
        raise ValueError(f"Unknown task {name!r}. Valid tasks: {', '.join(TASKS)}.")
    return TASKS[key]


def _missing_columns_error(
    split: str, source: str, needed: Sequence[str], present: Sequence[str], hint: str
) -> ValueError:
    return ValueError(
        f"The {split} data ({source}) lacks the column(s) {', '.join(map(repr, needed))}; it has "
        f"{', '.join(map(repr, present)) or 'no columns'}. {hint}"
    )


def resolve_text_columns(
    column_names: Mapping[str, Sequence[str]],
    sources: Mapping[str, str],
    task: TaskSpec | None,
    label_column: str,
    text_columns: Sequence[str] | None = None,
) -> tuple[str, ...]:
    """The 1 or 2 text columns to tokenize, checked present in every split (split -> its column names).

    A task fixes them; otherwise `text_columns` (from --text_column_names), a known pair or single name,
    or the one or two columns left besides the label and an index column.
    """
    if task is not None and not text_columns:
        chosen = task.text_columns
        hint = f"Task {task.name!r} needs {', '.join(task.text_columns)} and {label_column!r} (the Hub schema)."
    elif text_columns:
        chosen = tuple(text_columns)
        hint = "Check --text_column_names."
    else:
        first = next(iter(column_names.values()))
        others = [c for c in first if c != label_column and c.lower() not in IGNORED_COLUMNS]
        chosen = next((pair for pair in KNOWN_PAIRS if set(pair) <= set(others)), None)
        chosen = chosen or next(((name,) for name in KNOWN_SINGLES if name in others), None)
        if chosen is None and 1 <= len(others) <= 2:
            chosen = tuple(others)
        if chosen is None:
            raise ValueError(
                f"Cannot tell which columns hold the text among {others}. Name them with "
                "--text_column_names col (one text) or --text_column_names col1,col2 (a pair)."
            )
        hint = "Name the text columns with --text_column_names."
    if not 1 <= len(chosen) <= 2:
        raise ValueError(f"Give one or two text columns, got {list(chosen)}.")
    if label_column in chosen:
        raise ValueError(
            f"--text_column_names names {label_column!r}, the label column: the model would read its labels as text. "
            "Name only the text column(s), e.g. --text_column_names sentence (or set --label_column_name)."
        )
    for split, present in column_names.items():
        missing = [c for c in chosen if c not in present]
        if missing:
            raise _missing_columns_error(split, sources.get(split, split), missing, present, hint)
    return chosen


@dataclass(frozen=True)
class LabelSpace:
    """Either regression, or the ordered label names whose positions are the class ids."""

    names: tuple[str, ...] | None

    @property
    def is_regression(self) -> bool:
        return self.names is None

    @property
    def num_labels(self) -> int:
        return 1 if self.names is None else len(self.names)


def model_label_order(space: LabelSpace, saved_names: Sequence[str]) -> LabelSpace:
    """The task's labels in the order a fine-tuned model was saved with, when its names are the task's
    (case aside; e.g. roberta-large-mnli's CONTRADICTION, NEUTRAL, ENTAILMENT); else the space unchanged."""
    if space.is_regression or sorted(n.lower() for n in saved_names) != sorted(n.lower() for n in space.names):
        return space
    by_lower = {name.lower(): name for name in space.names}
    return LabelSpace(tuple(by_lower[name.lower()] for name in saved_names))


def _label_values(dataset: Dataset, label_column: str) -> list:
    return list(dict.fromkeys(dataset[label_column]))


def resolve_labels(
    splits: Mapping[str, Dataset], label_column: str, task: TaskSpec | None, reference_split: str | None
) -> LabelSpace:
    """The label space: the task's; else a ClassLabel's names; float labels are regression; else the
    sorted distinct labels of `reference_split` (the training data)."""
    if task is not None:
        return LabelSpace(task.label_names)
    source = splits[reference_split] if reference_split else next(iter(splits.values()))
    feature = source.features[label_column]
    if isinstance(feature, ClassLabel):
        return LabelSpace(tuple(feature.names))
    if isinstance(feature, Value) and feature.dtype.startswith("float"):
        return LabelSpace(None)
    values = [v for v in _label_values(source, label_column) if v is not None]
    return LabelSpace(tuple(str(v) for v in sorted(values)))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip().lower() not in {"nan", "inf", "-inf", "+inf", "infinity", "-infinity"}


def check_training_labels(dataset: Dataset, label_column: str, space: LabelSpace, source: str) -> None:
    """A clear error where the classes read off the training data cannot be what the user meant.

    One class would make a 1-output model, which Transformers trains as regression; names that differ only in
    case or spaces would be one class to the encoder but two outputs; a label seen once where every other class
    is common is almost always a typo that would silently become a class of its own.
    """
    if space.is_regression:
        return
    if space.num_labels < 2:
        raise ValueError(
            f"The training data ({source}) has a single label value {list(space.names)} in column {label_column!r}: "
            "classification needs at least 2 classes (one class would be trained as regression). Check the label "
            "column, or for a regression task give real-valued labels such as 0.5."
        )
    not_numbers = [name for name in space.names if not _is_number(name)]
    if 0 < len(not_numbers) <= len(space.names) // 10:
        raise ValueError(
            f"The training data ({source}) has numeric labels in column {label_column!r} except {not_numbers[:10]}: "
            "a regression column with a stray value would be read as text classes. Fix or remove those rows."
        )
    normalised: dict[str, list[str]] = {}
    for name in space.names:
        normalised.setdefault(name.strip().lower(), []).append(name)
    clashes = [names for names in normalised.values() if len(names) > 1]
    if clashes:
        raise ValueError(
            f"The training data ({source}) has labels that differ only in case or spaces: {clashes}. Make each class "
            f"one spelling in column {label_column!r}."
        )
    counts = Counter(str(v) for v in dataset[label_column] if v is not None)
    rare = sorted(name for name in space.names if counts[name] == 1)
    common = [name for name in space.names if counts[name] >= 5]
    if rare and len(common) == len(space.names) - len(rare):
        examples = [i + 1 for i, v in enumerate(dataset[label_column]) if str(v) in rare][:10]
        raise ValueError(
            f"The training data ({source}) has label(s) {rare} in column {label_column!r} only once (example(s) "
            f"{examples}, counting from 1), while every other class ({', '.join(common)}) has 5 or more examples: a "
            "typo would silently become a class of its own. Fix the label, or add examples if it is a real class."
        )


def check_label_values(dataset: Dataset, label_column: str, split: str, source: str) -> None:
    """A clear error for labels that are lists or objects: e.g. a .json file of columns ({"label": [...], ...}),
    which datasets reads as one example holding lists."""
    values = dataset[label_column]
    structured = [i + 1 for i, value in enumerate(values) if isinstance(value, (dict, list, tuple))]
    if structured:
        layout = (
            " It looks like one JSON object of columns: write one object per example instead (a .jsonl file, or a "
            ".json list of objects)."
            if len(values) == 1
            else ""
        )
        raise ValueError(
            f"The {split} data ({source}) holds a {type(values[structured[0] - 1]).__name__} in label column "
            f"{label_column!r}, not a label, for {len(structured)} example(s) (example(s) {structured[:10]}, "
            f"counting from 1).{layout}"
        )


def check_texts(dataset: Dataset, text_columns: Sequence[str], split: str, source: str) -> None:
    """A clear error for an example with no text (an empty csv cell, a JSON null) instead of training on ''."""
    for column in text_columns:
        texts = dataset[column]
        structured = [i + 1 for i, text in enumerate(texts) if isinstance(text, (dict, list, tuple))]
        if structured:
            kind = type(texts[structured[0] - 1]).__name__
            raise ValueError(
                f"The {split} data ({source}) holds a {kind} in column {column!r}, not text, for {len(structured)} "
                f"example(s) (example(s) {structured[:10]}, counting from 1): the model would train on its repr. "
                "Give that column plain strings, or name the text column with --text_column_names."
            )
        missing = [i + 1 for i, text in enumerate(texts) if text is None]
        if missing:
            raise ValueError(
                f"The {split} data ({source}) has no text in column {column!r} for {len(missing)} example(s) "
                f"(example(s) {missing[:10]}, counting from 1): an empty cell or a null. Fill them or remove those rows."
            )


def label_encoder(
    space: LabelSpace, feature, id_names: Sequence[str] | None = None
) -> Callable[[object], int | float | None]:
    """A function from a raw label (class id, name, or number) to its class id (or float), None if unseen.

    Names match case-insensitively, and ClassLabel ids go through their names, so data (or a fine-tuned
    model) whose classes are ordered differently still maps right. Plain integers are ids into `id_names`
    (a task's Hub label order; default the space's own names) when those names are words, as in a GLUE file
    with 0/1 labels.
    """
    if space.is_regression:
        return lambda value: None if value is None else float(value)
    index = {name.lower(): i for i, name in enumerate(space.names)}
    id_names = tuple(id_names or space.names)
    positional = not any(name.lstrip("-").isdigit() for name in id_names)

    def encode(value):
        if value is None:
            return None
        if isinstance(feature, ClassLabel):
            return index.get(feature.int2str(value).lower()) if 0 <= value < feature.num_classes else None
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        key = str(value).lower()
        if key in index:
            return index[key]
        if positional and isinstance(value, int) and 0 <= value < len(id_names):
            return index.get(id_names[value].lower())
        return None

    return encode


def encode_split_labels(
    dataset: Dataset,
    split: str,
    source: str,
    label_column: str,
    space: LabelSpace,
    id_names: Sequence[str] | None = None,
) -> Dataset:
    """Turn `label_column` into class ids (or floats) in a `labels` column; unseen labels are a clear error."""
    encode = label_encoder(space, dataset.features[label_column], id_names)
    raw = dataset[label_column]
    unseen = sorted({str(v) for v in raw if encode(v) is None}, key=str)
    if unseen:
        known = "a number (regression)" if space.is_regression else ", ".join(space.names)
        raise ValueError(
            f"The {split} data ({source}) has label(s) {unseen[:20]} in column {label_column!r} that are not among "
            f"the labels the model is trained on ({known}). Fix the file, or make sure the training data holds "
            "every label."
        )
    encoded = [encode(v) for v in raw]
    dataset = dataset.remove_columns([c for c in ("labels",) if c in dataset.column_names])
    return dataset.add_column("labels", encoded)
