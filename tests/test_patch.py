"""patch_model / SSEHandle / unpatch_model on a tiny BERT: what changes, what never does."""

import warnings

import pytest
import torch
import transformers
from torch import nn

from sse_hf import AlreadyPatchedError, SSEConfig, get_handle, patch_model, unpatch_model
from tiny_models import PROTECTED_IDS, record_lookups, tiny_bert, word_ids


def _hook_state(model):
    return [
        (name, len(m._forward_pre_hooks), len(m._forward_pre_hooks_with_kwargs), len(m._forward_hooks))
        for name, m in model.named_modules()
    ]


def test_swaps_happen_in_training_and_never_in_eval(tokenizer):
    model = tiny_bert()
    handle = patch_model(model, SSEConfig(p=0.5), tokenizer=tokenizer)
    records, _ = record_lookups(model.get_input_embeddings())
    ids = word_ids(rows=64)
    model.train()
    model(input_ids=ids)
    changed = records[-1] != ids
    eligible = ~torch.isin(ids, torch.tensor(sorted(PROTECTED_IDS)))
    assert not changed[~eligible].any()
    assert abs(changed[eligible].float().mean().item() - 0.5) < 0.1
    stats = handle.stats()["input"]
    assert stats["tokens_seen"] == ids.numel() and stats["tokens_eligible"] == int(eligible.sum())
    assert stats["tokens_swapped"] == int(changed.sum()) == handle.tokens_swapped
    assert handle.swap_rate == pytest.approx(changed.sum().item() / eligible.sum().item())

    model.eval()
    model(input_ids=ids)
    assert torch.equal(records[-1], ids)
    assert handle.tokens_seen == ids.numel()  # eval calls are not counted


def test_no_swaps_without_grad_even_in_train_mode(tokenizer):
    """generate() and evaluation loops run under no_grad: they always see the original ids."""
    model = tiny_bert().train()
    patch_model(model, p=1.0, tokenizer=tokenizer)
    records, _ = record_lookups(model.get_input_embeddings())
    ids = word_ids()
    with torch.no_grad():
        model(input_ids=ids)
    with torch.inference_mode():
        model(input_ids=ids)
    assert all(torch.equal(r, ids) for r in records)


def test_caller_tensors_and_labels_are_never_modified(tokenizer):
    model = transformers.BertForMaskedLM(tiny_bert().config).train()
    patch_model(model, p=1.0, tokenizer=tokenizer)
    ids = word_ids()
    labels = torch.full_like(ids, -100)
    labels[:, 2] = ids[:, 2]
    ids_before, labels_before = ids.clone(), labels.clone()
    torch.manual_seed(0)
    out = model(input_ids=ids, labels=labels)
    assert torch.equal(ids, ids_before) and torch.equal(labels, labels_before)
    manual = nn.functional.cross_entropy(out.logits.view(-1, out.logits.shape[-1]), labels_before.view(-1))
    assert torch.allclose(out.loss, manual)


def test_state_dict_is_identical_before_while_and_after(tokenizer):
    model = tiny_bert()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    attributes_before = set(vars(model)) | {(n, tuple(vars(m))) for n, m in model.named_modules()}
    hooks_before = _hook_state(model)
    handle = patch_model(model, p=0.3, tokenizer=tokenizer)
    while_patched = model.state_dict()
    assert while_patched.keys() == before.keys()
    assert all(torch.equal(before[k], while_patched[k]) for k in before)
    handle.remove()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before) and after.keys() == before.keys()
    assert _hook_state(model) == hooks_before
    assert set(vars(model)) | {(n, tuple(vars(m))) for n, m in model.named_modules()} == attributes_before
    assert get_handle(model) is None


def test_checkpoint_saved_while_patched_loads_in_plain_transformers(tokenizer, tmp_path):
    model = tiny_bert()
    patch_model(model, p=0.3, tokenizer=tokenizer)
    model.save_pretrained(tmp_path)
    assert "sse" not in (tmp_path / "config.json").read_text()
    reloaded = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert _hook_state(reloaded) == _hook_state(tiny_bert())
    for key, value in model.state_dict().items():
        assert torch.equal(value, reloaded.state_dict()[key])


