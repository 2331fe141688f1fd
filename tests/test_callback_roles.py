"""SSECallback's logs per role on an encoder-decoder: sse/p and sse/swap_rate are the encoder inputs' own,
sse/decoder/p and sse/decoder/swap_rate the decoder inputs', in the step logs and the end-of-training summary."""

from datasets import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments

from sse_hf import SSECallback, SSEConfig
from tiny_models import build, word_ids


class CountRecorder(TrainerCallback):
    """The handle's per-role counts at every log (SSECallback runs first, so these are the counts it logged from)."""

    def __init__(self, sse: SSECallback):
        self.sse, self.counts = sse, []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.sse.handle is not None and "loss" in logs:
            stats = self.sse.handle.stats()
            self.counts.append({role: (s["tokens_eligible"], s["tokens_swapped"]) for role, s in stats.items()})


def _rates(counts: list[dict], role: str) -> list[float]:
    """Each interval's rate of one role, from the cumulative counts at each log."""
    rates, last = [], (0, 0)
    for entry in counts:
        (eligible, swapped), (last_eligible, last_swapped) = entry[role], last
        rates.append((swapped - last_swapped) / (eligible - last_eligible))
        last = entry[role]
    return rates


def test_t5_logs_the_encoder_and_decoder_rates_apart(tmp_path, tokenizer):
    ids = word_ids(rows=32, seed=1)
    train = Dataset.from_dict(
        {
            "input_ids": ids.tolist(),
            "attention_mask": (ids != 0).long().tolist(),
            "labels": word_ids(rows=32, seed=2).tolist(),
        }
    )
    sse = SSECallback(SSEConfig(p=0.1, decoder_p=0.5, seed=0), tokenizer=tokenizer)
    recorder = CountRecorder(sse)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=6,
        per_device_train_batch_size=8,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        seed=3,
        disable_tqdm=True,
        save_strategy="no",
    )
    trainer = Trainer(model=build("t5"), args=args, train_dataset=train, callbacks=[sse, recorder])
    trainer.train()
    steps = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(steps) == len(recorder.counts) == 6 and set(recorder.counts[0]) == {"encoder", "decoder"}
    assert all(entry["sse/p"] == 0.1 and entry["sse/decoder/p"] == 0.5 for entry in steps)
    assert [entry["sse/swap_rate"] for entry in steps] == _rates(recorder.counts, "encoder")
    assert [entry["sse/decoder/swap_rate"] for entry in steps] == _rates(recorder.counts, "decoder")
    stats = sse.stats()
    summary = trainer.state.log_history[-1]
    assert "train_loss" in summary
    assert summary["sse/swap_rate"] == stats["encoder"]["swap_rate"] and summary["sse/p"] == 0.1
    assert summary["sse/decoder/swap_rate"] == stats["decoder"]["swap_rate"] and summary["sse/decoder/p"] == 0.5
    assert stats["encoder"]["swap_rate"] < 0.2 < 0.35 < stats["decoder"]["swap_rate"]  # each near its own p
