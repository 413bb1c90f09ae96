# skyguard — the commands a newcomer needs:
#   make serve  train the default models if there are none, then serve on localhost:3000
#   make test   run the test suite
#   make demo   simulate all six survey domains at small N and draw the example PNGs
#   make docs   build the docs site (docs/, mkdocs.yml) into site/, strict
# Both create .venv and install pinned dependencies (requirements.lock) on first use.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DATA    ?= data/demo
N       ?= 300
PORT    ?= 3000
# the BentoML model store (bundles) lives in the git-ignored models/ folder; no usage tracking
export BENTOML_HOME ?= $(CURDIR)/models/bentoml
export BENTOML_DO_NOT_TRACK := true

.PHONY: demo test lint docs bench clean venv serve

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev,cpu]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/skyguard demo --n $(N) --out $(DATA)

# the README's main command: default bundles (quick recipes) if the store has none, example FITS
# cutouts in data/examples/, then the service on localhost:3000
serve: $(STAMP)
	$(BIN)/skyguard serve --host 127.0.0.1 --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# the docs site: the generated pages must be current (docs/gen/generate.py regenerates them),
# then mkdocs builds site/ and fails on any warning (a broken link or anchor, a page not in nav)
docs: $(STAMP)
	$(BIN)/python docs/gen/generate.py --check
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: $(STAMP)
	$(BIN)/python bench/simulate.py

clean:
	rm -rf $(VENV) data out site .pytest_cache
