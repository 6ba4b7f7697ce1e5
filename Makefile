# The two commands: `make run` (the main job on embedded defaults) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
QUESTION ?= How do durable agent systems avoid doing side effects twice when workers crash?

.PHONY: run test install lint up down clean bench

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

# Benchmarks at a small size (minutes on a shared 2-core machine); each writes its JSON line under
# docs/bench/ and bench/plot.py redraws the plots docs/performance.md shows.
BENCH_OUT := docs/bench
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	mkdir -p $(BENCH_OUT)
	$(BIN)/python bench/overhead.py --rounds 3 --questions 1 --sub-questions 2 > $(BENCH_OUT)/overhead.json
	$(BIN)/python bench/parked.py --runs 100 --max-cached 20 > $(BENCH_OUT)/parked-bounded.json
	$(BIN)/python bench/parked.py --runs 100 --max-cached -1 > $(BENCH_OUT)/parked-stock.json
	$(BIN)/python bench/embedding.py --chunks 16 --repeat 1 > $(BENCH_OUT)/embedding.json
	$(BIN)/python bench/chaos.py --trials 2 --targets activity:fetch_parse --sub-questions 1 --json \
		> $(BENCH_OUT)/chaos.json
	$(BIN)/python bench/plot.py $(BENCH_OUT)
