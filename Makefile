# The two commands a newcomer needs: `make demo` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
UV_VERSION := $(shell sed -n 's/^uv==//p' constraints.txt)
export AIRFLOW_HOME ?= $(CURDIR)/build/airflow

.PHONY: install bytecode test lint unit e2e chromium demo bench bench-e2e bench-bulk-task sandbox constraints clean docs dist dist-check readme

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip install -q --python $(BIN)/python -c constraints.txt -e ".[openlineage]" --group test --group release --group docs
	@# pip byte-compiles what it installs, uv does not: without this (and with PYTHONDONTWRITEBYTECODE set,
	@# as on some CI machines) every Airflow process compiles thousands of modules again (import airflow.sdk:
	@# 5.5 s instead of 2.2 s), which is not what a deployment runs and loads the machine the tests time.
	@$(BIN)/python -m compileall -q -j 0 $$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') > /dev/null || true
	@touch $(STAMP)

# Our own sources change between runs: compile them (only what changed) before anything starts Airflow.
bytecode: install
	@$(BIN)/python -m compileall -q -j 0 airflow_provider_prefs dags_examples tests benchmarks > /dev/null

install: $(STAMP)

lint: install
	$(BIN)/ruff check airflow_provider_prefs tests dags_examples benchmarks scripts
	$(BIN)/mypy

unit: bytecode chromium
	$(BIN)/python -m pytest

# The browser check drives Debian's Chromium through Playwright (never `playwright install`).
CHROMIUM ?= /usr/bin/chromium
chromium:
	@test -x $(CHROMIUM) || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

# Only the end-to-end suite (a real Airflow deployment + the browser check), for quick iteration.
e2e: bytecode chromium
	$(BIN)/python -m pytest tests/e2e

# pytest exits 5 when it collected nothing; make treats that as a failure, so CI never passes empty.
# The docs build and the package check are part of the suite: a broken page or sdist is a red run.
test: lint unit docs dist

# Sphinx, warnings as errors, as the official providers build theirs.
docs: install
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs build/docs

# sdist + wheel with uv, checked by twine as PyPI would.
dist: install
	rm -rf build/dist
	$(BIN)/uv build -q --out-dir build/dist
	$(BIN)/twine check --strict build/dist/*

# The unpacked sdist's own tests, against the installed package of that sdist.
dist-check: dist
	rm -rf build/sdist-check && mkdir -p build/sdist-check
	tar -xzf build/dist/*.tar.gz -C build/sdist-check
	cd build/sdist-check/airflow_provider_prefs-* && $(CURDIR)/$(BIN)/python -m pytest -q -p no:cacheprovider --ignore=tests/e2e

# The README's connection extras tables, generated from the declarations the connection forms use.
readme: install
	$(BIN)/python scripts/readme_extras.py

demo: bytecode
	$(BIN)/python scripts/demo.py

bench: bytecode
	$(BIN)/python benchmarks/bench.py

# The user-level comparison in a real Airflow deployment (bulk vs mapped tasks vs HttpOperator); takes minutes.
bench-e2e: bytecode
	$(BIN)/python benchmarks/bench_e2e.py $(ARGS)

# One 10,000-item bulk task with checkpoints on vs raw 8-thread clients: `airflow dags test` by default,
# ARGS=--celery in the CeleryExecutor + PostgreSQL + Redis deployment (ARGS="--note ..." when the machine is shared).
bench-bulk-task: bytecode
	$(BIN)/python benchmarks/bench_bulk_task.py $(ARGS)

sandbox: install
	$(BIN)/python -m airflow_provider_prefs.sandbox --port 8765

constraints: install
	@{ echo "# Pinned versions for 'make' (Airflow 3.3.2, Python 3.11). Regenerate with 'make constraints'."; \
	  $(BIN)/uv pip freeze --python $(BIN)/python | grep -v -E "^(-e |airflow-provider-prefs|pip==|setuptools==)"; } > constraints.txt

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
