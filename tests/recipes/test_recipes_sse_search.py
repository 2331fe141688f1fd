"""run_glue --search_sse: Trainer.hyperparameter_search over SSE values, scored on a part carved from the training
file; the validation file is never read, and the chosen setting is printed and recorded."""

import json
import shlex

import pytest
from datasets import Dataset
from transformers import HfArgumentParser, TrainingArguments

from recipe_helpers import fast_args, sentiment_rows, write_csv
from recipes import run_glue
from recipes.kit.sse_search import SearchArguments, carve_split, parse_grid
from sse_hf import SSEArguments, SSEConfig

pytest.importorskip("optuna")


def _parsed(options: str) -> SSEConfig:
    """The SSEConfig that printed `--sse_*` options give back through the --sse_* parser."""
    (arguments,) = HfArgumentParser(SSEArguments).parse_args_into_dataclasses(shlex.split(options))
    return arguments.to_config()


def _search(tiny_model_dir, train_file, out, *extra, steps=2):
    return run_glue.main(
        fast_args(out, "--model_name_or_path", tiny_model_dir, "--train_file", train_file, *extra, steps=steps)
    )


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
    assert _parsed(record["chosen_options"]) == SSEConfig(seed=2, p=record["chosen"]["sse_p"])
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
        ('{"p": [0.1, 2]}', r"combination p=2 is no valid SSE setting.*SSEConfig.p must be in \[0, 1\]"),
        ('{"p": [0.1, 0.1]}', r"p lists 0.1 twice"),
        ('{"seed": [1, 1.0]}', r"seed lists 1.0 twice"),
        ('{"table_p": ["{bad"]}', r"--search_sse: sse_table_p='\{bad' is not valid JSON text"),
        ('{"graph_k": [3, 5]}', r"graph_k changes nothing in any candidate \(.*'knn' only\)"),
        ('{"seed": [null, 1], "p": [0]}', r"seed changes nothing in any candidate \(every swap probability"),
        (
            '{"p_schedule": ["constant", "linear_warmup"]}',
            r"combination p_schedule='linear_warmup' is no valid SSE setting.*p_warmup_ratio > 0",
        ),
    ],
)
def test_bad_search_options_are_clear_errors(text, message):
    with pytest.raises(ValueError, match=message):
        SearchArguments(search_sse=text).candidates(SSEConfig())


def test_bad_held_out_fraction_and_backend_are_clear_errors():
    with pytest.raises(ValueError, match=r"--search_held_out must be a fraction"):
        SearchArguments(search_sse='{"p": [0]}', search_held_out=1.0)
    with pytest.raises(ValueError, match=r"--search_backend must be optuna or ray"):
        SearchArguments(search_backend="grid")


def test_a_grid_is_checked_together_with_the_sse_options():
    search = SearchArguments(search_sse='{"p_schedule": ["linear_warmup", "cosine"]}')
    configs = search.candidates(SSEConfig(p_warmup_ratio=0.1))  # each value alone would need p_warmup_ratio > 0
    assert configs == [SSEConfig(p_schedule=s, p_warmup_ratio=0.1) for s in ("linear_warmup", "cosine")]
    assert parse_grid('{"table_p": ["{\\"token_type_embeddings\\": 0.1}"]}') == {
        "table_p": [{"token_type_embeddings": 0.1}]
    }


def test_an_sse_option_that_every_candidate_overrides_is_refused():
    search = SearchArguments(search_sse='{"p": [0, 0.1]}')
    with pytest.raises(ValueError, match=r"--sse_p 0.3 would do nothing: --search_sse sets p in every candidate"):
        search.candidates(SSEConfig(p=0.3))
    assert len(search.candidates(SSEConfig(seed=3))) == 2


@pytest.mark.parametrize("option", [["--search_held_out", "0.3"], ["--search_backend", "ray"]])
def test_search_options_without_search_sse_are_refused(option):
    with pytest.raises(ValueError, match=rf"{option[0]} {option[1]} set how --search_sse searches, but no"):
        HfArgumentParser(SearchArguments).parse_args_into_dataclasses(option)


