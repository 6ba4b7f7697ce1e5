# The two commands: `make run` (the main job on embedded defaults) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
QUESTION ?= How do durable agent systems avoid doing side effects twice when workers crash?

.PHONY: run test install lint up down clean bench realworld unseen

# Real-world documents nobody here wrote, for the parsing tests and bench/ingest.py: the PDFs that
# pypdf's source distribution carries (BSD-3-Clause) and the saved web pages of trafilatura's
# (Apache-2.0), fetched through pip at pinned versions into a gitignored folder (see docs/failure-modes.md).
REALWORLD := $(VENV)/realworld
REALWORLD_STAMP := $(REALWORLD)/.done

$(STAMP): pyproject.toml
	@echo "[1/3] creating $(VENV)"
	$(PY) -m venv $(VENV)
	@echo "[2/3] upgrading pip"
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "[3/3] installing deepscientist and its dependencies (a few minutes: the trace backend is large; pip prints each package)"
	$(BIN)/python -m pip install --progress-bar on -e '.[test,observe]'
	touch $(STAMP)
	@echo "installed: $(BIN)/deepsci"

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

# The unseen eval corpus of evals/datasets/celery_docs.json: 21 chapters of Celery's user manual
# (Creative Commons Attribution-ShareAlike 4.0, Ask Solem and contributors; the software is
# BSD-3-Clause) from its pinned source distribution, turned into PDF, HTML and Markdown by
# evals/build_unseen.py (same bytes every install) in a gitignored folder (see docs/models.md).
UNSEEN := $(VENV)/unseen
UNSEEN_STAMP := $(UNSEEN)/.done

$(UNSEEN_STAMP): evals/build_unseen.py | $(STAMP)
	rm -rf $(UNSEEN) && mkdir -p $(UNSEEN)/dl
	$(BIN)/python -m pip download --quiet --no-deps --no-binary :all: -d $(UNSEEN)/dl celery==5.4.0
	echo "504a19140e8d3029d5acad88330c541d4c3f64c789d85f94756762d8bca7e706  $(UNSEEN)/dl/celery-5.4.0.tar.gz" \
		| sha256sum -c --quiet
	$(BIN)/python -m evals.build_unseen $(UNSEEN)/dl/celery-5.4.0.tar.gz $(UNSEEN)/celery-docs
	rm -rf $(UNSEEN)/dl
	touch $@

unseen: $(UNSEEN_STAMP)

install: $(STAMP) $(REALWORLD_STAMP) $(UNSEEN_STAMP)

run: $(STAMP)
	$(BIN)/deepsci demo --question "$(QUESTION)"

test: $(STAMP) $(REALWORLD_STAMP) $(UNSEEN_STAMP)
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
