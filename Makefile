# Two commands do all the set-up on a fresh clone (they create .venv on first use):
#   make train   train the chapter-1 network [784, 30, 10] on MNIST, printing each epoch
#   make test    run the test suite
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: train test test-fast bench clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

train: $(STAMP)
	$(VENV)/bin/python -m experiments.ch1 --only 1a --seeds 1 --out results/train

test: $(STAMP)
	$(VENV)/bin/python -m pytest

# the inner loop: everything but the tests marked slow (chapter runs, notebooks, subprocess trials,
# end-to-end training checks, most cases of the gradient grids), with a persistent compilation cache
test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest -m "not slow"

bench: $(STAMP)
	$(VENV)/bin/python -m experiments.bench --out results

clean-venv:
	rm -rf $(VENV)
