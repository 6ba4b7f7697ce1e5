# The two commands: `make run` (the main job on embedded defaults) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
QUESTION ?= How do durable agent systems avoid doing side effects twice when workers crash?

.PHONY: run test install lint up down clean

$(STAMP): pyproject.toml
	@echo "[1/3] creating $(VENV)"
	$(PY) -m venv $(VENV)
	@echo "[2/3] upgrading pip"
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "[3/3] installing deepscientist and its dependencies (about 1-2 min; pip prints each package)"
	$(BIN)/python -m pip install --progress-bar on -e '.[test]'
	touch $(STAMP)
	@echo "installed: $(BIN)/deepsci"

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
