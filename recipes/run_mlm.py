#!/usr/bin/env python
"""Masked-LM pre-training (from scratch or continued) with SSE on the word-piece inputs.

Same command line as transformers' examples/pytorch/language-modeling/run_mlm.py, plus `--sse_*` options.
The usual 80/10/10 masking (DataCollatorForLanguageModeling) comes first; SSE then swaps input tokens inside
the model's embedding lookup. It never swaps [MASK] (a protected special id) and never changes `labels`.

    # from scratch, from a config (a directory, a config.json, or --model_type bert) plus small overrides
    python recipes/run_mlm.py --config_name bert-config.json --config_overrides "hidden_size=64,num_hidden_layers=2" \
        --tokenizer_name my-tokenizer --train_file corpus.txt --do_train --do_eval --output_dir out/mlm --sse_p 0.1
    # continued pre-training
    python recipes/run_mlm.py --model_name_or_path bert-base-uncased --dataset_name wikitext \
        --dataset_config_name wikitext-2-raw-v1 --do_train --do_eval --output_dir out/mlm

The saved model and tokenizer fine-tune with `run_glue.py --model_name_or_path out/mlm`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from datasets import DatasetDict
from transformers import (
    CONFIG_MAPPING,
    AutoConfig,
    AutoModelForMaskedLM,
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    Trainer,
    TrainingArguments,
    set_seed,
)

if not __package__:  # run as a script (python recipes/run_mlm.py): import recipes.* from this clone
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from recipes.kit import cli, run_report, run_setup
from recipes.kit.data_sources import load_hub_dataset, load_local_files
from recipes.kit.wordpiece import train_wordpiece_tokenizer
from sse_hf import SSEArguments, SSECallback

logger = logging.getLogger(__name__)

LOCAL_EXTENSIONS = ("txt", "csv", "tsv", "json", "jsonl")


@dataclass
class ModelArguments:
    """Which model to continue pre-training, or which config (and tokenizer) to pre-train from scratch."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Continue pre-training this model (local directory or Hub id). Leave unset to train from scratch."
        },
    )
    model_type: str | None = field(
        default=None,
        metadata={
            "help": f"From scratch: a model type's default config, e.g. bert ({', '.join(list(CONFIG_MAPPING.keys())[:8])}, ...)."
        },
    )
    config_name: str | None = field(
        default=None, metadata={"help": "From scratch: a config directory, a config.json file, or a Hub id."}
    )
    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": "From scratch: override config fields, e.g. 'hidden_size=64,num_hidden_layers=2,vocab_size=2000'."
        },
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer directory or Hub id, if not the model's or the config directory's."}
    )
    tokenizer_vocab_size: int | None = field(
        default=None,
        metadata={
            "help": "With no tokenizer to load: train a BERT WordPiece tokenizer of this size on the training text."
        },
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where to cache models and data sets."})
    model_revision: str = field(default="main", metadata={"help": "Model version: a branch, tag or commit id."})
    token: str | None = field(default=None, metadata={"help": "Hub token for private models (default: your login)."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow models with custom code from the Hub."})

    def __post_init__(self) -> None:
        run_setup.require_existing_paths(
            model_name_or_path=self.model_name_or_path,
            config_name=self.config_name,
            tokenizer_name=self.tokenizer_name,
        )
        if self.config_overrides and self.model_name_or_path:
            raise ValueError(
                "--config_overrides changes the architecture, so it cannot be used with --model_name_or_path (the "
                "weights would not fit). Use it with --config_name or --model_type to pre-train from scratch."
            )
        if not (self.model_name_or_path or self.config_name or self.model_type):
            raise ValueError(
                "Pass --model_name_or_path to continue pre-training, or --config_name / --model_type to pre-train "
                "from scratch."
            )
        loaded = "--model_name_or_path" if self.model_name_or_path else "--config_name" if self.config_name else None
        run_setup.warn_idle(
            model_type=self.model_type and loaded and f"{loaded} gives the config",
            tokenizer_vocab_size=self.tokenizer_vocab_size
            and (self.tokenizer_name or self.model_name_or_path)
            and "a tokenizer is loaded (--tokenizer_name or --model_name_or_path), so none is trained",
        )


@dataclass
class DataTrainingArguments:
    """The text corpus and how to cut it into training examples."""

    dataset_name: str | None = field(default=None, metadata={"help": "Hub data set name, e.g. wikitext."})
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "Hub data set configuration, e.g. wikitext-2-raw-v1."}
    )
    train_file: str | None = field(
        default=None, metadata={"help": "Local training text: txt (one text per line), csv, json or jsonl."}
    )
    validation_file: str | None = field(default=None, metadata={"help": "Local held-out text, same formats."})
    text_column_name: str = field(default="text", metadata={"help": "The text column of csv/json data."})
    validation_split_percentage: int = field(
        default=5, metadata={"help": "Without validation data: hold out this percentage of the training data."}
    )
    max_seq_length: int | None = field(
        default=None, metadata={"help": "Tokens per example (default: the tokenizer's limit, at most 512)."}
    )
    line_by_line: bool = field(
        default=False, metadata={"help": "One example per line; default concatenates the text and cuts it in blocks."}
    )
    pad_to_max_length: bool = field(
        default=False, metadata={"help": "Line by line: pad every line to max_seq_length."}
    )
    mlm_probability: float = field(
        default=0.15, metadata={"help": "Share of tokens chosen for the MLM loss (80/10/10)."}
    )
    overwrite_cache: bool = field(
        default=False, metadata={"help": "Redo the tokenization instead of using the cache."}
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenization."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training examples."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N evaluation examples."})

    def __post_init__(self) -> None:
        run_setup.require_positive(
            max_seq_length=self.max_seq_length,
            max_train_samples=self.max_train_samples,
            max_eval_samples=self.max_eval_samples,
            preprocessing_num_workers=self.preprocessing_num_workers,
        )
        if self.dataset_name is None and self.train_file is None and self.validation_file is None:
            raise ValueError("Nothing to train on: pass --dataset_name, or --train_file (and --validation_file).")
        if not 0 < self.mlm_probability < 1:
            raise ValueError(f"--mlm_probability must be between 0 and 1, got {self.mlm_probability}.")
        run_setup.warn_idle(
            pad_to_max_length=self.pad_to_max_length
            and not self.line_by_line
            and "without --line_by_line the text is cut into blocks of exactly --max_seq_length tokens",
            validation_split_percentage=self.validation_file is not None
            and self.validation_split_percentage != 5
            and "--validation_file is the held-out text",
        )


def load_corpus(data_args: DataTrainingArguments, cache_dir: str | None, seed: int) -> DatasetDict:
    """Train and validation text; without validation data, a held-out share of the training data."""
    if data_args.train_file or data_args.validation_file:
        files = {
            "train": (data_args.train_file, "--train_file"),
            "validation": (data_args.validation_file, "--validation_file"),
        }
        raw = load_local_files({s: f for s, f in files.items() if f[0]}, LOCAL_EXTENSIONS, cache_dir=cache_dir)
    else:
        raw = load_hub_dataset(
            data_args.dataset_name,
            data_args.dataset_config_name,
            cache_dir=cache_dir,
            local_hint="--train_file corpus.txt --validation_file heldout.txt (txt, csv, json or jsonl).",
        )
    if data_args.line_by_line:  # before holding out a share, so that the share counts real lines
        raw = drop_blank_lines(raw, text_column(raw, data_args.text_column_name), data_args)
    if "validation" not in raw and "train" in raw:
        held_out = data_args.validation_split_percentage / 100
        if not 0 < held_out < 1:
            raise ValueError("No validation data: pass --validation_file or a --validation_split_percentage in 1..99.")
        split = raw["train"].train_test_split(test_size=held_out, seed=seed)
        raw = DatasetDict({"train": split["train"], "validation": split["test"]})
    return raw


def text_column(raw: DatasetDict, wanted: str) -> str:
    """The column holding the text: `wanted` if present, else the only column (a txt file's is 'text')."""
    columns = next(iter(raw.values())).column_names
    if wanted in columns:
        return wanted
    if len(columns) == 1:
        return columns[0]
    raise ValueError(
        f"No text column {wanted!r} in the corpus (columns: {', '.join(columns)}). Name it with --text_column_name."
    )


def drop_blank_lines(raw: DatasetDict, column: str, data_args: DataTrainingArguments) -> DatasetDict:
    """--line_by_line: every non-blank line is one example; a split with none left is a clear error naming its file."""
    kept = raw.filter(lambda text: text is not None and not text.isspace() and text != "", input_columns=column)
    for split, dataset in kept.items():
        if len(dataset) == 0:
            where = {"train": data_args.train_file, "validation": data_args.validation_file}.get(split)
            source = (
                f"{'--train_file' if split == 'train' else '--validation_file'} {where!r}"
                if where
                else f"the {split} split"
            )
            raise ValueError(
                f"--line_by_line: {source} has no non-blank lines in column {column!r}, so there is nothing to train "
                "or evaluate on. Check the file (or drop --line_by_line to concatenate the text)."
            )
    return kept


def load_config(model_args: ModelArguments):
    """The model config: the pretrained model's, a config file or directory, or a model type's default."""
    kwargs = {
        "cache_dir": model_args.cache_dir,
        "revision": model_args.model_revision,
        "token": model_args.token,
        "trust_remote_code": model_args.trust_remote_code,
    }
    if model_args.model_name_or_path:
        return AutoConfig.from_pretrained(model_args.model_name_or_path, **kwargs)
    if model_args.config_name:
        config = AutoConfig.from_pretrained(model_args.config_name, **kwargs)
    else:
        if model_args.model_type not in CONFIG_MAPPING:
            raise ValueError(
                f"Unknown --model_type {model_args.model_type!r}. Known: {', '.join(CONFIG_MAPPING.keys())}."
            )
        config = CONFIG_MAPPING[model_args.model_type]()
    if model_args.config_overrides:
        logger.info("Overriding config: %s", model_args.config_overrides)
        try:
            config.update_from_string(model_args.config_overrides)
        except ValueError as error:
            raise ValueError(f"--config_overrides {model_args.config_overrides!r}: {error}") from error
    return config


def _has_tokenizer_files(path: str | None) -> bool:
    names = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
    return bool(path) and os.path.isdir(path) and any(os.path.isfile(os.path.join(path, n)) for n in names)


def load_tokenizer(model_args: ModelArguments, raw: DatasetDict, column: str):
    """The tokenizer named, the model's, the config directory's, or one trained here on the training text."""
    source = model_args.tokenizer_name or model_args.model_name_or_path
    if source is None and _has_tokenizer_files(model_args.config_name):
        source = model_args.config_name
    if source is not None:
        return AutoTokenizer.from_pretrained(
            source,
            cache_dir=model_args.cache_dir,
            revision=model_args.model_revision,
            token=model_args.token,
            trust_remote_code=model_args.trust_remote_code,
        )
    if not model_args.tokenizer_vocab_size:
        raise ValueError(
            "No tokenizer: pass --tokenizer_name (a directory or Hub id), a --config_name directory that holds one, "
            "or --tokenizer_vocab_size N to train a WordPiece tokenizer on the training text."
        )
    logger.info("Training a WordPiece tokenizer (vocabulary %d) on the training text", model_args.tokenizer_vocab_size)
    return train_wordpiece_tokenizer(
        (t for t in raw["train"][column] if t), vocab_size=model_args.tokenizer_vocab_size
    )


def mlm_collator(tokenizer, mlm_probability: float = 0.15, pad_to_multiple_of: int | None = None):
    """BERT's masking: of the chosen tokens 80% become [MASK], 10% a random token, 10% stay; labels elsewhere -100.

    SSE runs after this, inside the model, on the ids the collator produced: it skips [MASK] and the special
    tokens and leaves `labels` alone.
    """
    return DataCollatorForLanguageModeling(
        tokenizer,
        mlm=True,
        mlm_probability=mlm_probability,
        mask_replace_prob=0.8,
        random_replace_prob=0.1,
        pad_to_multiple_of=pad_to_multiple_of,
    )


def perplexity(loss: float) -> float:
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the recipe with command-line arguments `argv` (default: sys.argv[1:]); return what all_results.json holds."""
    started = time.perf_counter()
    (model_args, data_args, sse_args, _, training_args), last_checkpoint = run_setup.start_run(
        (ModelArguments, DataTrainingArguments, SSEArguments, run_setup.OutputArguments, TrainingArguments), argv
    )

    raw = load_corpus(data_args, model_args.cache_dir, training_args.seed)
    if training_args.do_train and "train" not in raw:
        raise ValueError("--do_train needs training text: pass --train_file or --dataset_name.")
    column = text_column(raw, data_args.text_column_name)
    config = load_config(model_args)
    tokenizer = load_tokenizer(model_args, raw, column)
    if tokenizer.mask_token is None:
        raise ValueError(
            f"The tokenizer ({type(tokenizer).__name__}) has no mask token, so it cannot be used for masked-LM training."
        )

    if model_args.model_name_or_path:
        model = AutoModelForMaskedLM.from_pretrained(
            model_args.model_name_or_path,
            config=config,
            cache_dir=model_args.cache_dir,
            revision=model_args.model_revision,
            token=model_args.token,
            trust_remote_code=model_args.trust_remote_code,
        )
    else:
        if config.vocab_size != len(tokenizer):
            logger.info("Setting vocab_size to the tokenizer's %d (config said %d)", len(tokenizer), config.vocab_size)
            config.vocab_size = len(tokenizer)
        config.pad_token_id = tokenizer.pad_token_id
        model = AutoModelForMaskedLM.from_config(config, trust_remote_code=model_args.trust_remote_code)
        logger.info(
            "Training a new %s from scratch: %.1fM parameters", type(model).__name__, model.num_parameters() / 1e6
        )
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))

    longest = min(tokenizer.model_max_length, getattr(config, "max_position_embeddings", None) or 10**9)
    max_seq_length = min(data_args.max_seq_length or 512, longest)
    if data_args.max_seq_length and data_args.max_seq_length > longest:
        logger.warning(
            "--max_seq_length %d is longer than the model allows; using %d", data_args.max_seq_length, longest
        )
    if data_args.line_by_line:  # each line is cut to max_seq_length with its special tokens; blocks have none added
        run_setup.require_room_for_text(tokenizer, max_seq_length)
    limits = {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples}
    with training_args.main_process_first(desc="dataset map pre-processing"):
        if data_args.line_by_line:
            padding = "max_length" if data_args.pad_to_max_length else False

            def tokenize(batch):
                lines = [line for line in batch[column] if line and not line.isspace()]
                return tokenizer(
                    lines, padding=padding, truncation=True, max_length=max_seq_length, return_special_tokens_mask=True
                )
        else:

            def tokenize(batch):
                return tokenizer([t or "" for t in batch[column]], return_special_tokens_mask=True)

        tokenized = raw.map(
            tokenize,
            batched=True,
            num_proc=data_args.preprocessing_num_workers,
            remove_columns=next(iter(raw.values())).column_names,
            load_from_cache_file=not data_args.overwrite_cache,
            desc="Tokenizing the corpus",
        )
        if not data_args.line_by_line:

            def group_texts(examples):
                """Concatenate the tokenized texts and cut them into blocks of max_seq_length (dropping the rest)."""
                joined = {k: list(chain(*examples[k])) for k in examples}
                total = (len(joined["input_ids"]) // max_seq_length) * max_seq_length
                return {
                    k: [v[i : i + max_seq_length] for i in range(0, total, max_seq_length)] for k, v in joined.items()
                }

            tokenized = tokenized.map(
                group_texts,
                batched=True,
                num_proc=data_args.preprocessing_num_workers,
                load_from_cache_file=not data_args.overwrite_cache,
                desc=f"Grouping texts in blocks of {max_seq_length}",
            )
        for split, limit in limits.items():
            if split in tokenized and limit is not None:
                tokenized[split] = tokenized[split].select(range(min(limit, len(tokenized[split]))))
    for split in ("train", "validation"):
        wanted = training_args.do_train if split == "train" else training_args.do_eval
        if wanted and (split not in tokenized or len(tokenized[split]) == 0):
            raise ValueError(
                f"The {split} text yields no example of {max_seq_length} tokens. Give more text, a smaller "
                "--max_seq_length, or --line_by_line."
            )

    collator = mlm_collator(
        tokenizer,
        data_args.mlm_probability,
        pad_to_multiple_of=8 if (training_args.fp16 or training_args.bf16) and data_args.line_by_line else None,
    )
    # ----- SSE: one SSEConfig from the --sse_* options; its callback goes to Trainer (none for the baseline) ----
    sse_config = sse_args.to_config()
    sse_callback = SSECallback(sse_config, tokenizer=tokenizer) if sse_args.is_active() else None
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=tokenized["train"] if training_args.do_train else None,
        eval_dataset=tokenized["validation"] if training_args.do_eval else None,
        processing_class=tokenizer,
        data_collator=collator,
        callbacks=[sse_callback] if sse_callback is not None else [],
    )

    run = {
        "task": "mlm",
        "model_name_or_path": model_args.model_name_or_path or model_args.config_name or model_args.model_type,
        "primary_metric": "perplexity",
        "greater_is_better": False,
        "seed": training_args.seed,
        "max_seq_length": max_seq_length,
    }
    results: dict[str, Any] = {}
    # ----- train: the SSE hooks are on from the start of training and off at its end, even if it fails ---------
    if training_args.do_train:
        checkpoint = training_args.resume_from_checkpoint or last_checkpoint
        with sse_callback if sse_callback is not None else contextlib.nullcontext():
            train_result = trainer.train(resume_from_checkpoint=checkpoint)
        metrics = run_report.save_train_results(trainer, train_result, len(tokenized["train"]), sse_args, sse_callback)
        results.update(metrics)

    if training_args.do_eval:
        set_seed(training_args.seed)  # the same random masks of the held-out text for every run and arm
        metrics = trainer.evaluate()
        metrics["eval_samples"] = len(tokenized["validation"])
        metrics["perplexity"] = perplexity(metrics["eval_loss"])
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        results.update(metrics)

    return {**run, **results, **run_report.save_run_record(trainer, run, started)}


if __name__ == "__main__":
    cli.run(main)
    run_setup.shutdown_distributed()
