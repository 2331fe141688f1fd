#!/usr/bin/env python
"""Fine-tune a sequence-classification model on a GLUE task, IMDB or local files, with or without SSE.

Same command line as transformers' examples/pytorch/text-classification/run_glue.py, plus `--sse_*` options:

    python recipes/run_glue.py --model_name_or_path bert-base-uncased --task_name rte \
        --do_train --do_eval --output_dir out/rte-sse --sse_p 0.1
    accelerate launch --config_file recipes/accelerate_configs/multi_gpu.yaml recipes/run_glue.py ...

Metrics come through `evaluate` from the project's own module (recipes/metrics/glue_local), so they work offline.

To choose p first, on a part held out from the training data (never the validation data):

    python recipes/run_glue.py ... --search_sse '{"p": [0, 0.05, 0.1]}' --search_held_out 0.2
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import evaluate
import numpy as np
from datasets import DatasetDict
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    PretrainedConfig,
    Trainer,
    TrainingArguments,
    default_data_collator,
)

if not __package__:  # run as a script (python recipes/run_glue.py): import recipes.* from this clone
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from recipes.kit import cli, run_report, run_setup
from recipes.kit.data_sources import load_hub_dataset, load_local_files
from recipes.kit.glue_files import load_glue_folder
from recipes.kit.glue_metrics import (
    GLUE_LOCAL,
    default_metrics,
    metric_config,
    metric_function,
    predictions_from_logits,
)
from recipes.kit.glue_tasks import (
    TASKS,
    LabelSpace,
    TaskSpec,
    check_label_values,
    check_texts,
    check_training_labels,
    encode_split_labels,
    get_task,
    model_label_order,
    resolve_labels,
    resolve_text_columns,
)
from recipes.kit.sse_search import SearchArguments, carve_split, search_sse
from sse_hf import SSEArguments, SSECallback

logger = logging.getLogger(__name__)

LOCAL_EXTENSIONS = ("csv", "tsv", "json", "jsonl")


@dataclass
class ModelArguments:
    """Which model, config and tokenizer to fine-tune."""

    model_name_or_path: str = field(
        metadata={"help": "A local directory with a model (and tokenizer), or a Hub model id (needs network)."}
    )
    config_name: str | None = field(
        default=None, metadata={"help": "Config name or path, if not the same as model_name_or_path."}
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer name or path, if not the same as model_name_or_path."}
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where to cache models and data sets."})
    model_revision: str = field(default="main", metadata={"help": "Model version: a branch, tag or commit id."})
    token: str | None = field(default=None, metadata={"help": "Hub token for private models (default: your login)."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow models with custom code from the Hub (runs their code locally)."}
    )
    ignore_mismatched_sizes: bool = field(
        default=False,
        metadata={
            "help": "Load a checkpoint whose classification head has another number of labels (head re-initialised)."
        },
    )

    def __post_init__(self) -> None:
        run_setup.require_existing_paths(
            model_name_or_path=self.model_name_or_path,
            config_name=self.config_name,
            tokenizer_name=self.tokenizer_name,
        )


@dataclass
class DataTrainingArguments:
    """Which data to train and evaluate on, and how to prepare it."""

    task_name: str | None = field(
        default=None,
        metadata={"help": f"The task: one of {', '.join(TASKS)}. Loads its Hub data unless local files are given."},
    )
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Hub data set name; defaults to the task's (nyu-mll/glue, stanfordnlp/imdb). 'glue' works too."
        },
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub data set configuration name."})
    glue_dir: str | None = field(
        default=None,
        metadata={
            "help": "A classic glue_data folder of original GLUE TSVs (glue_data, or glue_data/RTE): train.tsv, dev.tsv "
            "and test.tsv in each task's own layout. Needs --task_name."
        },
    )
    train_file: str | None = field(default=None, metadata={"help": "Local training data: csv, tsv, json or jsonl."})
    validation_file: str | None = field(
        default=None, metadata={"help": "Local validation data: csv, tsv, json or jsonl."}
    )
    validation_mismatched_file: str | None = field(
        default=None, metadata={"help": "MNLI only: local mismatched validation data (reported as eval_mm_*)."}
    )
    test_file: str | None = field(
        default=None, metadata={"help": "Local data to predict labels for (labels optional)."}
    )
    text_column_names: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated text column(s) of local data, e.g. 'sentence1,sentence2'. Default: guessed."
        },
    )
    label_column_name: str = field(default="label", metadata={"help": "The label column of local data."})
    max_seq_length: int = field(default=128, metadata={"help": "Longest tokenized input; longer ones are truncated."})
    pad_to_max_length: bool = field(
        default=False,
        metadata={"help": "Pad every input to max_seq_length (for TPUs); default pads each batch to its longest."},
    )
    overwrite_cache: bool = field(
        default=False, metadata={"help": "Redo the tokenization instead of using the cache."}
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenization."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training examples."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N evaluation examples."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Use only the first N test examples."})

    def __post_init__(self) -> None:
        run_setup.require_positive(
            max_seq_length=self.max_seq_length,
            max_train_samples=self.max_train_samples,
            max_eval_samples=self.max_eval_samples,
            max_predict_samples=self.max_predict_samples,
            preprocessing_num_workers=self.preprocessing_num_workers,
        )
        if self.task_name is not None:
            self.task_name = get_task(self.task_name).name
        local = [self.train_file, self.validation_file, self.test_file]
        if self.glue_dir is not None:
            if self.task_name is None:
                raise ValueError(f"--glue_dir {self.glue_dir} needs --task_name: which GLUE task's folder to read.")
            if any(local) or self.dataset_name is not None:
                raise ValueError(
                    "--glue_dir reads train, dev and test files from the GLUE folder: drop --train_file, "
                    "--validation_file, --test_file and --dataset_name, or drop --glue_dir."
                )
        if self.task_name is None and self.dataset_name is None and not any(local):
            raise ValueError(
                f"Nothing to train on: pass --task_name ({', '.join(TASKS)}), --dataset_name, or local files with "
                "--train_file / --validation_file / --test_file."
            )
        if any(local) or self.glue_dir is not None:  # then no Hub data set is read
            why = "local files (--train_file, --validation_file, --test_file or --glue_dir) are read instead"
            run_setup.warn_idle(
                dataset_name=self.dataset_name and why, dataset_config_name=self.dataset_config_name and why
            )


def load_raw_data(data_args: DataTrainingArguments, task: TaskSpec | None, cache_dir: str | None):
    """The raw splits by role (train, eval, eval_mm, predict, predict_mm) and a description of where each came from."""
    local = {
        "train": (data_args.train_file, "--train_file"),
        "eval": (data_args.validation_file, "--validation_file"),
        "eval_mm": (data_args.validation_mismatched_file, "--validation_mismatched_file"),
        "predict": (data_args.test_file, "--test_file"),
    }
    local = {role: entry for role, entry in local.items() if entry[0]}
    if data_args.glue_dir is not None:
        return load_glue_folder(data_args.glue_dir, task.name, {"train", "eval", "predict"})
    if local:
        raw = load_local_files(local, LOCAL_EXTENSIONS, cache_dir=cache_dir)
        return raw, {role: f"{option} {path}" for role, (path, option) in local.items()}
    name = data_args.dataset_name or task.hub_name
    config_name = data_args.dataset_config_name or (task.hub_config if task else None)
    hub = load_hub_dataset(
        name,
        config_name,
        cache_dir=cache_dir,
        local_hint="--train_file train.csv --validation_file dev.csv (csv, tsv, json or jsonl; columns "
        + (", ".join([*task.text_columns, "label"]) if task else "text and label")
        + ").",
    )
    roles = {
        "train": "train",
        **(task.eval_splits if task else {"eval": "validation"}),
        **(task.test_splits if task else {"predict": "test"}),
    }
    raw = DatasetDict({role: hub[split] for role, split in roles.items() if split in hub})
    return raw, {role: f"{name} split {roles[role]}" for role in raw}


def tokenize_function(tokenizer, text_columns: tuple[str, ...], data_args: DataTrainingArguments, model_config=None):
    padding = "max_length" if data_args.pad_to_max_length else False
    positions = getattr(model_config, "max_position_embeddings", None) or 10**9
    max_length = min(data_args.max_seq_length, tokenizer.model_max_length, positions)
    if data_args.max_seq_length > max_length:
        logger.warning(
            "--max_seq_length %d is longer than the model allows (tokenizer model_max_length %d, "
            "max_position_embeddings %s); using %d.",
            data_args.max_seq_length,
            tokenizer.model_max_length,
            positions,
            max_length,
        )

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        texts = [["" if text is None else str(text) for text in batch[column]] for column in text_columns]
        return tokenizer(*texts, padding=padding, max_length=max_length, truncation=True)

    return tokenize


def set_label_mapping(config: PretrainedConfig, labels: LabelSpace) -> None:
    """Write the label names into the model config (kept in the saved model), or mark it as regression."""
    if labels.is_regression:
        config.problem_type = "regression"
        return
    config.label2id = {name: i for i, name in enumerate(labels.names)}
    config.id2label = dict(enumerate(labels.names))


def has_labels(dataset, label_column: str) -> bool:
    """True when a test split carries real labels (GLUE's Hub test splits hold -1 placeholders: not labels)."""
    if label_column not in dataset.column_names:
        return False
    return any(value is not None and value != -1 and value != "-1" for value in dataset[label_column])


def _select(dataset, limit: int | None):
    return dataset if limit is None else dataset.select(range(min(limit, len(dataset))))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the recipe with command-line arguments `argv` (default: sys.argv[1:]); return what all_results.json holds."""
    started = time.perf_counter()
    (model_args, data_args, sse_args, search_args, output_args, training_args), last_checkpoint = run_setup.start_run(
        (
            ModelArguments,
            DataTrainingArguments,
            SSEArguments,
            SearchArguments,
            run_setup.OutputArguments,
            TrainingArguments,
        ),
        argv,
        actions=("do_train", "do_eval", "do_predict"),
    )
    task = get_task(data_args.task_name) if data_args.task_name else None
    searching = search_args.search_sse is not None  # then only the training data is read, and carved
    if searching:  # every candidate checked with the --sse_* options before any data is read
        given = [f"--{action}" for action in ("do_eval", "do_predict") if action in output_args.actions_given]
        if training_args.eval_strategy != "no" and "--do_eval" in given:
            given.remove("--do_eval")  # set by --eval_strategy, which evaluates the held-out part while training
        if given:
            raise ValueError(
                f"{' and '.join(given)} with --search_sse: a search scores its candidates on the part it carves from "
                "the training data and never reads validation or test data, so they would do nothing. Drop them; "
                "then run the chosen --sse_* options with them."
            )
        search_args.candidates(sse_args.to_config(), sse_args.sse)
        resume = training_args.resume_from_checkpoint or last_checkpoint
        if resume:
            raise ValueError(
                f"--search_sse trains every candidate from the start, so the checkpoint {resume} would not be resumed: "
                "drop --resume_from_checkpoint, or search into another --output_dir (or pass --overwrite_output_dir)."
            )

    # ----- data and labels -----------------------------------------------------------------------
    raw, sources = load_raw_data(data_args, task, model_args.cache_dir)
    if searching and "train" not in raw:
        raise ValueError(f"--search_sse needs training data, but none was found in {sorted(sources.values())}.")
    if searching:
        training_args.do_train, training_args.do_eval, training_args.do_predict = True, False, False
    wanted = {"train"} if training_args.do_train else set()
    wanted |= {role for role in raw if role.startswith("eval")} if training_args.do_eval else set()
    wanted |= {role for role in raw if role.startswith("predict")} if training_args.do_predict else set()
    for role, requested, flag, option in (
        ("train", training_args.do_train, "--do_train", "--train_file"),
        ("eval", training_args.do_eval, "--do_eval", "--validation_file"),
        ("predict", training_args.do_predict, "--do_predict", "--test_file"),
    ):
        if requested and role not in raw:
            raise ValueError(
                f"{flag} needs {role} data, but none was found in {sorted(sources.values())}: pass {option}."
            )
    raw = DatasetDict({role: raw[role] for role in raw if role in wanted})
    label_column = data_args.label_column_name
    labelled = [role for role in raw if not role.startswith("predict") or has_labels(raw[role], label_column)]
    text_columns = resolve_text_columns(
        {role: raw[role].column_names for role in raw},
        sources,
        task,
        label_column,
        [c.strip() for c in data_args.text_column_names.split(",")] if data_args.text_column_names else None,
    )
    for role in labelled:
        if label_column not in raw[role].column_names:
            raise ValueError(
                f"The {role} data ({sources[role]}) has no label column {label_column!r}; it has "
                f"{', '.join(raw[role].column_names)}. Name it with --label_column_name."
            )
        check_label_values(raw[role], label_column, role, sources[role])

    config = AutoConfig.from_pretrained(
        model_args.config_name or model_args.model_name_or_path,
        finetuning_task=task.name if task else None,
        cache_dir=model_args.cache_dir,
        revision=model_args.model_revision,
        token=model_args.token,
        trust_remote_code=model_args.trust_remote_code,
    )
    saved_names = tuple(config.id2label[i] for i in range(config.num_labels))
    fine_tuned = any(name != f"LABEL_{i}" for i, name in enumerate(saved_names))
    if task is not None or "train" in raw:
        labels = resolve_labels({r: raw[r] for r in labelled}, label_column, task, "train" if "train" in raw else None)
        if task is not None and fine_tuned:  # keep the order of a model already fine-tuned on this task
            labels = model_label_order(labels, saved_names)
    elif config.problem_type == "regression":
        labels = LabelSpace(None)
    elif fine_tuned:  # evaluation or prediction only: the label names the fine-tuned model was saved with
        labels = LabelSpace(saved_names)
    elif labelled:
        labels = resolve_labels({r: raw[r] for r in labelled}, label_column, None, None)
    else:
        raise ValueError(
            f"Cannot tell the labels: the model at {model_args.model_name_or_path} has no label names and there is no "
            "labelled data. Pass --task_name, or --train_file / --validation_file with a label column."
        )
    if task is None and "train" in raw:
        check_training_labels(raw["train"], label_column, labels, sources["train"])
    config.num_labels = labels.num_labels
    set_label_mapping(config, labels)
    metric_names = task.metrics if task else default_metrics(labels.is_regression, labels.num_labels)
    with training_args.main_process_first(desc="loading the metric"):  # one process copies the module into the cache
        metric = evaluate.load(
            str(GLUE_LOCAL),
            config_name=metric_config(task and task.name, labels.is_regression, labels.num_labels),
            keep_in_memory=True,
        )

    tokenizer = AutoTokenizer.from_pretrained(
        model_args.tokenizer_name or model_args.model_name_or_path,
        cache_dir=model_args.cache_dir,
        revision=model_args.model_revision,
        token=model_args.token,
        trust_remote_code=model_args.trust_remote_code,
    )
    run_setup.require_room_for_text(tokenizer, data_args.max_seq_length, len(text_columns))

    def model_init():
        return AutoModelForSequenceClassification.from_pretrained(
            model_args.model_name_or_path,
            config=config,
            cache_dir=model_args.cache_dir,
            revision=model_args.model_revision,
            token=model_args.token,
            trust_remote_code=model_args.trust_remote_code,
            ignore_mismatched_sizes=model_args.ignore_mismatched_sizes,
        )

    model = None if searching else model_init()

    limits = {
        "train": data_args.max_train_samples,
        "eval": data_args.max_eval_samples,
        "predict": data_args.max_predict_samples,
    }
    tokenize = tokenize_function(tokenizer, text_columns, data_args, config)  # the config the model is built from
    prepared = {}
    with training_args.main_process_first(desc="dataset map pre-processing"):
        for role, dataset in raw.items():
            dataset = _select(dataset, limits[role.split("_")[0]])
            check_texts(dataset, text_columns, role, sources[role])
            if role in labelled:
                id_names = task.label_names if task is not None else None  # ints in task data are Hub ids
                dataset = encode_split_labels(dataset, role, sources[role], label_column, labels, id_names)
            keep = {"labels"} if role in labelled else set()
            prepared[role] = dataset.map(
                tokenize,
                batched=True,
                num_proc=data_args.preprocessing_num_workers,
                remove_columns=[c for c in dataset.column_names if c not in keep],
                load_from_cache_file=not data_args.overwrite_cache,
                desc=f"Tokenizing {role} data",
            )
    if "train" in prepared:
        for index in np.random.default_rng(training_args.seed).choice(
            len(prepared["train"]), size=min(2, len(prepared["train"])), replace=False
        ):
            logger.info("Training example %d: %s", index, prepared["train"][int(index)])

    if data_args.pad_to_max_length:
        collator = default_data_collator
    else:
        collator = DataCollatorWithPadding(
            tokenizer, pad_to_multiple_of=8 if training_args.fp16 or training_args.bf16 else None
        )
    if searching:
        train_part, held_out = carve_split(prepared["train"], search_args.search_held_out, training_args.seed)
        trainer_kwargs = dict(
            model_init=model_init,
            args=training_args,
            train_dataset=train_part,
            eval_dataset=held_out,
            processing_class=tokenizer,
            data_collator=collator,
            compute_metrics=metric_function(metric, labels.is_regression),
        )
        scored = training_args.metric_for_best_model or metric_names[0]  # --metric_for_best_model, if given
        return search_sse(
            trainer_kwargs,
            search_args,
            sse_args.to_config(),
            tokenizer,
            scored if scored.startswith("eval_") else f"eval_{scored}",
            training_args.output_dir,
            maximize=training_args.greater_is_better is not False,
        )
    # ----- SSE: one SSEConfig from the --sse_* options; its callback goes to Trainer (none for the baseline) ----
    sse_config = sse_args.to_config()
    sse_callback = SSECallback(sse_config, tokenizer=tokenizer) if sse_args.is_active() else None
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=prepared.get("train"),
        eval_dataset=prepared.get("eval"),
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=metric_function(metric, labels.is_regression),
        callbacks=[sse_callback] if sse_callback is not None else [],
    )

    run = {
        "task": task.name if task else "local",
        "model_name_or_path": model_args.model_name_or_path,
        "primary_metric": f"eval_{metric_names[0]}",
        "seed": training_args.seed,
    }
    results: dict[str, Any] = {}
    # ----- train: the SSE hooks are on from the start of training and off at its end, even if it fails ---------
    if training_args.do_train:
        checkpoint = training_args.resume_from_checkpoint or last_checkpoint
        with sse_callback if sse_callback is not None else contextlib.nullcontext():
            train_result = trainer.train(resume_from_checkpoint=checkpoint)
        metrics = run_report.save_train_results(trainer, train_result, len(prepared["train"]), sse_args, sse_callback)
        results.update(metrics)

    # ----- evaluate: every evaluation split, on the original (unswapped) inputs -----------------
    if training_args.do_eval:
        for role in [r for r in prepared if r.startswith("eval")]:
            metrics = trainer.evaluate(eval_dataset=prepared[role], metric_key_prefix=role)
            metrics[f"{role}_samples"] = len(prepared[role])
            trainer.log_metrics(role, metrics)
            trainer.save_metrics(role, metrics)
            results.update(metrics)

    # ----- predict -------------------------------------------------------------------------------
    if training_args.do_predict:
        for role in [r for r in prepared if r.startswith("predict")]:
            output = trainer.predict(prepared[role], metric_key_prefix=role)  # scored when it has labels
            logits = output.predictions
            if role in labelled:
                metrics = {**output.metrics, f"{role}_samples": len(prepared[role])}
                trainer.log_metrics(role, metrics)
                trainer.save_metrics(role, metrics)
                results.update(metrics)
            predictions = predictions_from_logits(logits, labels.is_regression)
            if trainer.is_world_process_zero():
                path = os.path.join(training_args.output_dir, f"{role}_results_{run['task']}.txt")
                with open(path, "w", encoding="utf-8") as writer:
                    writer.write("index\tprediction\n")
                    for index, value in enumerate(predictions):
                        shown = f"{value:.3f}" if labels.is_regression else labels.names[int(value)]
                        writer.write(f"{index}\t{shown}\n")
                logger.info("Wrote %d predictions to %s", len(predictions), path)

    return {**run, **results, **run_report.save_run_record(trainer, run, started)}


if __name__ == "__main__":
    cli.run(main)
    run_setup.shutdown_distributed()
