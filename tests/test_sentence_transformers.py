"""SSE on sentence-transformers models, unchanged: `patch_model`, `SSECallback` in SentenceTransformerTrainer, setfit."""

from __future__ import annotations

import pytest
import torch

from sse_hf import SSECallback, get_handle, patch_model, unpatch_model
from tiny_models import WORDS, record_lookups, tiny_sentence_transformer

pytest.importorskip("sentence_transformers")

SENTENCES = [" ".join(WORDS[i : i + 6]) for i in range(0, 32)]


@pytest.fixture
def st_model(tmp_path):
    return tiny_sentence_transformer(tmp_path / "st")


def test_patch_model_on_a_sentence_transformer_swaps_in_training_only(st_model):
    embedding = st_model[0].auto_model.get_input_embeddings()
    features = st_model.tokenize(SENTENCES[:8])
    records, hook = record_lookups(embedding)
    with patch_model(st_model, p=0.5, tokenizer=st_model.tokenizer) as handle:
        assert get_handle(st_model) is handle and handle.model is st_model[0].auto_model
        st_model.train()
        st_model(dict(features))["sentence_embedding"].sum().backward()
        assert not torch.equal(records[-1], features["input_ids"]) and handle.tokens_swapped > 0
        st_model.eval()
        with torch.no_grad():
            st_model(dict(features))
        assert torch.equal(records[-1], features["input_ids"])
    hook.remove()
    assert get_handle(st_model) is None and not unpatch_model(st_model)


def test_callback_swaps_and_logs_inside_sentence_transformer_trainer(st_model, tmp_path):
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer import losses

    train = Dataset.from_dict({"anchor": SENTENCES[:16], "positive": SENTENCES[1:17]})
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=3,
        per_device_train_batch_size=4,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    callback = SSECallback(p=0.3)
    trainer = SentenceTransformerTrainer(
        model=st_model,
        args=args,
        train_dataset=train,
        loss=losses.MultipleNegativesRankingLoss(st_model),
        callbacks=[callback],
    )
    with callback:
        trainer.train()
    assert get_handle(st_model) is None  # removed when training ended
    seen, eligible, swapped = callback.totals
    assert seen > 0 and eligible > 0 and swapped > 0
    rates = [entry["sse/swap_rate"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(rates) == 3 and all(0 <= rate <= 1 for rate in rates)
    assert (tmp_path / "out" / "sse_config.json").is_file()


def test_callback_swaps_inside_setfit(st_model, tmp_path):
    setfit = pytest.importorskip("setfit")
    from datasets import Dataset
    from sklearn.linear_model import LogisticRegression

    model = setfit.SetFitModel(model_body=st_model, model_head=LogisticRegression())
    train = Dataset.from_dict({"text": SENTENCES[:16], "label": [i % 2 for i in range(16)]})
    args = setfit.TrainingArguments(output_dir=str(tmp_path / "setfit"), batch_size=4, max_steps=3, report_to="none")
    callback = SSECallback(p=0.3)
    trainer = setfit.Trainer(model=model, args=args, train_dataset=train, callbacks=[callback])
    with callback:
        trainer.train()
    assert get_handle(st_model) is None
    assert callback.totals[2] > 0 and 0 < callback.swap_rate < 1
    assert model.predict(SENTENCES[:2]).shape == (2,)


def test_checks_run_however_the_model_is_called(st_model):
    """sentence-transformers calls auto_model.forward() directly, past the model-level hook: the checks still run."""
    import warnings

    import torch

    features = dict(st_model.tokenize(SENTENCES[:4]))
    auto_model = st_model[0].auto_model
    with patch_model(st_model, p=0.5, tokenizer=st_model.tokenizer):
        st_model.train()
        # embeddings made outside the hooked lookup (a lookup through it would be swapped already, as prompt tuning's)
        embeddings = torch.nn.functional.embedding(features["input_ids"], auto_model.get_input_embeddings().weight)
        with pytest.warns(UserWarning, match="called with inputs_embeds instead of input_ids"):
            auto_model.forward(inputs_embeds=embeddings, attention_mask=features["attention_mask"])
        replacement = torch.nn.Embedding(*auto_model.get_input_embeddings().weight.shape)
        auto_model.set_input_embeddings(replacement)
        with pytest.raises(RuntimeError, match="token embedding of BertModel was replaced"):
            st_model(features)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            st_model.eval()
            st_model(features)  # evaluation never checks (nor swaps)
