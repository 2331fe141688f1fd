#!/usr/bin/env python
"""A fine-tuning script shaped like transformers' run_glue.py, with SSE's `--sse_*` options added.

    python docs/examples/own_script.py --model_name_or_path DIR --train_file train.csv --output_dir out --sse_p 0.1

The README's "In your own script" shows the lines that add SSE; tests/test_examples.py runs this file.
"""

from dataclasses import dataclass, field

from datasets import load_dataset
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    HfArgumentParser,
    Trainer,
    TrainingArguments,
)

from sse_hf import SSEArguments


@dataclass
class ModelArguments:
    model_name_or_path: str = field(metadata={"help": "A model directory or Hub id."})


@dataclass
class DataTrainingArguments:
    train_file: str = field(metadata={"help": "A csv file with 'sentence' and 'label' columns."})
    max_seq_length: int = field(default=128, metadata={"help": "Longest tokenized input."})


def main(argv=None):
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, TrainingArguments, SSEArguments))
    model_args, data_args, training_args, sse_args = parser.parse_args_into_dataclasses(args=argv)

    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    model = AutoModelForSequenceClassification.from_pretrained(model_args.model_name_or_path, num_labels=2)
    train = load_dataset("csv", data_files={"train": data_args.train_file})["train"]
    train = train.map(
        lambda batch: tokenizer(batch["sentence"], truncation=True, max_length=data_args.max_seq_length),
        batched=True,
        remove_columns=["sentence"],
    )

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        callbacks=sse_args.callbacks(tokenizer),
    )
    trainer.train()
    return trainer


if __name__ == "__main__":
    main()