def test_context_manager_removes_even_when_training_raises(tokenizer):
    model = tiny_bert().train()
    hooks_before = _hook_state(model)
    with pytest.raises(RuntimeError, match="boom"):
        with patch_model(model, p=0.5, tokenizer=tokenizer) as handle:
            assert handle.is_attached
            raise RuntimeError("boom")
    assert not handle.is_attached and _hook_state(model) == hooks_before
    handle.remove()  # idempotent


def test_double_patch_is_an_error_unless_replace(tokenizer):
    model = tiny_bert()
    first = patch_model(model, p=0.1, tokenizer=tokenizer)
    with pytest.raises(AlreadyPatchedError, match="already has SSE attached.*replace=True"):
        patch_model(model, p=0.2, tokenizer=tokenizer)
    assert first.is_attached and first.effective_p == 0.1
    second = patch_model(model, p=0.2, tokenizer=tokenizer, replace=True)
    assert not first.is_attached and get_handle(model) is second and second.effective_p == 0.2
    pre_hooks = sum(len(m._forward_pre_hooks) for m in model.modules())
    assert pre_hooks == 3  # one each on the embedding, its holder and the model: the first handle's are gone
    assert unpatch_model(model) is True and unpatch_model(model) is False
    assert sum(len(m._forward_pre_hooks) for m in model.modules()) == 0


def test_keyword_overrides_and_bad_arguments(tokenizer):
    model = tiny_bert()
    handle = patch_model(model, SSEConfig(p=0.1, seed=3), tokenizer=tokenizer, p=0.25)
    assert handle.effective_p == 0.25 and handle.config.seed == 3
    handle.remove()
    with pytest.raises(TypeError, match="Unknown SSEConfig field"):
        patch_model(model, tokenizer=tokenizer, probability=0.1)
    with pytest.raises(ValueError, match=r"SSEConfig\.p"):
        patch_model(model, tokenizer=tokenizer, p=float("nan"))
    with pytest.raises(TypeError, match="SSEConfig"):
        patch_model(model, {"p": 0.1})
    with pytest.raises(TypeError, match="torch.nn.Module"):
        patch_model("bert-base-uncased")
    assert get_handle(model) is None


def test_small_mistakes_get_a_hint(tokenizer):
    model = tiny_bert()
    with pytest.raises(TypeError, match=r"got the name or path 'bert-base-uncased': load the model first"):
        patch_model("bert-base-uncased")
    with pytest.raises(TypeError, match=r"got a tokenizer \(BertTokenizer\).*patch_model\(\.\.\., tokenizer=tok\)"):
        patch_model(model, tokenizer)
    with pytest.raises(TypeError, match=r"Unknown SSEConfig field prob= passed to patch_model\. Did you mean p=\?"):
        patch_model(model, tokenizer=tokenizer, prob=0.1)
    with pytest.raises(TypeError, match=r"graphk=.*Did you mean graph_k=\?"):
        patch_model(model, tokenizer=tokenizer, graphk=3)
    assert get_handle(model) is None and _hook_state(model) == _hook_state(tiny_bert())


def test_another_models_far_smaller_tokenizer_warns(tokenizer):
    with pytest.warns(UserWarning, match=r"tokenizer has 48 tokens but .* 5000 rows: is it another model's tokenizer"):
        patch_model(tiny_bert(vocab_size=5000), tokenizer=tokenizer).remove()
    with warnings.catch_warnings():  # a table padded past its own tokenizer (48 of 64 rows here) is normal
        warnings.simplefilter("error", UserWarning)
        patch_model(tiny_bert(), tokenizer=tokenizer).remove()


def test_model_without_input_embeddings_is_a_clear_error():
    class ValueHead(transformers.PreTrainedModel):
        config_class = transformers.BertConfig

        def __init__(self, config):
            super().__init__(config)
            self.head = nn.Linear(4, 1)

        def get_input_embeddings(self):
            return None

    with pytest.raises(ValueError, match=r"get_input_embeddings\(\) returned None.*patch the inner"):
        patch_model(ValueHead(transformers.BertConfig(vocab_size=64)))


