# skyguard — the two commands a newcomer needs:
#   make demo   simulate all six survey domains at small N and draw the example PNGs
#   make test   run the test suite
# Both create .venv and install pinned dependencies (requirements.lock) on first use.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DATA    ?= data/demo
N       ?= 300
# the BentoML model store (bundles) lives in the git-ignored models/ folder; no usage tracking
export BENTOML_HOME ?= $(CURDIR)/models/bentoml
export BENTOML_DO_NOT_TRACK := true

.PHONY: demo test lint bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev,cpu]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/skyguard demo --n $(N) --out $(DATA)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python bench/simulate.py

clean:
	rm -rf $(VENV) data out .pytest_cache
