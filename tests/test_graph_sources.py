"""Reading SSE-Graphs from mappings, edge files, scipy matrices and kNN of embeddings; prepare_graph."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse
import scipy.stats
import torch
from transformers import BertConfig, BertModel, BertTokenizer

from graph_helpers import ADJACENCY, VOCAB, all_tokens, assert_same_graph, generator
from sse_hf.graph import SSEGraph
from sse_hf.patch import prepare_graph
from sse_hf.sampling import swap_graph
from sse_hf.vocabulary import tokenizer_protected_ids


def test_from_dict_with_token_strings_lists_weights_and_ids(graph_tokenizer):
    weighted = SSEGraph.from_dict({"good": {"great": 2.0, "fine": 1.0}, "bad": ["poor"]}, tokenizer=graph_tokenizer)
    ids = {token: graph_tokenizer.convert_tokens_to_ids(token) for token in VOCAB}
    assert weighted.vocab_size == len(graph_tokenizer)
    assert weighted.neighbors_of(ids["good"]) == pytest.approx({ids["great"]: 2 / 3, ids["fine"]: 1 / 3})
    assert weighted.neighbors_of(ids["bad"]) == {ids["poor"]: 1.0}
    assert weighted.neighbors_of(ids["great"]) == {}
    by_id = SSEGraph.from_dict({ids["good"]: [ids["great"], ids["fine"]]}, vocab_size=len(VOCAB))
    assert by_id.neighbors_of(ids["good"]) == pytest.approx({ids["great"]: 0.5, ids["fine"]: 0.5})
    both_ways = SSEGraph.from_dict({"good": ["great"]}, tokenizer=graph_tokenizer, undirected=True)
    assert both_ways.to_dict() == {ids["good"]: {ids["great"]: 1.0}, ids["great"]: {ids["good"]: 1.0}}


def test_unknown_tokens_warn_with_count_and_examples(graph_tokenizer):
    with pytest.warns(UserWarning, match=r"2 token\(s\).*not in the vocabulary.*3 edge\(s\) were dropped.*'nope'"):
        graph = SSEGraph.from_dict(
            {"good": ["great", "nope"], "zilch": ["bad", "ok"], "[UNK]": ["ok"]}, tokenizer=graph_tokenizer
        )
    unk, ok = graph_tokenizer.unk_token_id, graph_tokenizer.convert_tokens_to_ids("ok")
    assert graph.neighbors_of(unk) == {ok: 1.0}  # the unk token itself is a known token


def test_edge_files_tsv_and_jsonl(tmp_path, graph_tokenizer):
    ids = {token: graph_tokenizer.convert_tokens_to_ids(token) for token in VOCAB}
    tsv = tmp_path / "edges.tsv"
    tsv.write_text(
        "source\ttarget\tweight\n# synonyms\ngood\tgreat\t3\n\ngood\tfine\t1\nbad\tpoor\n", encoding="utf-8"
    )
    from_tsv = SSEGraph.from_edge_file(tsv, tokenizer=graph_tokenizer)
    expected = {ids["good"]: {ids["great"]: 0.75, ids["fine"]: 0.25}, ids["bad"]: {ids["poor"]: 1.0}}
    assert_same_graph(from_tsv.to_dict(), expected)
    jsonl = tmp_path / "edges.jsonl"
    records = [
        {"source": "good", "target": "great", "weight": 3},
        {"source": "good", "target": "fine"},
        {"source": ids["bad"], "target": ids["poor"], "weight": 0.5},
    ]
    jsonl.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    assert_same_graph(SSEGraph.from_file(jsonl, tokenizer=graph_tokenizer).to_dict(), expected)
    numeric = tmp_path / "ids.txt"
    numeric.write_text("1\t2\n2\t1\t4.5\n", encoding="utf-8")
    assert SSEGraph.from_file(numeric, vocab_size=3).to_dict() == {1: {2: 1.0}, 2: {1: 1.0}}
    mapping = tmp_path / "graph.json"
    mapping.write_text(json.dumps({"good": {"great": 3, "fine": 1}, "bad": ["poor"]}), encoding="utf-8")
    assert_same_graph(SSEGraph.from_file(mapping, tokenizer=graph_tokenizer).to_dict(), expected)


def test_scipy_matrix_matches_the_same_graph_as_a_dict(graph):
    rows, cols, data = zip(*[(s, t, w) for s, ns in ADJACENCY.items() for t, w in ns.items()])
    matrix = scipy.sparse.csr_matrix((data, (rows, cols)), shape=(10, 10))
    from_matrix = SSEGraph.from_scipy(matrix)
    assert_same_graph(from_matrix.to_dict(), graph.to_dict())
    ids = all_tokens((16, 16))
    assert torch.equal(
        swap_graph(ids, 0.5, from_matrix, generator()).ids, swap_graph(ids, 0.5, graph, generator()).ids
    )


def brute_force_knn(table: torch.Tensor, k: int, excluded: set[int], temperature: float | None):
    """Full cosine matrix, argsort: {token: {neighbour: probability}} for every non-excluded token."""
    normed = table.double() / table.double().norm(dim=1, keepdim=True)
    cosine = (normed @ normed.T).numpy()
    keep = [i for i in range(table.shape[0]) if i not in excluded]
    expected = {}
    for i in keep:
        others = [j for j in keep if j != i]
        ranked = sorted(others, key=lambda j: -cosine[i, j])[:k]
        sims = np.array([cosine[i, j] for j in ranked])
        weights = np.full(k, 1.0 / k) if temperature is None else np.exp((sims - sims.max()) / temperature)
        expected[i] = dict(zip(ranked, weights / weights.sum()))
    return expected


@pytest.mark.parametrize("chunk_size", [7, 1000])
def test_knn_graph_equals_brute_force_with_exclusions_and_chunking(chunk_size):
    table = torch.randn(40, 6, generator=generator(7), dtype=torch.float64)
    excluded = {0, 5, 39}
    graph = SSEGraph.from_embeddings(table, k=4, exclude_token_ids=excluded, chunk_size=chunk_size, temperature=0.2)
    expected = brute_force_knn(table, 4, excluded, temperature=0.2)
    actual = graph.to_dict()
    assert actual.keys() == expected.keys()
    for token, neighbours in expected.items():
        assert list(actual[token]) == list(neighbours)  # same neighbours, nearest first
        assert list(actual[token].values()) == pytest.approx(list(neighbours.values()))
    uniform = SSEGraph.from_embeddings(
        table.float(), k=4, exclude_token_ids=excluded, chunk_size=chunk_size, weighting="uniform"
    )
    assert_same_graph(uniform.to_dict(), brute_force_knn(table, 4, excluded, temperature=None))
    assert graph.metadata["k"] == 4 and graph.metadata["excluded_ids"] == 3


def test_knn_graph_from_a_model_excludes_the_tokenizers_special_and_reserved_tokens(graph_tokenizer):
    config = BertConfig(
        vocab_size=16,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=16,
    )
    model = BertModel(config)  # 16 rows, tokenizer 12: the 4 padding rows are never sources or neighbours
    graph = SSEGraph.from_embeddings(model, k=2, tokenizer=graph_tokenizer)
    protected = tokenizer_protected_ids(graph_tokenizer)
    assert protected == {0, 1, 2, 3, 4, 5} and graph.vocab_size == len(graph_tokenizer)
    expected = brute_force_knn(model.get_input_embeddings().weight.detach()[: len(graph_tokenizer)], 2, protected, 0.1)
    assert set(graph.to_dict()) == set(expected) == set(range(6, 12))
    for token, neighbours in expected.items():
        assert set(graph.neighbors_of(token)) == set(neighbours)


def test_prepare_graph_accepts_every_source_and_keeps_special_tokens_out(tmp_path, graph_tokenizer):
    ids = {token: graph_tokenizer.convert_tokens_to_ids(token) for token in VOCAB}
    user = {"good": ["great", "[CLS]"], "[SEP]": ["bad"], "bad": ["poor"]}
    with pytest.warns(UserWarning, match="removed 2 of the graph's 4 edges"):
        graph = prepare_graph(user, table_size=16, tokenizer=graph_tokenizer)
    assert graph.vocab_size == 16
    assert graph.to_dict() == {ids["good"]: {ids["great"]: 1.0}, ids["bad"]: {ids["poor"]: 1.0}}
    path = graph.save(tmp_path / "g.safetensors")
    assert prepare_graph(str(path), table_size=16, tokenizer=graph_tokenizer).to_dict() == graph.to_dict()
    assert prepare_graph(graph, table_size=16) is graph
    matrix = scipy.sparse.csr_matrix(([1.0], ([6], [7])), shape=(12, 12))
    assert prepare_graph(matrix, table_size=12, tokenizer=graph_tokenizer).to_dict() == {6: {7: 1.0}}
    model = BertModel(
        BertConfig(
            vocab_size=16,
            hidden_size=8,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=16,
            max_position_embeddings=16,
        )
    )
    knn = prepare_graph("knn", table_size=16, tokenizer=graph_tokenizer, model=model, k=3, exclude_token_ids=[11])
    assert knn.vocab_size == 16 and set(knn.to_dict()) == set(range(6, 11)) and knn.metadata["k"] == 3
    with pytest.raises(ValueError, match="Cannot shrink the graph from 12 to 8 ids"):
        prepare_graph({"good": ["ok"]}, table_size=8, tokenizer=graph_tokenizer)
    with pytest.raises(ValueError, match="pass model="):
        prepare_graph("knn", table_size=16, tokenizer=graph_tokenizer)
    with pytest.raises(TypeError, match="graph must be"):
        prepare_graph(3.5, table_size=16)


def test_bad_edge_files_name_the_line(tmp_path, graph_tokenizer):
    bad_weight = tmp_path / "w.tsv"
    bad_weight.write_text("good\tgreat\theavy\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 1: the weight 'heavy' is not a number"):
        SSEGraph.from_edge_file(bad_weight, tokenizer=graph_tokenizer)
    not_ids = tmp_path / "ids.tsv"
    not_ids.write_text("1\t2\ngood\tgreat\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 2: 'good' is not an integer token id"):
        SSEGraph.from_edge_file(not_ids, vocab_size=10)
    bad_json = tmp_path / "e.jsonl"
    bad_json.write_text('{"source": 1, "target": 2}\n{"source": 1}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 2: expected an object"):
        SSEGraph.from_edge_file(bad_json, vocab_size=10)
    csv = tmp_path / "edges.csv"
    csv.write_text("1,2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="Cannot tell the format"):
        SSEGraph.from_edge_file(csv, vocab_size=10)


def test_json_graph_with_numeric_keys_and_id_values_is_refused(tmp_path, graph_tokenizer):
    """json.dump of {id: [ids]} writes the keys as strings: they must not be read as token text beside id values."""
    path = tmp_path / "graph.json"
    path.write_text(json.dumps({10: [11, 12], 13: [14]}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"graph\.json.*keys are token strings.*values are integer ids"):
        SSEGraph.from_file(path, tokenizer=graph_tokenizer)


def test_graph_whose_every_edge_is_dropped_says_they_were_given_and_dropped(graph_tokenizer):
    with pytest.raises(ValueError, match=r"all 3 edge\(s\) of the graph \(dict\) were dropped.*not in the vocabulary"):
        SSEGraph.from_dict({"zilch": ["nada", "nix"], "nope": ["nah"]}, tokenizer=graph_tokenizer)


@pytest.mark.parametrize(
    "name, content",
    [
        ("empty.json", ""),
        ("truncated.json", '{"good": ["gr'),
        ("list.json", "[1, 2]"),
        ("empty.safetensors", ""),
        ("truncated.safetensors", '\x08\x00\x00\x00\x00\x00\x00\x00{"a"'),
        ("text.safetensors", "good\tgreat\n"),
        ("binary.tsv", "\xff\xfe\x00bad"),
        ("binary.jsonl", "\xff\xfe\x00"),
        ("empty.tsv", ""),
        ("empty.jsonl", "\n"),
        ("comments.tsv", "# nothing here\n"),
        ("empty_object.json", "{}"),
        ("pairs.json", '{"good": [["great", 2.0]]}'),
        ("unknown.json", '{"zilch": ["nada"]}'),
    ],
)
def test_unreadable_graph_files_are_errors_naming_them(tmp_path, graph_tokenizer, name, content):
    """Empty, truncated or of another format than the extension says: an error naming the file, not a parser's."""
    path = tmp_path / name
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(ValueError, match=rf"{name}"):
        SSEGraph.from_file(path, tokenizer=graph_tokenizer)
    assert path.read_bytes() == content.encode("latin-1")


