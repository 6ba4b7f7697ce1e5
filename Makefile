# The two commands: `make run` (the main job on embedded defaults) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
QUESTION ?= How do durable agent systems avoid doing side effects twice when workers crash?

.PHONY: run test install lint up down clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,observe]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/deepsci demo --question "$(QUESTION)"

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
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