def test_held_out_part_that_cannot_score_the_metric_is_refused():
    from recipes.kit.sse_search import check_held_out

    with pytest.raises(ValueError, match=r"holds out 2 rows .* too few to score eval_pearson \(it needs at least 3\)"):
        check_held_out(Dataset.from_dict({"labels": [0.5, 1.0]}), "eval_pearson", 0.05)
    with pytest.raises(ValueError, match=r"holds out 1 row .* eval_accuracy \(it needs at least 2\)"):
        check_held_out(Dataset.from_dict({"labels": [1]}), "eval_accuracy", 0.05)
    with pytest.raises(ValueError, match=r"The 4 held-out rows .* all have the same label, so eval_spearmanr"):
        check_held_out(Dataset.from_dict({"labels": [2.0] * 4}), "eval_spearmanr", 0.2)
    check_held_out(Dataset.from_dict({"labels": [1, 1]}), "eval_accuracy", 0.2)  # a score, if a coarse one


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--sse", "False", "--search_sse", '{"label_p": [0, 0.1]}'], r"--sse False turns SSE off, but --search_sse"),
        (["--search_sse", '{"graph_k": [3, 5]}'], r"--search_sse: graph_k changes nothing"),
        (  # was: switched off without a word (and with --do_eval alone, no output-folder check)
            ["--do_eval", "--do_predict", "--search_sse", '{"p": [0, 0.1]}'],
            r"--do_eval and --do_predict with --search_sse: a search scores its candidates on the part it carves",
        ),
        (  # a regression file: 1 held-out row has no correlation (was NaN, then "No trials are completed yet")
            ["--search_sse", '{"p": [0, 0.1]}', "--search_held_out", "0.01", "--label_column_name", "score"],
            r"--search_held_out 0.01 holds out 1 row of the training data, too few to score eval_pearson",
        ),
    ],
)
def test_searches_that_cannot_work_are_refused_before_the_first_trial(
    tiny_model_dir, sentiment_files, tmp_path, extra, message
):
    rows = [{"sentence": r["sentence"], "score": float(i % 5)} for i, r in enumerate(sentiment_rows(64, seed=1))]
    train = sentiment_files["train"] if "score" not in extra else write_csv(tmp_path / "scores.csv", rows)
    with pytest.raises(ValueError, match=message):
        _search(tiny_model_dir, train, tmp_path / "out", *extra)
    assert not (tmp_path / "out" / "run-0").exists()


def test_evaluations_during_training_give_one_candidate_per_trial(tiny_model_dir, sentiment_files, tmp_path):
    out = tmp_path / "search"
    extra = ["--do_train", "--eval_strategy", "steps", "--eval_steps", "1", "--search_sse", '{"p": [0, 0.1]}']
    record = _search(tiny_model_dir, sentiment_files["train"], out, *extra)
    assert [trial["sse_p"] for trial in record["candidates"]] == [0, 0.1]  # was 4 entries: one per evaluation
    for trial in record["candidates"]:
        assert [e["step"] for e in trial["evaluations"]] == [1, 2]
        assert trial["eval_accuracy"] == trial["evaluations"][-1]["eval_accuracy"]  # the search's objective
    assert record["chosen_score"] == max(trial["eval_accuracy"] for trial in record["candidates"])


def test_none_list_and_dict_candidates_reach_the_record_and_the_options_parse_back(
    tiny_model_dir, sentiment_files, tmp_path
):
    out = tmp_path / "search"
    grid = {"seed": [None, 1], "table_p": [{"token_type_embeddings": 0.1}], "exclude_token_ids": [[20]]}
    record = _search(tiny_model_dir, sentiment_files["train"], out, "--search_sse", json.dumps(grid))
    assert record == json.loads((out / "sse_search.json").read_text())
    assert [{k: v for k, v in t.items() if k.startswith("sse_")} for t in record["candidates"]] == [
        {"sse_seed": seed, "sse_table_p": {"token_type_embeddings": 0.1}, "sse_exclude_token_ids": [20]}
        for seed in (None, 1)
    ]
    chosen = {name.removeprefix("sse_"): value for name, value in record["chosen"].items()}
    assert _parsed(record["chosen_options"]) == SSEConfig(**chosen)
    for number in range(2):
        assert json.loads((out / f"run-{number}" / "sse_config.json").read_text())["exclude_token_ids"] == [20]


