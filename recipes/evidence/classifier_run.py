"""One fine-tune of the tuned-baseline study: a sequence classifier trained with `Trainer` (and `SSECallback`,
NEFTune or label smoothing), its carved-split and dev probabilities taken at the end of every epoch.

The integration is the one a user writes: `Trainer(..., callbacks=[SSECallback(config, tokenizer=tok)])`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from recipes.evidence.calibration import softmax
from sse_hf import SSECallback, SSEConfig


def encode(tokenizer, texts: list[tuple[str, ...]], labels: list[int], max_length: int) -> list[dict[str, Any]]:
    """Tokenised examples (no padding: the collator pads each batch to its longest row)."""
    columns = list(zip(*texts))
    encoded = tokenizer(*columns, truncation=True, max_length=max_length)
    return [
        {**{key: values[i] for key, values in encoded.items()}, "labels": int(labels[i])} for i in range(len(labels))
    ]


@torch.no_grad()
def predict_logits(model, examples: list[dict[str, Any]], collator, batch_size: int = 128) -> np.ndarray:
    """Logits of `examples` in eval mode (SSE, NEFTune and dropout off), the model's mode restored after; the
    examples are batched by length (less padding), the logits returned in the examples' order."""
    was_training = model.training
    model.eval()
    order = np.argsort([len(ex["input_ids"]) for ex in examples], kind="stable")  # batches of like lengths
    chunks = []
    for start in range(0, len(examples), batch_size):
        rows = [{k: v for k, v in examples[i].items() if k != "labels"} for i in order[start : start + batch_size]]
        batch = {k: v.to(model.device) for k, v in collator(rows).items()}
        chunks.append(model(**batch).logits.float().cpu().numpy())
    model.train(was_training)
    logits = np.empty((len(examples), chunks[0].shape[1]), dtype=np.float32)
    logits[order] = np.concatenate(chunks)
    return logits


class EpochLogits(TrainerCallback):
    """Keeps the logits of each evaluation split at the end of every epoch: the study picks the epoch on the
    carved split and reports dev at that epoch, without checkpoints.

    With `keep` (the epochs' logits so far -> the index of the epoch to keep), it also keeps a copy of the
    weights of the epoch `keep` picks, so that splits scored only at the kept epoch (`kept_logits`) need no
    evaluation at every epoch."""

    def __init__(self, splits: dict[str, list[dict[str, Any]]], collator, keep=None):
        self.splits = splits
        self.collator = collator
        self.keep = keep
        self.logits: list[dict[str, np.ndarray]] = []
        self.kept_weights: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        self.logits.append({name: predict_logits(model, rows, self.collator) for name, rows in self.splits.items()})
        if self.keep is not None and self.keep(self.logits) == len(self.logits) - 1:
            self.kept_weights = {name: value.detach().clone() for name, value in model.state_dict().items()}

    def kept_logits(self, model, splits: dict[str, list[dict[str, Any]]]) -> dict[str, np.ndarray]:
        """Logits of `splits` under the kept epoch's weights (the model's own weights are restored after)."""
        current = {name: value.detach().clone() for name, value in model.state_dict().items()}
        model.load_state_dict(self.kept_weights)
        logits = {name: predict_logits(model, rows, self.collator) for name, rows in splits.items()}
        model.load_state_dict(current)
        return logits


def finetune(
    model_dir: str,
    train: tuple[list[tuple[str, ...]], list[int]],
    splits: dict[str, tuple[list[tuple[str, ...]], list[int]]],
    *,
    num_labels: int,
    max_length: int,
    seed: int,
    learning_rate: float,
    epochs: int,
    batch_size: int,
    warmup_ratio: float,
    weight_decay: float,
    output_dir: str,
    sse_p: float = 0.0,
    sse_graph: str | None = None,
    neftune_noise_alpha: float | None = None,
    label_smoothing_factor: float = 0.0,
    config_overrides: dict[str, Any] | None = None,
    training_overrides: dict[str, Any] | None = None,
    kept_splits: dict[str, tuple[list[tuple[str, ...]], list[int]]] | None = None,
    keep=None,
) -> dict[str, Any]:
    """Train one arm; return per-epoch probabilities of every split, the training-loss log and the SSE counts.

    `config_overrides` set model config fields (dropout, say); `training_overrides` set TrainingArguments fields.
    `kept_splits` are scored once, at the epoch `keep` picks from the per-epoch logits of `splits`."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    collator = DataCollatorWithPadding(tokenizer)
    train_rows = encode(tokenizer, *train, max_length)
    eval_rows = {name: encode(tokenizer, *split, max_length) for name, split in splits.items()}
    torch.manual_seed(seed)  # the fresh classification head
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=num_labels, **(config_overrides or {})
    )
    epoch_logits = EpochLogits(eval_rows, collator, keep if kept_splits else None)
    callbacks: list[TrainerCallback] = [epoch_logits]
    sse_callback = None
    if sse_p > 0:
        sse_callback = SSECallback(SSEConfig(p=sse_p, graph=sse_graph), tokenizer=tokenizer)
        callbacks.append(sse_callback)
    settings = dict(
        output_dir=output_dir,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        num_train_epochs=epochs,
        lr_scheduler_type="linear",
        train_sampling_strategy="group_by_length",  # batches of like lengths: about half the padded tokens on these tasks
        warmup_steps=warmup_ratio,
        weight_decay=weight_decay,
        neftune_noise_alpha=neftune_noise_alpha,
        label_smoothing_factor=label_smoothing_factor,
        eval_strategy="no",
        save_strategy="no",
        logging_steps=10,
        report_to="none",
        seed=seed,
        data_seed=seed,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
    )
    settings.update(training_overrides or {})
    args = TrainingArguments(**settings)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_rows,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    if sse_callback is not None:
        with sse_callback:
            result = trainer.train()
        stats = sse_callback.stats()
    else:
        result = trainer.train()
        stats = {}
    losses = [(log["step"], log["loss"]) for log in trainer.state.log_history if "loss" in log]
    probabilities = [
        {name: softmax(logits).tolist() for name, logits in epoch.items()} for epoch in epoch_logits.logits
    ]
    logits = [{name: logits.tolist() for name, logits in epoch.items()} for epoch in epoch_logits.logits]
    kept = {}
    if kept_splits:
        kept_rows = {name: encode(tokenizer, *split, max_length) for name, split in kept_splits.items()}
        kept = {name: values.tolist() for name, values in epoch_logits.kept_logits(model, kept_rows).items()}
    return {
        "train_runtime": result.metrics.get("train_runtime"),
        "train_loss": result.metrics.get("train_loss"),
        "steps": trainer.state.global_step,
        "loss_log": losses,
        "sse_stats": stats,
        "epoch_logits": logits,
        "epoch_probabilities": probabilities,
        "kept_logits": kept,
        "finite": all(math.isfinite(loss) for _, loss in losses),
    }
