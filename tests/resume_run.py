"""One tiny SSE training run for the resume tests: in-process, or as a subprocess that SIGKILLs itself mid-run.

Run as `python resume_run.py OUTPUT_DIR SEED KILL_AT` (SEED "none" for no private seed).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (str(HERE.parent), str(HERE)):  # this tree's sse_hf and the tests' tiny models
    if path not in sys.path:
        sys.path.insert(0, path)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import Trainer, TrainerCallback, TrainingArguments  # noqa: E402

from sse_hf import SSECallback, SSEConfig  # noqa: E402
from tiny_models import tiny_bert, tiny_tokenizer, word_ids  # noqa: E402

MAX_STEPS, SAVE_STEPS, KILL_AT = 24, 8, 13


class KillAt(TrainerCallback):
    """SIGKILL this process at the end of optimizer step `step`: no clean shutdown, no save."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def train(output_dir: str, seed: int | None, kill_at: int = 0, resume: bool = False):
    """Train a tiny BERT with SSE (p schedule, label SSE, optional seed); returns (model, callback, trainer)."""
    torch.manual_seed(0)
    tokenizer_dir = Path(output_dir) / "tokenizer"
    tokenizer_dir.mkdir(parents=True, exist_ok=True)
    ids = word_ids(rows=32, seed=1)
    data = Dataset.from_dict(
        {"input_ids": ids.tolist(), "attention_mask": (ids != 0).long().tolist(), "labels": (ids[:, 1] % 2).tolist()}
    )
    callback = SSECallback(
        SSEConfig(p=0.3, p_schedule="linear_decay", label_p=0.2, seed=seed), tokenizer=tiny_tokenizer(tokenizer_dir)
    )
    args = TrainingArguments(
        output_dir=output_dir,
        max_steps=MAX_STEPS,
        save_steps=SAVE_STEPS,
        per_device_train_batch_size=4,
        logging_steps=1,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
        report_to=[],
        use_cpu=True,
        seed=7,
        disable_tqdm=True,
        save_only_model=False,
    )
    model = tiny_bert()
    callbacks = [callback] + ([KillAt(kill_at)] if kill_at else [])
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=callbacks)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same float summation order in this process and in the killed subprocess
    try:
        trainer.train(resume_from_checkpoint=True if resume else None)
    finally:
        torch.set_num_threads(threads)
    return model, callback, trainer


if __name__ == "__main__":
    out, seed, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    train(out, None if seed == "none" else int(seed), kill_at=kill_at)
