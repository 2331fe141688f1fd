"""Original GLUE TSV folders (glue_data/<TASK>/): each task's layout read into the Hub schema, and run_glue on them."""

from pathlib import Path

import pytest

from recipe_helpers import fast_args, sentiment_rows
from recipes import run_glue
from recipes.kit import glue_files

ROWS = 24


def _sentences(seed):
    return [row["sentence"] for row in sentiment_rows(ROWS, seed=seed)]


def _write(path: Path, lines: list[list[str]], bom: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join("\t".join(fields) for fields in lines) + "\n"
    path.write_text(("\ufeff" if bom else "") + text, encoding="utf-8")


def make_glue_data(root: Path) -> Path:
    """glue_data/ with CoLA, MRPC, RTE and STS-B train/dev/test files in the original layouts (tiny)."""
    a, b = _sentences(1), _sentences(2)
    for split, n in (("train", ROWS), ("dev", 12)):
        # CoLA: no header; source, label, original mark, sentence (a sentence may hold a quote character)
        _write(
            root / "CoLA" / f"{split}.tsv",
            [["gj04", str(i % 2), "" if i % 2 else "*", a[i] + (' "quoted' if i == 0 else "")] for i in range(n)],
        )
        _write(
            root / "MRPC" / f"{split}.tsv",
            [["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]]
            + [[str(i % 2), str(100 + i), str(200 + i), a[i], b[i]] for i in range(n)],
            bom=True,
        )
        _write(
            root / "RTE" / f"{split}.tsv",
            [["index", "sentence1", "sentence2", "label"]]
            + [[str(i), a[i], b[i], "entailment" if i % 2 else "not_entailment"] for i in range(n)],
        )
        _write(
            root / "STS-B" / f"{split}.tsv",
            [
                [
                    "index",
                    "genre",
                    "filename",
                    "year",
                    "old_index",
                    "source1",
                    "source2",
                    "sentence1",
                    "sentence2",
                    "score",
                ]
            ]
            + [
                [str(i), "main-news", "x", "2012", str(i), "none", "none", a[i], b[i], f"{i % 6:.3f}"]
                for i in range(n)
            ],
        )
    _write(root / "CoLA" / "test.tsv", [["index", "sentence"]] + [[str(i), a[i]] for i in range(6)])
    _write(root / "RTE" / "test.tsv", [["index", "sentence1", "sentence2"]] + [[str(i), a[i], b[i]] for i in range(6)])
    return root


def test_each_layout_reads_into_the_hub_schema(tmp_path):
    root = make_glue_data(tmp_path / "glue_data")
    cola, _ = glue_files.load_glue_folder(str(root), "cola", {"train", "eval", "predict"})
    assert set(cola) == {"train", "eval", "predict"} and cola["train"].column_names == ["sentence", "label"]
    assert cola["train"][0]["sentence"].endswith(' "quoted') and cola["train"]["label"][:2] == [0, 1]
    assert cola["predict"].column_names == ["sentence"] and len(cola["eval"]) == 12
    mrpc, sources = glue_files.load_glue_folder(str(root / "MRPC"), "mrpc", {"train", "eval"})  # the task folder
    assert mrpc["train"].column_names == ["sentence1", "sentence2", "label"] and mrpc["train"]["label"][:2] == [0, 1]
    assert sources["train"].endswith("train.tsv")
    stsb, _ = glue_files.load_glue_folder(str(root), "stsb", {"train"})
    assert stsb["train"]["label"][:3] == [0.0, 1.0, 2.0] and set(stsb) == {"train"}
    rte, _ = glue_files.load_glue_folder(str(root), "rte", {"train", "eval", "predict"})
    assert rte["train"]["label"][:2] == ["not_entailment", "entailment"] and "label" not in rte["predict"].column_names


def test_bad_folders_and_files_name_the_file(tmp_path):
    root = make_glue_data(tmp_path / "glue_data")
    with pytest.raises(FileNotFoundError, match="holds no GLUE qnli files: expected QNLI/train.tsv"):
        glue_files.load_glue_folder(str(root), "qnli", {"train"})
    with pytest.raises(ValueError, match="reads the original GLUE tasks"):
        glue_files.task_folder(str(root), "imdb")
    (root / "MRPC" / "train.tsv").write_text("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\nyes\t1\t2\ta\tb\n")
    with pytest.raises(ValueError, match=r"MRPC/train.tsv, line 2: the label 'yes' is not a class id"):
        glue_files.load_glue_folder(str(root), "mrpc", {"train"})
    (root / "RTE" / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\tonly two\n")
    with pytest.raises(ValueError, match=r"RTE/train.tsv, line 2: expected 4 tab-separated fields, found 2"):
        glue_files.load_glue_folder(str(root), "rte", {"train"})
    with pytest.raises(ValueError, match="--glue_dir .* needs --task_name"):
        run_glue.main(["--model_name_or_path", "x", "--glue_dir", str(root), "--output_dir", str(tmp_path / "o")])


@pytest.mark.parametrize(
    "task, metrics",
    [
        ("rte", ["accuracy"]),
        ("mrpc", ["f1", "accuracy"]),
        ("cola", ["matthews_correlation"]),
        ("stsb", ["pearson", "spearmanr"]),
    ],
)
def test_run_glue_on_a_glue_folder_reports_the_task_metric(task, metrics, tmp_path, tiny_model_dir):
    root = make_glue_data(tmp_path / "glue_data")
    results = run_glue.main(
        [
            "--model_name_or_path",
            tiny_model_dir,
            "--task_name",
            task,
            "--glue_dir",
            str(root),
            "--do_train",
            "--do_eval",
            *fast_args(tmp_path / "out"),
        ]
    )
    assert results["primary_metric"] == f"eval_{metrics[0]}" and results["eval_samples"] == 12
    assert all(f"eval_{metric}" in results for metric in metrics) and "eval_loss" in results
    assert results["train_samples"] == ROWS
