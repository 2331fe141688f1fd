"""The package's surface: one version number, and a public namespace of what a user calls."""

from pathlib import Path

import sse_hf

ROOT = Path(__file__).resolve().parent.parent


def test_the_version_number_is_kept_in_one_place():
    from setuptools.config.pyprojecttoml import read_configuration

    text = (ROOT / "pyproject.toml").read_text()
    assert 'version = {attr = "sse_hf.__version__"}' in text and '\nversion = "' not in text
    assert read_configuration(ROOT / "pyproject.toml")["project"]["version"] == sse_hf.__version__


def test_the_namespace_exports_what_a_user_calls_and_one_path_per_name():
    assert sorted(sse_hf.__all__) == sorted(
        [
            "AlreadyPatchedError",
            "SSEArguments",
            "SSECallback",
            "SSEConfig",
            "SSEGraph",
            "SSEHandle",
            "best_sse_config",
            "get_handle",
            "patch_model",
            "sse_hp_space",
            "unpatch_model",
            "unwrap_model",
        ]
    )
    assert all(hasattr(sse_hf, name) for name in sse_hf.__all__)
    for internal in ("swap_uniform", "swap_graph", "swap_labels", "candidate_positions", "schedule_factor"):
        assert not hasattr(sse_hf, internal)  # one module down: sse_hf.sampling, sse_hf.schedule
    from sse_hf import patch

    assert "SSEHandle" not in patch.__all__ and "get_handle" not in patch.__all__  # SSEHandle lives in sse_hf.handle


def test_the_project_files_agree_with_the_package():
    """LICENSE is the license pyproject declares; CITATION.cff names the package's version and the paper."""
    import yaml
    from setuptools.config.pyprojecttoml import read_configuration

    project = read_configuration(ROOT / "pyproject.toml")["project"]
    assert project["license"] == "Apache-2.0" and "Apache License" in (ROOT / "LICENSE").read_text()
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["version"] == sse_hf.__version__ and citation["license"] == project["license"]
    assert "1905.10630" in citation["preferred-citation"]["url"]
    assert (ROOT / "CHANGELOG.md").read_text().startswith("# Changelog")


def test_the_library_tests_stand_alone_without_the_recipes_or_the_studies():
    """No test outside tests/recipes/ (nor a helper module or conftest beside them) imports `recipes`: a library
    test then runs in a checkout of the package alone."""
    import ast

    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not [n for n in names if n == "recipes" or n.startswith("recipes.")], (path.name, names)
