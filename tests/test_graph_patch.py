"""SSE-Graph through patch_model and SSECallback: swaps land only on graph neighbours."""

import pytest
import torch

from sse_hf import SSEConfig, SSEGraph, patch_model
from tiny_models import record_lookups, tiny_bert, word_ids

NEIGHBOURS = {"good": {"great": 3.0, "fun": 1.0}, "bad": ["awful", "dull"], "movie": ["film"], "film": ["movie"]}


def _ids(tokenizer, words, rows=256):
    row = [tokenizer.cls_token_id, *tokenizer.convert_tokens_to_ids(words), tokenizer.sep_token_id, 0]
    return torch.tensor([row] * rows)


def _check_neighbour_swaps(tokenizer, recorded, ids):
    allowed = {
        tokenizer.convert_tokens_to_ids(word): set(tokenizer.convert_tokens_to_ids(list(targets)))
        for word, targets in NEIGHBOURS.items()
    }
    changed = recorded != ids
    assert changed.any()
    for original, new in zip(ids[changed].tolist(), recorded[changed].tolist()):
        assert new in allowed[original]
    for token in ids.unique().tolist():
        if token not in allowed:
            assert not changed[ids == token].any()


def test_graph_object_swaps_only_to_neighbours(tokenizer):
    graph = SSEGraph.from_dict(NEIGHBOURS, tokenizer=tokenizer)
    model = tiny_bert().train()
    handle = patch_model(model, p=0.5, graph=graph, tokenizer=tokenizer)
    records, _ = record_lookups(model.get_input_embeddings())
    ids = _ids(tokenizer, ["good", "bad", "movie", "was", "the"])
    model(input_ids=ids)
    _check_neighbour_swaps(tokenizer, records[-1], ids)
    good = ids == tokenizer.convert_tokens_to_ids("good")
    great = records[-1][good] == tokenizer.convert_tokens_to_ids("great")
    swapped_good = (records[-1][good] != ids[good]).sum()
    assert abs(great.sum().item() / swapped_good.item() - 0.75) < 0.15  # weights 3:1
    stats = handle.stats()["input"]
    assert stats["tokens_eligible"] == 3 * 256  # good, bad, movie have neighbours; was, the do not
    model.eval()
    model(input_ids=ids)
    assert torch.equal(records[-1], ids)


def test_graph_file_in_config(tokenizer, tmp_path):
    path = tmp_path / "graph.tsv"
    path.write_text("good\tgreat\t3\ngood\tfun\t1\nbad\tawful\nbad\tdull\nmovie\tfilm\nfilm\tmovie\nzzz\tgood\n")
    model = tiny_bert().train()
    with pytest.warns(UserWarning, match="1 token"):
        patch_model(model, SSEConfig(p=0.5, graph=str(path)), tokenizer=tokenizer)
    records, _ = record_lookups(model.get_input_embeddings())
    ids = _ids(tokenizer, ["good", "bad", "movie", "was"])
    model(input_ids=ids)
    _check_neighbour_swaps(tokenizer, records[-1], ids)


def test_saved_graph_in_config(tokenizer, tmp_path):
    path = SSEGraph.from_dict(NEIGHBOURS, tokenizer=tokenizer).save(tmp_path / "graph.safetensors")
    model = tiny_bert().train()
    patch_model(model, SSEConfig(p=1.0, graph=str(path)), tokenizer=tokenizer)
    records, _ = record_lookups(model.get_input_embeddings())
    ids = _ids(tokenizer, ["bad", "movie"])
    model(input_ids=ids)
    _check_neighbour_swaps(tokenizer, records[-1], ids)
    assert (records[-1][:, 2] == tokenizer.convert_tokens_to_ids("film")).all()


