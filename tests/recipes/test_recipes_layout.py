"""The recipes live in the clone, not in site-packages: the wheel ships the library alone, and the scripts run from
any folder, importing `recipes.*` from the clone they sit in."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import tomllib
from setuptools import find_packages

from recipe_helpers import RECIPES, REPO

SCRIPTS = ("run_glue.py", "run_mlm.py", "demo.py")


def _env_without_pythonpath() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH"} | {"HF_HUB_OFFLINE": "1"}


def test_the_package_ships_the_library_and_no_top_level_recipes():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    shipped = find_packages(where=str(REPO), include=config["include"])
    assert "sse_hf" in shipped
    assert all(name == "sse_hf" or name.startswith("sse_hf.") for name in shipped), shipped
    assert not any(name.split(".")[0] == "recipes" for name in shipped)


def _python(cwd, *args: str) -> subprocess.CompletedProcess:
    """Run this Python on `args` in `cwd`, with no PYTHONPATH to find the clone by; it must succeed."""
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=_env_without_pythonpath(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_a_recipe_runs_as_a_script_from_another_folder(tmp_path):
    done = _python(tmp_path, str(RECIPES / "run_glue.py"), "--help")
    assert "--sse_p" in done.stdout and "--model_name_or_path" in done.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_script_imports_the_recipes_of_its_own_clone(tmp_path, script):
    """As `python recipes/<script>` sets it up (sys.path[0] is recipes/): `recipes` resolves to this clone."""
    path = RECIPES / script
    code = (
        "import runpy, sys\n"
        f"sys.path[0] = {str(RECIPES)!r}; sys.argv = [{str(path)!r}, '--help']\n"
        "try:\n"
        f"    runpy.run_path({str(path)!r}, run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('recipes from', sys.modules['recipes'].__file__)\n"
    )
    done = _python(tmp_path, "-c", code)
    assert f"recipes from {RECIPES / '__init__.py'}" in done.stdout