def test_tokenizer_larger_than_embedding_table_is_a_clear_error(tokenizer):
    model = tiny_bert(vocab_size=40)
    with pytest.raises(ValueError, match="resize_token_embeddings"):
        patch_model(model, tokenizer=tokenizer)
    assert get_handle(model) is None and _hook_state(model) == _hook_state(tiny_bert(vocab_size=40))


def test_empty_candidate_set_is_a_clear_error(tokenizer):
    with pytest.raises(ValueError, match="at least 2 candidate tokens"):
        patch_model(tiny_bert(), tokenizer=tokenizer, exclude_token_ids=list(range(8, 48)))


def test_inputs_embeds_warns_once_and_training_continues(tokenizer):
    model = tiny_bert().train()
    handle = patch_model(model, p=0.5, tokenizer=tokenizer)
    with torch.no_grad():
        embeds = model.get_input_embeddings()(word_ids())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            model(inputs_embeds=embeds, labels=torch.zeros(8, dtype=torch.long)).loss.backward()
    messages = [str(w.message) for w in caught if "inputs_embeds" in str(w.message)]
    assert len(messages) == 1 and "without SSE" in messages[0]
    assert handle.tokens_swapped == 0


def test_empty_special_only_and_int32_batches(tokenizer):
    model = tiny_bert().train()
    handle = patch_model(model, p=1.0, tokenizer=tokenizer)
    records, _ = record_lookups(model.get_input_embeddings())
    model(input_ids=torch.tensor([[5, 6, 0, 0]]))
    assert torch.equal(records[-1], torch.tensor([[5, 6, 0, 0]]))
    ids32 = word_ids().int()
    model(input_ids=ids32)
    assert records[-1].dtype == torch.int32 and not torch.equal(records[-1], ids32)
    model.get_input_embeddings()(torch.empty(0, 5, dtype=torch.long))
    assert handle.stats()["input"]["tokens_seen"] == 4 + ids32.numel()


def test_seed_makes_swaps_reproducible(tokenizer):
    results = []
    for _ in range(2):
        model = tiny_bert().train()
        patch_model(model, p=0.4, seed=123, tokenizer=tokenizer)
        records, _ = record_lookups(model.get_input_embeddings())
        torch.manual_seed(torch.initial_seed() + len(results))  # the global generator differs; the seed rules
        model(input_ids=word_ids())
        results.append(records[-1])
    assert torch.equal(results[0], results[1])


def test_set_base_p_disabled_and_reset_stats(tokenizer):
    model = tiny_bert().train()
    handle = patch_model(model, p=0.0, tokenizer=tokenizer)
    records, _ = record_lookups(model.get_input_embeddings())
    ids = word_ids()
    model(input_ids=ids)
    assert torch.equal(records[-1], ids)
    handle.set_base_p(1.0)
    model(input_ids=ids)
    assert handle.effective_p == 1.0 and handle.swap_rate == 0.5  # over all training tokens: the p = 0 step counts too
    with handle.disabled():
        model(input_ids=ids)
    assert torch.equal(records[-1], ids)
    with pytest.raises(ValueError, match=r"SSEConfig\.p"):
        handle.set_base_p(1.5)
    handle.reset_stats()
    assert handle.tokens_seen == 0 and handle.tokens_swapped == 0 and handle.swap_rate == 0.0


def test_disabled_is_a_temporary_off_switch_that_nests_and_survives_errors(tokenizer):
    model = tiny_bert().train()
    handle = patch_model(model, p=1.0, tokenizer=tokenizer)
    records, _ = record_lookups(model.get_input_embeddings())
    ids = word_ids()
    assert not hasattr(handle, "enabled")  # no bare public flag: the context manager is the switch
    with handle.disabled() as same:
        assert same is handle
        with handle.disabled():
            model(input_ids=ids)
        model(input_ids=ids)  # still off after the inner block
        assert torch.equal(records[-1], ids) and handle.tokens_seen == 0
    with pytest.raises(RuntimeError, match="boom"), handle.disabled():
        raise RuntimeError("boom")
    model(input_ids=ids)  # on again, even after the error
    assert not torch.equal(records[-1], ids) and handle.tokens_swapped > 0


