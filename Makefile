# Two commands on a fresh machine with only Python (>= 3.10): `make demo` and `make test`. While developing:
# `make test-fast` (the library tests alone, without the slow end-to-end ones), `make style` (ruff fixes and
# formats the tree) and `make quality` (ruff checks lint and format without changing anything, as CI does).
# Each makes a virtual environment in .venv inside the clone (reused when present), installs torch first
# (pinned; the CPU build by default), then this project with every extra the demo and the tests need.
#
#   make test                                                        # CPU torch
#   make test TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 # a CUDA build instead
#   make test TORCH_INDEX_URL=                                       # whatever PyPI's torch is (CUDA on Linux)
#   make test TORCH_SPEC="torch==2.14.1"                            # another torch version (untested here)

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu
EXTRAS ?= test,recipes

VENV_PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.sse-hf-installed
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1

.PHONY: demo test test-fast style quality install clean

demo: $(INSTALLED)
	$(OFFLINE) $(VENV_PYTHON) recipes/demo.py

test: $(INSTALLED)  # the README's test command
	$(OFFLINE) $(VENV_PYTHON) -m pytest -q

test-fast: $(INSTALLED)  # the tests not marked slow: the library's own, without recipes, trainers, search, compile
	$(OFFLINE) $(VENV_PYTHON) -m pytest -q -m "not slow"

style: $(INSTALLED)
	$(VENV_PYTHON) -m ruff check --fix .
	$(VENV_PYTHON) -m ruff format .

quality: $(INSTALLED)  # what .ci/run checks before the tests
	$(VENV_PYTHON) -m ruff check .
	$(VENV_PYTHON) -m ruff format --check .

install: $(INSTALLED)

$(VENV_PYTHON):
	$(PYTHON) -m venv $(VENV)

# Torch first, from its own index (only torch itself: its dependencies come from PyPI in the next step), so that
# the project's install finds it; torch is named again there so that pip keeps it at the pinned version.
$(INSTALLED): pyproject.toml Makefile | $(VENV_PYTHON)
	$(VENV_PYTHON) -m pip install --quiet --upgrade pip
	$(VENV_PYTHON) -m pip install --quiet --no-deps "$(TORCH_SPEC)" $(if $(TORCH_INDEX_URL),--extra-index-url $(TORCH_INDEX_URL))
	$(VENV_PYTHON) -m pip install --quiet "$(TORCH_SPEC)" -e ".[$(EXTRAS)]"
	$(VENV_PYTHON) -c "import torch; print('torch', torch.__version__, '| CUDA available:', torch.cuda.is_available())"
	touch $(INSTALLED)

clean:
	rm -rf $(VENV)
