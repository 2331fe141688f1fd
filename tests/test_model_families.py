"""Every model family: the swap really reaches the token lookup in training, never in eval."""

import pytest
import torch
from torch import nn

from sse_hf import patch_model, unpatch_model
from sse_hf.discovery import find_token_embeddings, unwrap_model
from tiny_models import ENCODER_DECODER, FAMILIES, PROTECTED_IDS, build, record_lookups, tiny_bert, word_ids

PROTECTED = torch.tensor(sorted(PROTECTED_IDS))


def _forward(model, family, ids):
    if family in ENCODER_DECODER:
        labels = word_ids(rows=ids.shape[0], cols=6, seed=1)
        return model(input_ids=ids, labels=labels)
    return model(input_ids=ids)


def _assert_swapped(recorded, original, p):
    changed = recorded != original
    eligible = ~torch.isin(original, PROTECTED)
    assert not changed[~eligible].any(), "a protected id was swapped"
    rate = changed[eligible].float().mean().item()
    assert abs(rate - p) < 0.12, f"realised rate {rate} far from p={p}"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_swaps_in_training_and_never_in_eval(family, tokenizer):
    model = build(family)
    handle = patch_model(model, p=0.5, tokenizer=tokenizer)
    role = "encoder" if family in ENCODER_DECODER else "input"
    lookup = find_token_embeddings(model)[role]
    records, _ = record_lookups(lookup)
    ids = word_ids(rows=32)

    def first_lookup_of_a_forward():  # the encoder's call, where a module serves encoder and decoder
        start = len(records)
        _forward(model, family, ids)
        return records[start]

    model.train()
    _assert_swapped(first_lookup_of_a_forward(), ids, 0.5)
    assert handle.stats()[role]["tokens_swapped"] > 0
    model.eval()
    with torch.no_grad():
        assert torch.equal(first_lookup_of_a_forward(), ids)
    unpatch_model(model)
    model.train()
    assert torch.equal(first_lookup_of_a_forward(), ids)


@pytest.mark.parametrize("family", sorted(ENCODER_DECODER))
def test_encoder_decoder_decoder_inputs_only_when_asked(family, tokenizer):
    model = build(family).train()
    embeddings = find_token_embeddings(model, decoder=True)
    decoder_records, _ = record_lookups(embeddings["decoder"])
    ids = word_ids(rows=32)
    labels = word_ids(rows=32, cols=10, seed=1)
    labels[:, -2:] = -100

    with patch_model(model, p=0.5, tokenizer=tokenizer):
        model(input_ids=ids, labels=labels)
    untouched = decoder_records[-1]
    with patch_model(model, p=0.5, decoder_p=1.0, tokenizer=tokenizer) as handle:
        labels_before = labels.clone()
        out = model(input_ids=ids, labels=labels)
    swapped = decoder_records[-1]
    assert torch.equal(labels, labels_before)
    eligible = ~torch.isin(untouched, PROTECTED)
    assert torch.all(swapped[eligible] != untouched[eligible]) and torch.equal(
        swapped[~eligible], untouched[~eligible]
    )
    assert set(handle.stats()) == {"encoder", "decoder"} and handle.stats()["decoder"]["swap_rate"] == 1.0
    # the loss is computed against the original labels, not the swapped decoder inputs
    manual = nn.functional.cross_entropy(out.logits.reshape(-1, out.logits.shape[-1]), labels.reshape(-1))
    assert torch.allclose(out.loss, manual)


def test_generate_sees_original_ids_even_in_train_mode(tokenizer):
    model = build("gpt2").train()
    patch_model(model, p=1.0, tokenizer=tokenizer)
    records, _ = record_lookups(model.get_input_embeddings())
    ids = word_ids(rows=2, cols=5)[:, :4]
    model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, do_sample=False)
    assert torch.equal(records[0], ids)


@pytest.mark.parametrize("target", ["attention", "embedding"])
def test_peft_lora_model_is_unwrapped_and_swapped(target, tokenizer):
    peft = pytest.importorskip("peft")
    target_modules = ["query", "value"] if target == "attention" else ["word_embeddings"]
    model = peft.get_peft_model(tiny_bert(), peft.LoraConfig(r=2, target_modules=target_modules, task_type="SEQ_CLS"))
    handle = patch_model(model, p=0.5, tokenizer=tokenizer)
    assert unwrap_model(model) is model.get_base_model()
    lookup = find_token_embeddings(model.get_base_model())["input"]
    records, _ = record_lookups(lookup)
    ids = word_ids(rows=32)
    model.train()
    model(input_ids=ids, labels=torch.zeros(32, dtype=torch.long)).loss.backward()
    _assert_swapped(records[-1], ids, 0.5)
    model.eval()
    model(input_ids=ids)
    assert torch.equal(records[-1], ids)
    handle.remove()