def test_training_step_updates_swapped_rows(tokenizer):
    """The gradient of a swapped occurrence lands on the replacement's row, not the original's."""
    model = tiny_bert(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).train()
    patch_model(model, p=1.0, tokenizer=tokenizer)
    records, _ = record_lookups(model.get_input_embeddings())
    ids = torch.tensor([[5, 10, 6]])
    model(input_ids=ids, labels=torch.tensor([1])).loss.backward()
    grad_rows = model.get_input_embeddings().weight.grad.abs().sum(-1).nonzero().flatten().tolist()
    replacement = int(records[-1][0, 1])
    assert replacement != 10 and replacement in grad_rows and 10 not in grad_rows


@pytest.mark.slow  # torch.compile
@pytest.mark.parametrize("order", ["patch_then_compile", "compile_then_patch"])
def test_torch_compile_sees_the_hooks_and_their_removal(tokenizer, order):
    model = tiny_bert().train()
    ids = word_ids()
    if order == "patch_then_compile":
        handle = patch_model(model, p=1.0, tokenizer=tokenizer)
        compiled = torch.compile(model, backend="aot_eager")
    else:
        compiled = torch.compile(model, backend="aot_eager")
        compiled(input_ids=ids)  # traced once without SSE
        handle = patch_model(compiled, p=1.0, tokenizer=tokenizer)
    records, _ = record_lookups(model.get_input_embeddings())
    compiled(input_ids=ids)
    assert not torch.equal(records[-1], ids) and handle.tokens_swapped > 0
    handle.remove()
    compiled(input_ids=ids)
    assert torch.equal(records[-1], ids)
    torch._dynamo.reset()


def _outcome(model, ids):
    """What one training forward does with `ids`: ("ok", looked-up ids) or (error type, message)."""
    records, hook = record_lookups(model.get_input_embeddings())
    try:
        model.train()(input_ids=ids)
    except Exception as error:  # noqa: BLE001  (the test compares whatever the plain model raises)
        return type(error).__name__, str(error)
    finally:
        hook.remove()
    return "ok", records[-1]


ID_CASES = {
    "negative": torch.tensor([[-1, -2, -999]]),
    "one negative among words": torch.tensor([[5, 9, -1, 12, 6]]),
    "past the table": torch.tensor([[5, 9, 64, 6]]),
    "far past the table": torch.tensor([[5, 9, 10**6, 6]]),
    "uint8": word_ids().to(torch.uint8),
    "int16": word_ids().to(torch.int16),
    "bool": word_ids() > 20,
    "float": word_ids().float(),
    "1-D": word_ids()[0],
    "non-contiguous": word_ids(cols=24)[:, ::2],
}


@pytest.mark.parametrize("method", ["se", "graph"])
@pytest.mark.parametrize("case", list(ID_CASES))
def test_patched_model_fails_exactly_where_the_plain_one_fails(tokenizer, case, method):
    ids = ID_CASES[case]
    plain = _outcome(tiny_bert(), ids.clone())
    model = tiny_bert()
    graph = {token: [token + 1] for token in range(8, 47)} if method == "graph" else None
    patch_model(model, p=1.0, tokenizer=tokenizer, graph=graph)
    patched = _outcome(model, ids.clone())
    assert patched[0] == plain[0], (plain, patched)
    if plain[0] == "ok":
        swappable = (ids >= 8) & (ids < 47) if method == "graph" else (ids >= 8) & (ids < 48)
        assert torch.equal(patched[1] != ids, swappable) and patched[1].dtype == ids.dtype
    else:
        assert patched[1] == plain[1]


RANK_SCRIPT = """
import json, sys
sys.path[:0] = [sys.argv[3], sys.argv[4]]
import torch, torch.distributed as dist
from sse_hf import patch_model
from tiny_models import tiny_bert, tiny_tokenizer, word_ids, record_lookups
from pathlib import Path
rank = int(sys.argv[1])
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{sys.argv[2]}", rank=rank, world_size=2)
model = tiny_bert().train()
patch_model(model, p=0.5, seed=11, tokenizer=tiny_tokenizer(Path(sys.argv[5]) / str(rank)))
records, _ = record_lookups(model.get_input_embeddings())
torch.manual_seed(0)  # the global generator is the same everywhere: only the private one can differ
model(input_ids=word_ids())
print(json.dumps(records[-1].tolist()))
dist.destroy_process_group()
"""