def test_knn_graph_from_the_model(tokenizer):
    model = tiny_bert().train()
    handle = patch_model(model, SSEConfig(p=1.0, graph="knn", graph_k=3), tokenizer=tokenizer)
    graph = handle._lookups[0].sampler.graph
    records, _ = record_lookups(model.get_input_embeddings())
    ids = word_ids(rows=16)
    model(input_ids=ids)
    changed = records[-1] != ids
    assert changed.any()
    for original, new in zip(ids[changed].tolist(), records[-1][changed].tolist()):
        assert new in graph.neighbors_of(original) and new >= 8  # never a special or reserved token
    assert not changed[ids < 8].any()


def test_graph_reaching_outside_the_vocabulary_is_a_clear_error(tokenizer):
    graph = SSEGraph.from_dict({10: [70]}, vocab_size=80)
    with pytest.raises(ValueError, match=r"Every edge of the graph starts or ends at ids 48 and above.*BertTokenizer"):
        patch_model(tiny_bert(), p=0.1, graph=graph, tokenizer=tokenizer)


def test_graph_of_only_special_tokens_is_a_clear_error(tokenizer):
    graph = SSEGraph.from_dict({5: [6]}, vocab_size=48)
    with pytest.raises(ValueError, match="no edges left"):
        patch_model(tiny_bert(), p=0.1, graph=graph, tokenizer=tokenizer)


def test_graph_config_errors():
    with pytest.raises(ValueError, match="graph_k"):
        SSEConfig(graph="knn", graph_k=0)
    with pytest.raises(ValueError, match="SSEConfig.graph"):
        SSEConfig(graph="")


def test_id_edge_list_without_tokenizer(tmp_path):
    path = tmp_path / "ids.tsv"
    path.write_text("10\t11\n11\t10\n")
    model = tiny_bert().train()
    with pytest.warns(UserWarning, match="no tokenizer given"):
        handle = patch_model(model, SSEConfig(p=1.0, graph=str(path)))
    records, _ = record_lookups(model.get_input_embeddings())
    model(input_ids=torch.tensor([[10, 11, 12]]))
    assert records[-1].tolist() == [[11, 10, 12]] and handle.stats()["input"]["tokens_eligible"] == 2


def test_graph_given_as_a_mapping(tokenizer):
    model = tiny_bert().train()
    patch_model(model, p=1.0, graph={"movie": ["film"], "film": ["movie"]}, tokenizer=tokenizer)
    records, _ = record_lookups(model.get_input_embeddings())
    ids = _ids(tokenizer, ["movie", "film", "was"])
    model(input_ids=ids)
    assert (records[-1][:, 1:4] == ids[:, [2, 1, 3]]).all()


def _padding_row_graph(kind, tmp_path):
    """A graph over all 64 embedding rows (built without a tokenizer), so some edges reach rows 48-63 that the
    tokenizer never produces (untrained padding rows)."""
    graph = SSEGraph.from_embeddings(tiny_bert().get_input_embeddings().weight, k=4)
    if kind == "safetensors":
        return graph.save(tmp_path / "graph.safetensors")
    if kind == "scipy":
        import scipy.sparse

        rows = torch.repeat_interleave(torch.arange(graph.vocab_size), graph.degrees())
        return scipy.sparse.coo_matrix(
            (graph.probabilities().numpy(), (rows.numpy(), graph.neighbors.numpy())), shape=(64, 64)
        )
    return graph


@pytest.mark.parametrize("kind", ["object", "safetensors", "scipy"])
def test_graph_edges_past_the_tokenizer_vocabulary_are_removed_with_a_count(tokenizer, tmp_path, kind):
    source = _padding_row_graph(kind, tmp_path)
    model = tiny_bert().train()
    expected = r"removed \d+ of the graph.s \d+ edges.*ids 48 and above.*BertTokenizer \(48 tokens\)"
    with pytest.warns(UserWarning, match=expected):
        handle = patch_model(model, p=1.0, graph=source, tokenizer=tokenizer)
    records, _ = record_lookups(model.get_input_embeddings())
    model(input_ids=word_ids(rows=64))
    assert handle.tokens_swapped > 0 and int(records[-1].max()) < 48
