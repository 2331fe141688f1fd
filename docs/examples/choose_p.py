#!/usr/bin/env python
"""Choose p on a split of your own data with `Trainer.hyperparameter_search` (optuna), offline on a tiny model.

    python docs/examples/choose_p.py

The README's "Choosing p" shows the search itself; tests/test_examples.py runs this file.
"""

import optuna
import torch
import transformers
from datasets import Dataset
from transformers import Trainer, TrainingArguments

from sse_hf import SSECallback, SSEConfig, best_sse_config, sse_hp_space


def tiny_tokenizer() -> transformers.BertTokenizer:
    """A WordPiece tokenizer over the tiny model's 100 ids (5 special tokens, 95 words), built in place so that the
    example needs no download: pass yours (SSE then draws only the tokenizer's real words)."""
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"word{i}" for i in range(95)]
    return transformers.BertTokenizer(vocab={word: i for i, word in enumerate(words)})


def tiny_data(rows: int, seed: int) -> Dataset:
    """Made-up token ids and labels: stand-ins for a tokenized training file and a split carved from it."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 100, (rows, 16), generator=generator)
    return Dataset.from_dict({"input_ids": ids.tolist(), "labels": (ids[:, 1] % 2).tolist()})


def model_init():
    config = transformers.BertConfig(
        vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    return transformers.BertForSequenceClassification(config)


def main(output_dir: str = "choose_p_out"):
    tok = tiny_tokenizer()
    train_split, held_out = tiny_data(32, seed=0), tiny_data(16, seed=1)
    args = TrainingArguments(
        output_dir=output_dir,
        max_steps=4,
        per_device_train_batch_size=8,
        save_steps=4,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
    )
    transformers.set_seed(0)

    callback = SSECallback(SSEConfig(seed=0), tokenizer=tok)
    trainer = Trainer(
        model_init=model_init, args=args, train_dataset=train_split, eval_dataset=held_out, callbacks=[callback]
    )
    best = trainer.hyperparameter_search(
        hp_space=sse_hp_space(p=[0.0, 0.05, 0.1, 0.2]),
        backend="optuna",
        n_trials=4,
        direction="minimize",  # the held-out eval_loss; pass compute_objective to maximise a metric instead
        sampler=optuna.samplers.GridSampler({"sse_p": [0.0, 0.05, 0.1, 0.2]}, seed=0),
    )
    chosen = best_sse_config(best, callback.config)
    print(f"best trial run-{best.run_id}: p={chosen.p}, eval_loss={best.objective:.4f}")
    chosen.save_pretrained(output_dir)  # train the final model with SSECallback(SSEConfig.from_pretrained(...))
    return best, chosen


if __name__ == "__main__":
    main()
