"""The README's quickstart is code users paste: it must run offline as written."""

import os
import pathlib
import re
import subprocess
import sys
import warnings

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_quickstart_runs_and_swaps():
    text = README.read_text()
    section = text[text.index("## Quickstart") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, "README quickstart", "exec"), namespace)
    handle = namespace["handle"]
    assert not handle.is_attached
    assert handle.stats()["input"]["tokens_seen"] == 256 and 0 < handle.swap_rate < 0.3


def test_readme_test_command_is_what_ci_runs():
    command = re.search(r"## Tests\n\n```bash\n(.*?)\n```", README.read_text(), re.S).group(1).strip()
    ci = (README.parent / ".ci" / "run").read_text()
    assert command in ci.splitlines()


def test_quickstart_prints_what_the_readme_shows_and_no_warning():
    """Run as a newcomer would: the block alone, in a fresh process, offline; its output is the README's, exactly."""
    section = README.read_text()[README.read_text().index("## Quickstart") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    shown = re.search(r"```text\n(.*?)```", section, re.S).group(1)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONWARNINGS": "default"}
    done = subprocess.run([sys.executable, "-c", code], cwd=README.parent, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == shown
    assert "Warning" not in done.stderr, done.stderr


# ----- every python block of the README runs as printed, given what its first line says it assumes -----------

EXAMPLES = README.parent / "docs" / "examples"


def python_blocks() -> list[tuple[str, str]]:
    """(the heading above it, the code) of every python block of the README, in order."""
    text = README.read_text()
    blocks = []
    for match in re.finditer(r"```python\n(.*?)```", text, re.S):
        heading = re.findall(r"^#+ (.*)$", text[: match.start()], re.M)[-1]
        blocks.append((heading, match.group(1)))
    return blocks


def assumed_names(code: str) -> list[str]:
    """The names a block's opening comment says it assumes (`name` in backquotes after '# Assumes'), else none."""
    lines = code.splitlines()
    if not lines[0].startswith("# Assumes"):
        return []
    comment = "\n".join(line for line in lines[: next(i for i, l in enumerate(lines) if not l.startswith("#"))])
    return re.findall(r"`(\w+)`", comment.split("docs/examples")[0])


def _tokenizer(tmp_path):
    import transformers

    from tiny_models import VOCAB

    (tmp_path / "vocab.txt").write_text("\n".join([*VOCAB, "fine"]) + "\n")
    return transformers.BertTokenizer.from_pretrained(str(tmp_path))


def _training_namespace(tmp_path) -> dict:
    """What the Trainer blocks assume: a tiny BERT, its tokenizer, TrainingArguments and a tokenized dataset."""
    from transformers import TrainingArguments

    from tiny_models import tiny_bert

    tok = _tokenizer(tmp_path)
    encoded = tok(["the movie was good", "the plot was dull and bad"] * 4, padding="max_length", max_length=12)
    train = [{**{k: v[i] for k, v in encoded.items()}, "labels": i % 2} for i in range(8)]
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=4, report_to=[], use_cpu=True
    )
    return {"model": tiny_bert(vocab_size=len(tok)), "tok": tok, "args": args, "train": train}


def _sentence_transformers_namespace(tmp_path) -> dict:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer import losses

    from tiny_models import tiny_sentence_transformer

    st_model = tiny_sentence_transformer(tmp_path / "st")
    sentences = ["the movie was good", "the film was great", "the plot was dull", "the acting was bad"]
    args = SentenceTransformerTrainingArguments(output_dir=str(tmp_path / "out"), max_steps=1, report_to="none")
    pairs = Dataset.from_dict({"anchor": sentences, "positive": sentences[1:] + sentences[:1]})
    return {"st_model": st_model, "args": args, "pairs": pairs, "loss": losses.MultipleNegativesRankingLoss(st_model)}


def _search_namespace(tmp_path) -> dict:
    import importlib.util

    from transformers import TrainingArguments

    spec = importlib.util.spec_from_file_location("choose_p", EXAMPLES / "choose_p.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    args = TrainingArguments(
        output_dir=str(tmp_path / "search"), max_steps=2, per_device_train_batch_size=8, report_to=[], use_cpu=True
    )
    return {
        "model_init": example.model_init,
        "tok": example.tiny_tokenizer(),
        "args": args,
        "train_split": example.tiny_data(16, seed=0),
        "held_out": example.tiny_data(8, seed=1),
        "output_dir": str(tmp_path / "chosen"),
    }


def _graph_namespace(tmp_path) -> dict:
    from tiny_models import tiny_bert

    (tmp_path / "synonyms.tsv").write_text("good\tgreat\nmovie\tfilm\n")
    tok = _tokenizer(tmp_path)
    return {"model": tiny_bert(vocab_size=len(tok)), "tok": tok}


NAMESPACES = {  # the names a block assumes -> how the test builds them, tiny and offline
    ("model", "tok", "args", "train"): _training_namespace,
    ("st_model", "args", "pairs", "loss"): _sentence_transformers_namespace,
    ("model_init", "tok", "args", "train_split", "held_out", "output_dir"): _search_namespace,
    ("model", "tok"): _graph_namespace,
}


def test_every_python_block_is_whole_says_what_it_assumes_or_is_a_marked_sketch():
    for heading, code in python_blocks():
        first = code.splitlines()[0]
        if first.startswith("# A sketch"):
            assert "docs/examples/" in first, heading  # a sketch names the whole script that is tested
            continue
        names = assumed_names(code)
        assert not first.startswith("# Assumes") or tuple(names) in NAMESPACES, (heading, names)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_every_python_block_runs_as_printed(index, tmp_path, monkeypatch, recwarn):
    """Each block in a fresh namespace holding only what its first line says it assumes (built tiny, offline),
    from a folder of its own (or the clone's root, where the block says so); no warning about a missing
    tokenizer."""
    heading, code = python_blocks()[index]
    if code.startswith("# A sketch"):
        pytest.skip(f"{heading}: a sketch; its whole script is run by tests/test_examples.py")
    names = tuple(assumed_names(code))
    namespace = NAMESPACES[names](tmp_path) if names else {}
    monkeypatch.chdir(README.parent if "clone's root" in code.splitlines()[0] else tmp_path)
    exec(compile(code, f"README: {heading}", "exec"), namespace)
    assert not [w for w in recwarn if "tokenizer" in str(w.message).lower()], heading
