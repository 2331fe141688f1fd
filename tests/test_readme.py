"""The README's quickstart is code users paste: it must run offline as written."""

import os
import pathlib
import re
import subprocess
import sys
import warnings

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