def test_ddp_wrapped_model_is_unwrapped(tokenizer, tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    try:
        model = tiny_bert()
        ddp = nn.parallel.DistributedDataParallel(model)
        handle = patch_model(ddp, p=0.5, tokenizer=tokenizer, seed=0)
        assert handle.model is model
        records, _ = record_lookups(model.get_input_embeddings())
        ids = word_ids(rows=32)
        ddp.train()
        ddp(input_ids=ids, labels=torch.zeros(32, dtype=torch.long)).loss.backward()
        _assert_swapped(records[-1], ids, 0.5)
        assert unpatch_model(ddp) is True
    finally:
        dist.destroy_process_group()


def test_accelerate_prepared_model(tokenizer):
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    model = accelerator.prepare(tiny_bert())
    handle = patch_model(model, p=0.5, tokenizer=tokenizer)
    records, _ = record_lookups(accelerator.unwrap_model(model).get_input_embeddings())
    ids = word_ids(rows=32)
    model.train()
    model(input_ids=ids)
    _assert_swapped(records[-1], ids, 0.5)
    handle.remove()


def test_vocabulary_size_comes_from_config_not_weight_shape(tokenizer):
    """Under ZeRO-3 the weight is partitioned and reads 0 rows; the config and tokenizer still tell the size."""
    model = tiny_bert()
    embedding = model.get_input_embeddings()
    embedding.weight = nn.Parameter(torch.empty(0))  # what a ZeRO-3 partitioned weight looks like locally
    handle = patch_model(model, p=1.0, tokenizer=tokenizer)
    assert handle.vocabulary.size == len(tokenizer)
    handle.remove()
    with pytest.warns(UserWarning, match="config.vocab_size"):
        handle = patch_model(model, p=1.0)
    assert handle.vocabulary.size == model.config.vocab_size
    ids = word_ids()
    swap_args = []
    embedding.register_forward_pre_hook(lambda mod, args: swap_args.append(args[0]))
    model.train()
    with pytest.raises(RuntimeError):  # the partitioned weight itself cannot be looked up here
        model(input_ids=ids)
    assert not torch.equal(swap_args[-1], ids)


def _t5_with_one_embedding_module():
    """T5 as older transformers build it: encoder and decoder call the very same `shared` module."""
    model = build("t5")
    model.encoder.embed_tokens = model.shared
    model.decoder.embed_tokens = model.shared
    return model


def test_shared_embedding_module_swaps_encoder_inputs_only_by_default(tokenizer):
    model = _t5_with_one_embedding_module().train()
    patch_model(model, p=1.0, tokenizer=tokenizer)
    records, _ = record_lookups(model.shared)
    ids = word_ids(rows=4)
    labels = word_ids(rows=4, cols=6, seed=1)
    model(input_ids=ids, labels=labels)
    encoder_call, decoder_call = records[-2], records[-1]
    eligible = ~torch.isin(ids, PROTECTED)
    assert torch.all(encoder_call[eligible] != ids[eligible])
    expected_decoder_inputs = model._shift_right(labels)
    assert torch.equal(decoder_call, expected_decoder_inputs)


def test_shared_embedding_module_takes_separate_encoder_and_decoder_p(tokenizer):
    model = _t5_with_one_embedding_module().train()
    handle = patch_model(model, p=0.0, decoder_p=1.0, tokenizer=tokenizer)
    records, _ = record_lookups(model.shared)
    ids = word_ids(rows=4)
    labels = word_ids(rows=4, cols=6, seed=1)
    model(input_ids=ids, labels=labels)
    assert torch.equal(records[-2], ids)
    decoder_inputs = model._shift_right(labels)
    eligible = ~torch.isin(decoder_inputs, PROTECTED)
    assert torch.all(records[-1][eligible] != decoder_inputs[eligible])
    assert handle.stats()["decoder"]["swap_rate"] == 1.0 and handle.stats()["encoder"]["tokens_swapped"] == 0
    handle.remove()
    assert all(
        len(m._forward_pre_hooks) + len(m._forward_hooks) == 0 for m in model.modules() if m is not model.shared
    )


@pytest.mark.parametrize("method", ["ia3", "prompt_tuning", "p_tuning"])
def test_peft_methods_beyond_lora_swap_and_say_nothing_false(method, tokenizer):
    """Prompt tuning looks the ids up itself and calls the model with inputs_embeds: swapped already, so no warning
    that SSE could not swap; IA3 wraps layers like LoRA. Label SSE reaches the labels under each."""
    import warnings

    peft = pytest.importorskip("peft")
    config = {
        "ia3": lambda: peft.IA3Config(task_type="SEQ_CLS", target_modules=["query", "value"], feedforward_modules=[]),
        "prompt_tuning": lambda: peft.PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=4),
        "p_tuning": lambda: peft.PromptEncoderConfig(task_type="SEQ_CLS", num_virtual_tokens=4, encoder_hidden_size=8),
    }[method]()
    model = peft.get_peft_model(tiny_bert(), config)
    handle = patch_model(model, p=0.5, label_p=0.5, tokenizer=tokenizer)
    records, _ = record_lookups(find_token_embeddings(model.get_base_model())["input"])
    ids = word_ids(rows=32)
    model.train()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        labels = torch.zeros(32, dtype=torch.long)
        model(input_ids=ids, attention_mask=(ids != 0).long(), labels=labels).loss.backward()
    _assert_swapped(records[-1], ids, 0.5)
    assert handle.stats()["labels"]["tokens_seen"] == 32 and handle.stats()["labels"]["tokens_swapped"] > 0
    with pytest.warns(UserWarning, match="inputs_embeds instead of input_ids"):  # a real inputs_embeds call warns
        model.get_base_model()(inputs_embeds=torch.randn(2, 5, 16), labels=torch.zeros(2, dtype=torch.long))
    handle.remove()


def test_peft_merge_and_unload_while_patched_is_an_error_that_names_it(tokenizer):
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(r=2, target_modules=["word_embeddings"], task_type="SEQ_CLS")
    model = peft.get_peft_model(tiny_bert(), config)
    patch_model(model, p=0.5, tokenizer=tokenizer)
    merged = model.merge_and_unload().train()
    with pytest.raises(RuntimeError, match=r"replaced after patch_model \(by .*PEFT's merge_and_unload\)"):
        merged(input_ids=word_ids(rows=2), labels=torch.zeros(2, dtype=torch.long))
