"""The README's quickstart is code users paste: it must run offline as written."""

import pathlib
import re
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
