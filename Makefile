# The README's two commands: `make book` (the main job) and `make test` (the test suite).
# Both create the virtual environment in .venv on first use and reuse it afterwards.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU build of torch that lies on this machine's disk. GPU users: see README ("GPU").
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: env book test clean

env: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[book,dev]"
	touch $@

book: $(STAMP)
	$(BIN)/python -m histgan.book

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf _build book/executed runs/main
