"""docs/examples: the scripts the README shows run as printed, here on a tiny model offline."""

import dataclasses
import importlib.util
import pathlib
import re
import textwrap

import pytest
from transformers import HfArgumentParser, TrainingArguments

from recipe_helpers import fast_args, sentiment_rows, write_csv
from sse_hf import SSEArguments, SSECallback, SSEConfig

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def readme_block(heading: str) -> str:
    """The first python code block under a README heading."""
    text = (ROOT / "README.md").read_text()
    return re.search(r"```python\n(.*?)```", text[text.index(heading) :], re.S).group(1)


@pytest.fixture
def train_file(tmp_path):
    rows = [{"sentence": row["sentence"], "label": int(row["label"] == "positive")} for row in sentiment_rows(32)]
    return write_csv(tmp_path / "train.csv", rows)


def _sse_callbacks(trainer):
    return [cb for cb in trainer.callback_handler.callbacks if isinstance(cb, SSECallback)]


def test_own_script_trains_with_the_sse_options_it_was_given(tiny_model_dir, train_file, tmp_path):
    out = tmp_path / "out"
    argv = [
        "--model_name_or_path",
        tiny_model_dir,
        "--train_file",
        train_file,
        "--seed",
        "5",
        "--sse_seed",
        "3",
        "--sse_p",
        "0.3",
        "--sse_table_p",
        '{"token_type_embeddings": 0.5}',
        "--logging_steps",
        "1",
    ]
    trainer = _load("own_script").main(fast_args(out, *argv, steps=3))
    (callback,) = _sse_callbacks(trainer)
    expected = SSEConfig(p=0.3, seed=3, table_p={"token_type_embeddings": 0.5})
    assert callback.config == expected and trainer.args.seed == 5  # --seed and --sse_seed are two options
    assert SSEConfig.from_pretrained(out) == expected
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 3 and all(entry["sse/p"] == 0.3 for entry in logs)
    assert callback.stats()["input"]["tokens_swapped"] > 0
    assert callback.stats()["bert.embeddings.token_type_embeddings"]["tokens_swapped"] > 0


@pytest.mark.parametrize("switch", [["--sse", "False"], ["--sse_p", "0"]])
def test_own_script_trains_the_plain_baseline_when_sse_is_off(tiny_model_dir, train_file, tmp_path, switch):
    argv = ["--model_name_or_path", tiny_model_dir, "--train_file", train_file, *switch]
    trainer = _load("own_script").main(fast_args(tmp_path / "out", *argv, steps=1))
    assert _sse_callbacks(trainer) == [] and not (tmp_path / "out" / "sse_config.json").exists()


def test_the_readme_shows_the_lines_of_the_tested_script():
    block = readme_block("### In your own script")
    script = (EXAMPLES / "own_script.py").read_text()
    lines = [line.strip() for line in block.splitlines() if line.strip() not in ("", "...")]
    assert lines.pop(0).startswith("# A sketch")  # the block says what it is; the rest are the script's lines
    assert len(lines) >= 3 and all(line in script for line in lines), [line for line in lines if line not in script]


def test_sse_arguments_beside_training_arguments():
    parser = HfArgumentParser((TrainingArguments, SSEArguments))
    training, sse = parser.parse_args_into_dataclasses(
        args=[
            "--output_dir",
            "x",
            "--seed",
            "1",
            "--sse_seed",
            "2",
            "--sse_p_schedule",
            "cosine",
            "--sse_exclude_token_ids",
            "5",
            "6",
        ]
    )
    assert training.seed == 1 and sse.to_config() == SSEConfig(seed=2, p_schedule="cosine", exclude_token_ids=[5, 6])
    assert sse.is_active() and [type(cb) for cb in sse.callbacks()] == [SSECallback]
    help_text = parser.format_help()
    assert "Stochastic Shared Embeddings (SSE) options" in help_text and "--sse_table_p" in help_text
    twins = {f.name: f for f in dataclasses.fields(SSEArguments)}
    assert (
        twins["sse_p"].metadata["help"]
        == next(f for f in dataclasses.fields(SSEConfig) if f.name == "p").metadata["help"]
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--sse_p", "1.5"], r"^argument --sse_p: must be in \[0, 1\], got 1.5"),
        (["--sse_table_p", "{token_type_embeddings: 0.5}"], r"^argument --sse_table_p: .* is not valid JSON text"),
    ],
)
def test_bad_sse_options_are_errors_naming_them(argv, message):
    with pytest.raises(ValueError, match=message):  # as they are parsed, naming the option typed
        HfArgumentParser(SSEArguments).parse_args_into_dataclasses(args=argv)


def test_a_bad_enumerated_option_is_refused_by_the_parser_and_by_the_config(capsys):
    """p_schedule is a Literal: argparse refuses other values on the command line, naming the option and the
    choices; values that bypass argparse (a JSON arguments file, code) meet SSEConfig's own check."""
    with pytest.raises(SystemExit):
        HfArgumentParser(SSEArguments).parse_args_into_dataclasses(args=["--sse_p_schedule", "sideways"])
    error = capsys.readouterr().err
    assert "--sse_p_schedule" in error and "invalid choice: 'sideways'" in error and "cosine" in error
    with pytest.raises(ValueError, match=r"argument --sse_p_schedule: must be one of"):
        HfArgumentParser(SSEArguments).parse_dict({"sse_p_schedule": "sideways"})


def test_choose_p_example_searches_p_and_saves_the_best_trials_config(tmp_path):
    best, chosen = _load("choose_p").main(str(tmp_path))
    assert sorted(SSEConfig.from_pretrained(tmp_path / f"run-{n}").p for n in range(4)) == [0.0, 0.05, 0.1, 0.2]
    assert chosen.p == best.hyperparameters["sse_p"]
    assert SSEConfig.from_pretrained(tmp_path) == chosen == SSEConfig.from_pretrained(tmp_path / f"run-{best.run_id}")


def test_the_readme_shows_the_tested_search():
    """The block's imports are the example's; its body is the body of choose_p.main, shown at the top level."""
    lines = readme_block("### Choosing p").splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.strip() and not line.startswith(("#", "import", "from")))
    header, body = lines[:start], "".join(lines[start:])
    script = (EXAMPLES / "choose_p.py").read_text()

    def imported(text: str) -> set[str]:
        found = set(re.findall(r"^import (\w+)", text, re.M))
        for module, names in re.findall(r"^from ([\w.]+) import (.+)$", text, re.M):
            found |= {f"{module}.{name.strip()}" for name in names.split(",")}
        return found

    assert imported("".join(header)) and imported("".join(header)) <= imported(script)
    assert textwrap.indent(body, "    ") in script
