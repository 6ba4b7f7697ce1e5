# The two commands: `make run` (the main job on embedded defaults) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
QUESTION ?= How do durable agent systems avoid doing side effects twice when workers crash?

.PHONY: run test install lint up down clean realworld

# Real-world documents nobody here wrote, for the parsing tests and bench/ingest.py: the PDFs that
# pypdf's source distribution carries (BSD-3-Clause) and the saved web pages of trafilatura's
# (Apache-2.0), fetched through pip at pinned versions into a gitignored folder (see docs/failure-modes.md).
REALWORLD := $(VENV)/realworld
REALWORLD_STAMP := $(REALWORLD)/.done

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(REALWORLD_STAMP): | $(STAMP)
	rm -rf $(REALWORLD) && mkdir -p $(REALWORLD)/dl $(REALWORLD)/pdf $(REALWORLD)/html
	$(BIN)/python -m pip download --quiet --no-deps --no-binary :all: -d $(REALWORLD)/dl \
		pypdf==7.1.1 trafilatura==2.3.1
	tar -xzf $(REALWORLD)/dl/pypdf-7.1.1.tar.gz -C $(REALWORLD)/pdf --strip-components=2 --wildcards \
		--exclude='*/issue-604.pdf' --exclude='*/fontsampler.pdf' 'pypdf-7.1.1/resources/*.pdf'
	tar -xzf $(REALWORLD)/dl/trafilatura-2.3.1.tar.gz -C $(REALWORLD)/html --strip-components=3 --wildcards \
		'trafilatura-2.3.1/tests/resources/*.html'
	rm -rf $(REALWORLD)/dl
	touch $@

realworld: $(REALWORLD_STAMP)

install: $(STAMP) $(REALWORLD_STAMP)

run: $(STAMP)
	$(BIN)/deepsci demo --question "$(QUESTION)"

test: $(STAMP) $(REALWORLD_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .

up: $(STAMP)
	$(BIN)/deepsci up

down: $(STAMP)
	$(BIN)/deepsci down

clean:
	-$(BIN)/deepsci down
	rm -rf .deepsci