@pytest.fixture
def numeric_tokenizer(tmp_path) -> BertTokenizer:
    """The words of `graph_helpers.VOCAB` and then the tokens "10" and "11" (ids 12 and 13): id 10 is not "10"."""
    path = tmp_path / "numeric_vocab.txt"
    path.write_text("\n".join([*VOCAB, "10", "11"]) + "\n", encoding="utf-8")
    return BertTokenizer(str(path))


def test_an_edge_list_of_integers_under_a_tokenizer_is_read_only_as_its_header_says(
    tmp_path, numeric_tokenizer, caplog
):
    """`10<TAB>11` is the ids 10 -> 11 or the tokens "10" -> "11" (ids 12 -> 13): refused until a header says which."""
    bare = tmp_path / "edges.tsv"
    bare.write_text("10\t11\n", encoding="utf-8")
    header = tmp_path / "header.txt"
    header.write_text("source\ttarget\tweight\n10\t11\t2\n", encoding="utf-8")
    for path in (bare, header):
        with pytest.raises(
            ValueError, match=r"every source and target is an integer.*'source_id\\ttarget_id' for ids"
        ):
            SSEGraph.from_edge_file(path, tokenizer=numeric_tokenizer)
        with pytest.raises(ValueError, match=rf"{path.name}: every source and target is an integer"):
            prepare_graph(str(path), table_size=14, tokenizer=numeric_tokenizer)  # the path SSEConfig(graph=...) takes
    ids, tokens = tmp_path / "ids.tsv", tmp_path / "tokens.tsv"
    ids.write_text("source_id\ttarget_id\n10\t11\n", encoding="utf-8")
    tokens.write_text("source_token\ttarget_token\tweight\n10\t11\t2\n", encoding="utf-8")
    with caplog.at_level("INFO", logger="sse_hf.graph_sources"):
        by_id = SSEGraph.from_edge_file(ids, tokenizer=numeric_tokenizer)
        by_token = SSEGraph.from_edge_file(tokens, tokenizer=numeric_tokenizer)
    assert by_id.to_dict() == {10: {11: 1.0}} and by_token.to_dict() == {12: {13: 1.0}}
    marked = tmp_path / "marked.tsv"  # a byte-order mark before the header, as Excel and Notepad write
    marked.write_text("\ufeffsource_id\ttarget_id\n10\t11\n", encoding="utf-8")
    assert SSEGraph.from_edge_file(marked, tokenizer=numeric_tokenizer).to_dict() == {10: {11: 1.0}}
    assert by_id.metadata["reading"].startswith("as integer token ids")
    assert by_token.metadata["reading"].startswith("as token strings")
    logged = [record.getMessage() for record in caplog.records]
    assert any("ids.tsv as integer token ids" in line for line in logged), logged
    assert any("tokens.tsv as token strings" in line for line in logged), logged
    # without a tokenizer the fields are ids, as before; a word among them is the token text it is
    assert (
        SSEGraph.from_edge_file(bare, vocab_size=12).metadata["reading"]
        == "as integer token ids (no tokenizer was given)"
    )
    mixed = tmp_path / "mixed.tsv"
    mixed.write_text("10\tgood\n", encoding="utf-8")
    assert SSEGraph.from_edge_file(mixed, tokenizer=numeric_tokenizer).to_dict() == {12: {6: 1.0}}


@pytest.mark.parametrize(
    "content, tokenized, match",
    [
        (
            "source_id\ttarget_id\n10\tgood\n",
            True,
            r"line 2: 'good' is not an integer token id.*'source_token\\ttarget_token'",
        ),
        ("source_token\ttarget_token\ngood\tgreat\n", False, r"its header .* token strings.*pass tokenizer="),
        ("1_0\t2\n", False, r"line 1: '1_0' is not an integer token id"),  # int() reads "1_0" as 10
        ("\u0661\u0660\t2\n", False, r"line 1: '\u0661\u0660' is not an integer token id"),  # int() reads it as 10
    ],
)
def test_an_edge_list_that_its_reading_cannot_hold_is_an_error_saying_what_to_do(
    tmp_path, numeric_tokenizer, content, tokenized, match
):
    path = tmp_path / "edges.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=rf"edges\.tsv.*{match}"):
        SSEGraph.from_edge_file(path, **({"tokenizer": numeric_tokenizer} if tokenized else {"vocab_size": 12}))
