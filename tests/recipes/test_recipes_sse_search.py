"""run_glue --search_sse: Trainer.hyperparameter_search over SSE values, scored on a part carved from the training
file; the validation file is never read, and the chosen setting is printed and recorded."""

import json

import pytest
from datasets import Dataset

from recipe_helpers import fast_args, write_csv
from recipes import run_glue
from recipes.kit.sse_search import SearchArguments, carve_split, parse_grid

pytest.importorskip("optuna")


def test_search_scores_every_candidate_on_the_held_out_part(tiny_model_dir, sentiment_files, tmp_path, capsys):
    out = tmp_path / "search"
    # a validation file with a third label: the run would fail (or score 3 classes) if it used it
    validation = write_csv(tmp_path / "validation.csv", [{"sentence": "the plot was so-so.", "label": "neutral"}] * 8)
    argv = [
        "--model_name_or_path",
        tiny_model_dir,
        "--train_file",
        sentiment_files["train"],
        "--validation_file",
        validation,
        "--search_sse",
        '{"p": [0, 0.1, 0.3]}',
        "--search_held_out",
        "0.25",
        "--sse_seed",
        "2",
    ]
    record = run_glue.main(fast_args(out, *argv, steps=3))
    assert record == json.loads((out / "sse_search.json").read_text())
    assert [trial["sse_p"] for trial in record["candidates"]] == [0, 0.1, 0.3]
    assert record["metric"] == "eval_accuracy" and record["held_out_fraction"] == 0.25
    scores = {trial["sse_p"]: trial["eval_accuracy"] for trial in record["candidates"]}
    best = max(scores.values())
    assert record["chosen_score"] == best and scores[record["chosen"]["sse_p"]] == best
    assert record["chosen_options"] == f"--sse_p {json.dumps(record['chosen']['sse_p'])}"
    held_out = 16  # 25% of the 64 training rows
    for trial in record["candidates"]:
        assert trial["eval_accuracy"] * held_out == pytest.approx(round(trial["eval_accuracy"] * held_out))
    for number in range(3):  # each trial's own folder holds its p, with the base config's other fields
        config = json.loads((out / f"run-{number}" / "sse_config.json").read_text())
        assert config["seed"] == 2 and config["p"] in scores
    printed = capsys.readouterr().out
    assert f"chosen: {record['chosen_options']}" in printed and "sse_p=0.1  eval_accuracy=" in printed


def test_carved_split_is_reproducible_and_disjoint():
    data = Dataset.from_dict({"x": list(range(40))})
    train, held_out = carve_split(data, 0.25, seed=3)
    again_train, again_held_out = carve_split(data, 0.25, seed=3)
    assert list(held_out["x"]) == list(again_held_out["x"]) and list(train["x"]) == list(again_train["x"])
    assert len(held_out) == 10 and sorted([*train["x"], *held_out["x"]]) == list(range(40))
    assert list(carve_split(data, 0.25, seed=4)[1]["x"]) != list(held_out["x"])
    with pytest.raises(ValueError, match="holds out nothing"):
        carve_split(data.select(range(1)), 0.25, seed=3)


@pytest.mark.parametrize(
    "text, message",
    [
        ("p=0.1", r"--search_sse must be JSON text"),
        ("[0.1]", r"must map SSEConfig fields"),
        ('{"q": [0.1]}', r"'q', which is no SSEConfig field"),
        ('{"p": 0.1}', r"'p' needs a non-empty list"),
        ('{"p": [0.1, 2]}', r"p=2 is not a valid value.*SSEConfig.p must be in \[0, 1\]"),
    ],
)
def test_bad_search_options_are_clear_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_grid(text)


def test_bad_held_out_fraction_and_backend_are_clear_errors():
    with pytest.raises(ValueError, match=r"--search_held_out must be a fraction"):
        SearchArguments(search_sse='{"p": [0]}', search_held_out=1.0)
    with pytest.raises(ValueError, match=r"--search_backend must be optuna or ray"):
        SearchArguments(search_backend="grid")