def test_a_tie_goes_to_the_smallest_p_and_says_so(tiny_model_dir, sentiment_files, tmp_path, capsys):
    out = tmp_path / "search"
    # learning rate 0: every candidate ends with the same weights, so all score the same
    extra = ["--learning_rate", "0", "--search_sse", '{"p": [0.1, 0, 0.05]}']
    record = _search(tiny_model_dir, sentiment_files["train"], out, *extra)
    assert len({trial["eval_accuracy"] for trial in record["candidates"]}) == 1
    assert record["chosen"] == {"sse_p": 0} and record["tied_with"] == [{"sse_p": 0.1}, {"sse_p": 0.05}]
    assert _parsed(record["chosen_options"]) == SSEConfig(p=0)
    printed = capsys.readouterr().out
    assert "tie: 3 candidates scored eval_accuracy" in printed and "the smallest p (p = 0 first)" in printed


def test_metric_for_best_model_is_what_the_search_scores(tiny_model_dir, sentiment_files, tmp_path):
    extra = ["--metric_for_best_model", "loss", "--search_sse", '{"p": [0, 0.3]}']
    record = _search(tiny_model_dir, sentiment_files["train"], tmp_path / "search", *extra)
    assert record["metric"] == "eval_loss" and record["direction"] == "minimize"  # was eval_accuracy, maximised
    assert record["chosen_score"] == min(trial["eval_loss"] for trial in record["candidates"])


def test_a_search_into_a_folder_with_a_checkpoint_is_refused(tiny_model_dir, sentiment_files, tmp_path):
    out = tmp_path / "trained"
    (out / "checkpoint-3").mkdir(parents=True)  # a training run's checkpoint, which the search would not resume
    with pytest.raises(ValueError, match=r"trains every candidate from the start, so the checkpoint .*checkpoint-3"):
        _search(tiny_model_dir, sentiment_files["train"], out, "--search_sse", '{"p": [0, 0.1]}')
    assert sorted(path.name for path in out.iterdir()) == ["checkpoint-3"]


def test_a_trial_without_a_score_stops_the_search_naming_it():
    from transformers import TrainerState

    from recipes.kit.sse_search import _Scores

    scores, state = _Scores("eval_pearson", 5), TrainerState(global_step=4)
    state.trial_params = {"sse_p": 0.1}
    scores.on_train_begin(None, state, None)
    with pytest.raises(ValueError, match=r"\{'sse_p': 0.1\} scored eval_pearson=nan on the 5 held-out rows at step 4"):
        scores.on_evaluate(None, state, None, metrics={"eval_pearson": float("nan")})
    scores.metric = "eval_f2"  # e.g. --metric_for_best_model f2
    with pytest.raises(ValueError, match=r"scores eval_f2, but the evaluation gives \['eval_loss'\]"):
        scores.on_evaluate(None, state, None, metrics={"eval_loss": 0.5})


def test_an_option_idle_alone_but_acting_in_a_candidate_is_not_warned_about_and_one_idle_in_all_is(recwarn):
    """Under --search_sse the options are judged per candidate: a warm-up ratio with a searched linear_warmup
    schedule acts in one candidate (no warning); graph_k with no graph in any candidate does nothing (a warning)."""
    from recipes.kit import run_setup

    argv = ["--output_dir", "unused", "--sse_p_warmup_ratio", "0.1"]
    search = ["--search_sse", '{"p_schedule": ["linear_warmup", "cosine"]}']
    sse_args, search_args, _ = run_setup.parse_args(
        [SSEArguments, SearchArguments, TrainingArguments], [*argv, *search]
    )
    assert not [w for w in recwarn if "do nothing" in str(w.message)]
    assert len(search_args.candidates(sse_args.to_config(), sse_args.sse)) == 2
    assert not [w for w in recwarn if "do nothing" in str(w.message)]
    with pytest.warns(UserWarning, match=r"do nothing under the others given: --sse_p_warmup_ratio"):
        run_setup.parse_args([SSEArguments, SearchArguments, TrainingArguments], argv)
    with pytest.warns(UserWarning, match=r"do nothing in any --search_sse candidate: --sse_graph_k 5"):
        SearchArguments(search_sse='{"p": [0.05, 0.1]}').candidates(SSEConfig(graph_k=5))
