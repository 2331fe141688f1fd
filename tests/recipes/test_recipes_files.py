"""The recipes' local-file readers: every malformed file is a clear error naming it; odd but valid text is kept."""

from __future__ import annotations

import pytest

from recipe_helpers import corpus_texts, fast_args, sentiment_rows, write_csv, write_jsonl
from recipes import run_glue, run_mlm
from recipes.kit.data_sources import load_local_files

ALLOWED = ("csv", "tsv", "json", "jsonl", "txt")
BAD_FILES = {
    "empty.csv": (b"", "is empty"),
    "whitespace.csv": (b"  \n\n \n", "is empty"),
    "header_only.csv": (b"sentence,label\n", r"has a header \(sentence, label\) but no data rows"),
    "ragged_extra.csv": (b"sentence,label\na,pos,extra\n", "line 2 has 3 field"),
    "ragged_short.csv": (b"sentence,label\na,pos\nb\n", "line 3 has 1 field"),
    "latin1.csv": ("sentence,label\ncaf\u00e9,pos\n".encode("latin-1"), "could not be read.*UTF-8"),
    "header_only.tsv": (b"sentence\tlabel\n", "no data rows"),
    "empty.txt": (b"", "is empty"),
    "blank_lines.txt": (b"\n\n   \n", "is empty"),
    "empty.jsonl": (b"", "is empty"),
    "broken.jsonl": (b'{"text": "a"}\n{oops\n', "could not be read as jsonl"),
    "empty_list.json": (b"[]", "holds no examples|could not be read as json"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_a_malformed_local_file_is_a_clear_error_naming_it(tmp_path, name):
    content, message = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"--train_file '{path}' .*({message})"):
        load_local_files({"train": (str(path), "--train_file")}, ALLOWED)
    assert path.read_bytes() == content


def test_text_that_reads_like_a_missing_value_is_kept_as_text(tmp_path):
    path = write_csv(
        tmp_path / "train.csv", [{"sentence": text, "label": "pos"} for text in ("NaN", "NA", "null", "None")]
    )
    loaded = load_local_files({"train": (path, "--train_file")}, ALLOWED)["train"]
    assert loaded["sentence"] == ["NaN", "NA", "null", "None"]


def _glue(tmp_path, tiny_model_dir, train, *extra):
    return run_glue.main(
        [
            "--model_name_or_path",
            tiny_model_dir,
            "--train_file",
            train,
            "--do_train",
            *extra,
            *fast_args(tmp_path / "out", steps=1),
        ]
    )


@pytest.mark.parametrize(
    "labels, message",
    [
        (["positive"] * 12, r"single label value \['positive'\].*at least 2 classes"),
        (["positive", "Positive ", "negative"] * 4, "differ only in case or spaces"),
        (["positive", "negative"] * 6 + ["postive"], r"label\(s\) \['postive'\].*only once \(example\(s\) \[13\]"),
        ([f"{i / 7:.3f}" for i in range(20)] + ["NaN"], r"numeric labels in column 'label' except \['NaN'\]"),
    ],
)
def test_training_labels_that_cannot_be_meant_are_a_clear_error(tmp_path, tiny_model_dir, labels, message):
    train = write_csv(tmp_path / "train.csv", [{"sentence": "the movie was good", "label": label} for label in labels])
    with pytest.raises(ValueError, match=message):
        _glue(tmp_path, tiny_model_dir, train)


def test_an_example_without_text_is_a_clear_error(tmp_path, tiny_model_dir):
    rows = sentiment_rows(12)
    rows[4]["sentence"] = None
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    with pytest.raises(ValueError, match=r"no text in column 'sentence' for 1 example\(s\) \(example\(s\) \[5\]"):
        _glue(tmp_path, tiny_model_dir, train)


def test_line_by_line_skips_blank_lines_and_a_split_of_only_blank_lines_is_an_error(tmp_path, tiny_model_dir):
    texts = corpus_texts()[:40]
    train = tmp_path / "train.txt"
    train.write_text("\n\n".join(texts) + "\n   \n")
    validation = write_csv(tmp_path / "validation.csv", [{"text": ""}, {"text": "  "}])
    with pytest.raises(
        ValueError, match=r"--line_by_line: --validation_file '.*validation.csv' has no non-blank lines"
    ):
        run_mlm.main(
            [
                "--model_name_or_path",
                tiny_model_dir,
                "--train_file",
                str(train),
                "--validation_file",
                validation,
                "--line_by_line",
                *fast_args(tmp_path / "bad", steps=1),
            ]
        )
    results = run_mlm.main(
        [
            "--model_name_or_path",
            tiny_model_dir,
            "--train_file",
            str(train),
            "--validation_split_percentage",
            "10",
            "--line_by_line",
            *fast_args(tmp_path / "ok", steps=1),
        ]
    )
    assert results["eval_samples"] == 4  # 10% of the 40 non-blank lines: the blank ones were dropped first