@pytest.mark.slow  # two gloo processes
def test_seeded_swaps_differ_between_distributed_ranks(tmp_path):
    """Under DDP every process gets its own swap stream from the same seed (offset by rank)."""
    import json
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tests = Path(__file__).resolve().parent
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    for rank in (0, 1):
        (tmp_path / "tok" / str(rank)).mkdir(parents=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(rank), str(port), str(tests.parent), str(tests), str(tmp_path / "tok")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err[-2000:] for _, err in outputs]
    ids = [torch.tensor(json.loads(out)) for out, _ in outputs]
    assert not torch.equal(ids[0], ids[1])
    assert all((rank_ids != word_ids()).any() for rank_ids in ids)


def test_decoder_p_on_a_model_without_a_decoder_stack_is_a_clear_error(tokenizer):
    from tiny_models import build

    for model in (tiny_bert(), build("gpt2")):
        with pytest.raises(ValueError, match=r"decoder_p.*no decoder stack"):
            patch_model(model, p=0.1, decoder_p=0.1, tokenizer=tokenizer)
        assert get_handle(model) is None


def test_a_tokenizer_path_string_is_a_clear_error_in_patch_model(tokenizer, tmp_path):
    with pytest.raises(TypeError, match=r"patch_model\(tokenizer=\).*AutoTokenizer\.from_pretrained"):
        patch_model(tiny_bert(), p=0.1, tokenizer=str(tmp_path))


def test_a_multimodal_processor_gives_its_tokenizer_to_patch_model(tokenizer):
    import copy

    from transformers import CLIPImageProcessor, LlavaProcessor

    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    processor = LlavaProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer, patch_size=14)
    with patch_model(tiny_bert(), p=0.1, tokenizer=processor) as handle:
        assert handle.vocabulary.size == 49 and 48 in handle.vocabulary.protected


@pytest.mark.parametrize("schedule", ["p0", "set_p"])
def test_tokens_seen_while_p_is_zero_are_counted_as_seen_and_not_swapped(tokenizer, schedule):
    model = tiny_bert().train()
    ids = word_ids(rows=8)
    torch.manual_seed(1)
    plain = model(input_ids=ids).logits
    handle = patch_model(model, p=0.0 if schedule == "p0" else 0.5, tokenizer=tokenizer)
    if schedule == "set_p":
        handle.set_base_p(0.0)
    torch.manual_seed(1)
    assert torch.equal(model(input_ids=ids).logits, plain)  # counting draws nothing: dropout sees the same numbers
    eligible = int(((ids >= 8) & (ids < 48)).sum())
    assert handle.stats()["input"] == {
        "tokens_seen": ids.numel(),
        "tokens_eligible": eligible,
        "tokens_swapped": 0,
        "swap_rate": 0.0,
    }


def test_attach_registers_the_handle_and_remove_unregisters_it(tokenizer):
    """The life cycle has one owner: SSEHandle.attach writes the registry get_handle reads, remove deletes from it."""
    from sse_hf import SSEHandle
    from sse_hf.lookups import Lookup
    from sse_hf.samplers import UniformSampler
    from sse_hf.vocabulary import resolve_vocabulary

    model = tiny_bert().train()
    vocabulary = resolve_vocabulary(model.config, tokenizer)
    embedding = model.get_input_embeddings()
    lookup = Lookup("input", embedding, UniformSampler(vocabulary.candidates, embedding.num_embeddings), 1.0)
    handle = SSEHandle(model, SSEConfig(p=1.0), vocabulary, [lookup])
    assert get_handle(model) is None and not handle.is_attached  # built, not attached: not registered
    handle.attach()
    assert get_handle(model) is handle and handle.is_attached
    model(input_ids=word_ids())
    assert handle.tokens_swapped > 0
    handle.remove()
    assert get_handle(model) is None and not handle.is_attached
    handle.attach()  # a removed handle stays removed
    assert get_handle(model) is None and not handle.is_attached
